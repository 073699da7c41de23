//! Reading a GGUF file (versions 2 and 3): header, metadata, tensor infos and
//! the aligned tensor data, memory-mapped. Every count, length, offset and
//! size from the file is checked against the file's length with checked
//! arithmetic before it is used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::cursor::{fail, Cursor, FieldError};
use super::types::GgmlType;
use super::value::{Array, Value};
use super::GgufError;

/// The four bytes every GGUF file starts with.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;

/// The bytes of a GGUF file: a memory map, or a buffer built in memory.
pub type FileBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One tensor's description from the header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name (`"blk.0.attn_q.weight"`).
    pub name: String,
    /// Dimensions innermost first, as GGUF stores them (`[cols, rows]`).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: usize,
    /// Byte length of the data.
    pub size: usize,
}

impl TensorInfo {
    /// The row-major shape (outermost first): `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file. Cheap to share (`Arc` the whole file); tensor bytes
/// are borrowed from the mapping.
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    metadata: Vec<(String, Value)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
    bytes: FileBytes,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; like every mmap-based loader we
        // rely on the file not being truncated while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        GgufFile::parse(Arc::new(map), path)
    }

    /// Parses GGUF `bytes`; `path` names the source in errors.
    pub fn parse(bytes: FileBytes, path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let parsed = parse(bytes.as_ref().as_ref());
        match parsed {
            Ok(p) => Ok(GgufFile {
                metadata_index: index(p.metadata.iter().map(|(k, _)| k)),
                tensor_index: index(p.tensors.iter().map(|t| &t.name)),
                path,
                version: p.version,
                metadata: p.metadata,
                tensors: p.tensors,
                alignment: p.alignment,
                data_offset: p.data_offset,
                bytes,
            }),
            Err(FieldError { field, msg }) => Err(GgufError::Format { path, field, msg }),
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment in bytes.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The whole file's bytes (shared, for zero-copy tensors).
    pub fn bytes(&self) -> &FileBytes {
        &self.bytes
    }

    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value under `key`, or an error naming the file and key.
    pub fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn wrong(&self, key: &str, expected: &str) -> GgufError {
        GgufError::KeyType {
            path: self.path.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: self
                .get(key)
                .map(|v| format!("{:?}", v.value_type()))
                .unwrap_or_default(),
        }
    }

    /// A non-negative integer under `key` that fits `usize`.
    pub fn usize(&self, key: &str) -> Result<usize, GgufError> {
        self.require(key)?
            .as_int()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.wrong(key, "a non-negative integer"))
    }

    /// An optional non-negative integer.
    pub fn usize_opt(&self, key: &str) -> Result<Option<usize>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }

    /// A number under `key` as f32.
    pub fn f32(&self, key: &str) -> Result<f32, GgufError> {
        self.require(key)?
            .as_f64()
            .map(|v| v as f32)
            .ok_or_else(|| self.wrong(key, "a number"))
    }

    /// An optional number.
    pub fn f32_opt(&self, key: &str) -> Result<Option<f32>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.f32(key).map(Some),
        }
    }

    /// A string under `key`.
    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        self.require(key)?
            .as_str()
            .ok_or_else(|| self.wrong(key, "a string"))
    }

    /// An optional string.
    pub fn str_opt(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    /// An optional boolean.
    pub fn bool_opt(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a bool")),
        }
    }

    /// An array under `key`.
    pub fn array(&self, key: &str) -> Result<&Array, GgufError> {
        self.require(key)?
            .as_array()
            .ok_or_else(|| self.wrong(key, "an array"))
    }

    /// The string array under `key`.
    pub fn strings(&self, key: &str) -> Result<&[String], GgufError> {
        self.array(key)?
            .as_strings()
            .ok_or_else(|| self.wrong(key, "an array of strings"))
    }

    /// The model architecture (`general.architecture`).
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.str("general.architecture")
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| GgufError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// Whether a tensor called `name` exists.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensor_index.contains_key(name)
    }

    /// Byte offset of `info`'s data in the file.
    pub fn tensor_file_offset(&self, info: &TensorInfo) -> usize {
        self.data_offset + info.offset
    }

    /// The raw bytes of a tensor (checked to lie in the file at parse time).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = self.tensor_file_offset(info);
        &self.bytes.as_ref().as_ref()[start..start + info.size]
    }
}

fn index<'a>(names: impl Iterator<Item = &'a String>) -> HashMap<String, usize> {
    names.enumerate().map(|(i, n)| (n.clone(), i)).collect()
}

struct Parsed {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    alignment: usize,
    data_offset: usize,
}

