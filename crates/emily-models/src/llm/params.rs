//! Binding a GGUF file's tensors to a decoder graph's parameters. Every
//! tensor is read in place from the memory map (or, loading from a path,
//! from a huge-page copy of the tensors a decode step streams whole): plain floats (F32, F16,
//! BF16) as themselves, block-quantised ones (Q4_0 … Q6_K, int4-g64) as
//! [`DType::Quantized`], which `matmul` multiplies through the quantised
//! kernels and `gather` (the embedding) expands row by row; no weight is
//! ever copied to f32 as a whole.

use std::collections::HashMap;

use emily::{Array, DType, Tensor};
use emily_nn::{Model, ParamStore};

use super::LlmError;
use crate::gguf::{GgmlType, GgufFile, TensorInfo};

/// The graph's tied output projection and the tensor it falls back to.
const OUTPUT: &str = "output.weight";
const TOKEN_EMBEDDING: &str = "token_embd.weight";

/// The GGUF tensor behind parameter `key`: the token embedding serves as the
/// output projection when the file has no `output.weight` (tied weights).
pub fn tensor_name<'a>(file: &GgufFile, key: &'a str) -> &'a str {
    if key == OUTPUT && !file.has_tensor(OUTPUT) {
        TOKEN_EMBEDDING
    } else {
        key
    }
}

/// Every parameter of `models` from `file`, checked against the shapes the
/// graph expects; a tensor read by two parameters (tied embedding) is one
/// tensor in the store.
pub fn param_store(file: &GgufFile, models: &[&Model]) -> Result<ParamStore, LlmError> {
    param_store_placed(file, models, false)
}

/// [`param_store`]; with `huge_pages`, the tensors a matrix product streams
/// are copied from the file at `file.path()` onto transparent huge pages
/// (see `resident`) instead of borrowed from the file mapping.
pub(crate) fn param_store_placed(
    file: &GgufFile,
    models: &[&Model],
    huge_pages: bool,
) -> Result<ParamStore, LlmError> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for model in models {
        for (key, spec) in model.param_specs() {
            if wanted.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let name = tensor_name(file, &key).to_string();
            let info = file.tensor(&name)?;
            if info.shape() != spec.shape {
                return Err(tensor_error(
                    file,
                    info,
                    format!(
                        "has shape {:?}, the model needs {:?}",
                        info.shape(),
                        spec.shape
                    ),
                ));
            }
            wanted.push((key, name));
        }
    }
    let copy = if huge_pages {
        let streamed: Vec<&str> = wanted
            .iter()
            .map(|(_, name)| name.as_str())
            .filter(|name| !gather_only(file, name))
            .collect();
        Some(super::resident::HugePageCopy::new(file, &streamed)?)
    } else {
        None
    };
    let mut loaded: HashMap<String, Tensor> = HashMap::new();
    let mut store = ParamStore::new();
    for (key, name) in wanted {
        let t = match loaded.get(&name) {
            Some(t) => t.clone(),
            None => {
                let info = file.tensor(&name)?;
                let t = match copy.as_ref().and_then(|c| c.find(&name)) {
                    Some((bytes, at)) => tensor_from(file, info, bytes.clone(), at)?,
                    None => load_tensor(file, info)?,
                };
                loaded.insert(name, t.clone());
                t
            }
        };
        store.insert(key, t);
    }
    Ok(store)
}

/// Whether tensor `name` is only ever looked up by rows (the token embedding
/// of a file with its own output matrix), never streamed whole.
fn gather_only(file: &GgufFile, name: &str) -> bool {
    name == TOKEN_EMBEDDING && file.has_tensor(OUTPUT)
}

fn tensor_error(file: &GgufFile, info: &TensorInfo, msg: String) -> LlmError {
    LlmError::Gguf(crate::gguf::GgufError::Tensor {
        path: file.path().to_path_buf(),
        name: info.name.clone(),
        msg,
    })
}

/// One tensor as an `emily` tensor borrowed from the mapping: float types
/// as themselves, block-quantised types in their blocks.
pub fn load_tensor(file: &GgufFile, info: &TensorInfo) -> Result<Tensor, LlmError> {
    tensor_from(
        file,
        info,
        file.bytes().clone(),
        file.tensor_file_offset(info),
    )
}

/// Tensor `info` of `file` as the bytes at `offset` in `bytes`.
fn tensor_from(
    file: &GgufFile,
    info: &TensorInfo,
    bytes: crate::gguf::FileBytes,
    offset: usize,
) -> Result<Tensor, LlmError> {
    let dtype = match info.ggml_type {
        GgmlType::F32 => DType::F32,
        GgmlType::F16 => DType::F16,
        GgmlType::BF16 => DType::BF16,
        ty => DType::Quantized(block_format(ty).ok_or_else(|| unsupported(file, info))?),
    };
    let array = Array::from_external(bytes, offset, &info.shape(), dtype)
        .map_err(|e| tensor_error(file, info, e.to_string()))?;
    Ok(Tensor::from_array(array))
}

fn unsupported(file: &GgufFile, info: &TensorInfo) -> LlmError {
    tensor_error(
        file,
        info,
        format!("tensor type {} is not supported", info.ggml_type),
    )
}

/// The kernels' block format of a GGUF tensor type, if it is block-quantised.
pub fn block_format(ty: GgmlType) -> Option<emily_kernels::quant::BlockFormat> {
    use emily_kernels::quant::BlockFormat;
    match ty {
        GgmlType::Int4G64 => Some(BlockFormat::Int4G64),
        t => BlockFormat::from_ggml_type(t.id()),
    }
}

/// A tensor's values in f32: float types widened, block-quantised types
/// through the kernels' dequantisers.
pub fn tensor_f32(file: &GgufFile, info: &TensorInfo) -> Result<Vec<f32>, LlmError> {
    let bytes = file.tensor_bytes(info);
    let halves = |f: fn([u8; 2]) -> f32| -> Vec<f32> {
        bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect()
    };
    match info.ggml_type {
        GgmlType::F32 => Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        GgmlType::F16 => Ok(halves(|b| half::f16::from_le_bytes(b).to_f32())),
        GgmlType::BF16 => Ok(halves(|b| half::bf16::from_le_bytes(b).to_f32())),
        _ => dequantize(file, info),
    }
}

/// A quantised tensor's values in f32, through the kernels' dequantisers.
fn dequantize(file: &GgufFile, info: &TensorInfo) -> Result<Vec<f32>, LlmError> {
    let format = block_format(info.ggml_type).ok_or_else(|| unsupported(file, info))?;
    emily_kernels::quant::dequantize(format, file.tensor_bytes(info))
        .map_err(|e| tensor_error(file, info, e.to_string()))
}
