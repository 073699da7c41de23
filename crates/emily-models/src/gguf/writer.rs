//! Writing GGUF version 3 files: metadata, tensor infos and aligned data.
//! Used by `emily quantize` and by tests that build small models.

use std::io::Write;
use std::path::Path;

use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use super::types::GgmlType;
use super::value::{Array, Value};
use super::GgufError;

struct PendingTensor {
    name: String,
    dims: Vec<usize>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then writes one GGUF v3 file.
///
/// ```
/// use emily_models::gguf::{GgmlType, GgufFile, GgufWriter, Value};
/// let mut w = GgufWriter::new();
/// w.add_metadata("general.architecture", Value::String("llama".into()));
/// let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
/// w.add_tensor("w", &[2, 3], GgmlType::F32, data)?;
/// let bytes = w.to_bytes()?;
/// let f = GgufFile::parse(std::sync::Arc::new(bytes), "mem.gguf")?;
/// assert_eq!(f.tensor("w")?.shape(), vec![2, 3]);
/// # Ok::<(), emily_models::gguf::GgufError>(())
/// ```
pub struct GgufWriter {
    alignment: usize,
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> GgufError {
    GgufError::Format {
        path: "<writer>".into(),
        field: field.into(),
        msg: msg.into(),
    }
}

impl GgufWriter {
    /// An empty file with the default alignment.
    pub fn new() -> GgufWriter {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets (or replaces) the metadata value under `key`. Setting
    /// `general.alignment` to a power-of-two u32 changes the data alignment.
    pub fn add_metadata(&mut self, key: &str, value: Value) {
        if key == "general.alignment" {
            if let Value::U32(a) = value {
                if a > 0 && a.is_power_of_two() {
                    self.alignment = a as usize;
                }
            }
        }
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// Adds a tensor of row-major `shape` whose bytes are `data` in `ggml_type`.
    pub fn add_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<(), GgufError> {
        let field = format!("tensor `{name}`");
        if shape.is_empty() || shape.len() > MAX_DIMS {
            return Err(invalid(
                field,
                format!("rank of {shape:?} must be 1..={MAX_DIMS}"),
            ));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(invalid(field, "duplicate name"));
        }
        let dims: Vec<usize> = shape.iter().rev().copied().collect();
        let rows = dims[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let size = ggml_type
            .row_bytes(dims[0])
            .zip(rows)
            .and_then(|(r, n)| r.checked_mul(n));
        if size != Some(data.len()) {
            return Err(invalid(
                field,
                format!(
                    "{} bytes do not hold {shape:?} of {ggml_type} (innermost dim a multiple of {})",
                    data.len(),
                    ggml_type.block_size()
                ),
            ));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims,
            ggml_type,
            data,
        });
        Ok(())
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_to(&mut out).map_err(|source| GgufError::Io {
            path: "<memory>".into(),
            source,
        })?;
        Ok(out)
    }

    /// Writes the file to `path`.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        self.write_to(&mut w).map_err(io)?;
        w.flush().map_err(io)
    }

    /// Writes the file to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut header, k);
            header.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut header, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offsets.push(offset);
            offset = (offset + t.data.len()).next_multiple_of(self.alignment);
        }
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            put_string(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                header.extend_from_slice(&(d as u64).to_le_bytes());
            }
            header.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            header.extend_from_slice(&(off as u64).to_le_bytes());
        }
        header.resize(header.len().next_multiple_of(self.alignment), 0);
        w.write_all(&header)?;
        let mut written = 0usize;
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            w.write_all(&vec![0u8; off - written])?;
            w.write_all(&t.data)?;
            written = off + t.data.len();
        }
        Ok(())
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_string(out, s),
        Value::Array(a) => put_array(out, a),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        Array::String(v) => v.iter().for_each(|s| put_string(out, s)),
        Array::Array(v) => v.iter().for_each(|x| put_array(out, x)),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
    }
}