fn parse(bytes: &[u8]) -> Result<Parsed, FieldError> {
    let mut c = Cursor::new(bytes);
    let magic = c.take(4, "magic")?;
    if magic != MAGIC {
        return fail("magic", format!("expected \"GGUF\", found {magic:02x?}"));
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => return fail("version", "GGUF version 1 (32-bit counts) is not supported"),
        v => {
            return fail(
                "version",
                format!("unsupported version {v} (expected 2 or 3; a big-endian file?)"),
            )
        }
    }
    // A tensor info takes at least 4+8 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let n_tensors = c.u64("tensor_count")?;
    let n_kv = c.count("metadata_kv_count", 8 + 4 + 1)?;
    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv);
    let mut seen = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.string(&format!("metadata[{i}].key"))?;
        let field = format!("metadata[{i}] `{key}`");
        let t = c.value_type(&format!("{field} type"))?;
        let value = c.value(t, &field)?;
        if seen.insert(key.clone(), i).is_some() {
            return fail(&field, "duplicate key");
        }
        metadata.push((key, value));
    }
    let alignment = match seen.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(&i) => match metadata[i].1 {
            Value::U32(a) if a > 0 && a.is_power_of_two() => a as usize,
            ref v => {
                return fail(
                    "general.alignment",
                    format!("must be a power-of-two u32, got {v:?}"),
                )
            }
        },
    };
    let n_tensors = usize::try_from(n_tensors)
        .ok()
        .filter(|&n| n.checked_mul(28).is_some_and(|b| b <= c.remaining()));
    let Some(n_tensors) = n_tensors else {
        return fail(
            "tensor_count",
            format!(
                "count {} needs at least 28 bytes each, only {} bytes remain",
                n_tensors.unwrap_or(usize::MAX),
                c.remaining()
            ),
        );
    };
    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let info = tensor_info(&mut c, i, alignment)?;
        if names.insert(info.name.clone(), i).is_some() {
            return fail(
                &format!("tensor_info[{i}] `{}`", info.name),
                "duplicate name",
            );
        }
        tensors.push(info);
    }
    let data_offset = c.pos.next_multiple_of(alignment);
    let file_len = bytes.len();
    for t in &tensors {
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.size));
        if end.is_none_or(|e| e > file_len) {
            return fail(
                &format!("tensor `{}` data", t.name),
                format!(
                    "{} bytes at data offset {} (file offset {}) run past the end of the {file_len}-byte file",
                    t.size,
                    t.offset,
                    data_offset as u128 + t.offset as u128
                ),
            );
        }
    }
    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

fn tensor_info(c: &mut Cursor<'_>, i: usize, alignment: usize) -> Result<TensorInfo, FieldError> {
    let name = c.string(&format!("tensor_info[{i}].name"))?;
    let field = format!("tensor_info[{i}] `{name}`");
    let n_dims = c.u32(&format!("{field} n_dims"))? as usize;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return fail(
            &format!("{field} n_dims"),
            format!("{n_dims} dimensions (expected 1..={MAX_DIMS})"),
        );
    }
    let mut dims = Vec::with_capacity(n_dims);
    for d in 0..n_dims {
        let v = c.u64(&format!("{field} dims[{d}]"))?;
        match usize::try_from(v).ok().filter(|&v| v <= i64::MAX as usize) {
            Some(v) => dims.push(v),
            None => {
                return fail(
                    &format!("{field} dims[{d}]"),
                    format!("dimension {v} is too large"),
                )
            }
        }
    }
    let type_id = c.u32(&format!("{field} type"))?;
    let Some(ggml_type) = GgmlType::from_id(type_id) else {
        return fail(
            &format!("{field} type"),
            format!("unknown or unsupported tensor type {type_id}"),
        );
    };
    let offset = c.u64(&format!("{field} offset"))?;
    let offset = match usize::try_from(offset) {
        Ok(o) if o.is_multiple_of(alignment) => o,
        _ => {
            return fail(
                &format!("{field} offset"),
                format!("offset {offset} is not a multiple of the alignment {alignment}"),
            )
        }
    };
    let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(numel) = numel else {
        return fail(
            &format!("{field} dims"),
            format!("element count of {dims:?} overflows"),
        );
    };
    let rows = numel.checked_div(dims[0]).unwrap_or(0);
    let size = ggml_type
        .row_bytes(dims[0])
        .and_then(|r| r.checked_mul(rows));
    let Some(size) = size else {
        return fail(
            &format!("{field} dims"),
            format!(
                "innermost dimension {} is not a multiple of the {} block size {} (or the size overflows)",
                dims[0],
                ggml_type,
                ggml_type.block_size()
            ),
        );
    };
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        size,
    })
}
