//! `emily quantize`: rewrite a GGUF model with its weight matrices in a
//! block-quantised format (the kernels' quantisers); metadata, norms and
//! other vectors are copied as they are.

use super::params::tensor_f32;
use super::LlmError;
use crate::gguf::{GgmlType, GgufFile, GgufWriter, Value};

/// The formats `emily quantize` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// GGML Q8_0: 32 int8 values and an f16 scale per block.
    Q8_0,
    /// GGML Q4_0: 32 4-bit values and an f16 scale per block.
    Q4_0,
    /// Affine 4-bit groups of 64 with an f16 scale and bias (emily's own
    /// GGUF tensor type; llama.cpp does not read it).
    Int4G64,
}

impl QuantType {
    /// The type named `name` (`q8_0`, `q4_0`, `int4-g64`).
    pub fn from_name(name: &str) -> Option<QuantType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "q8_0" => QuantType::Q8_0,
            "q4_0" => QuantType::Q4_0,
            "int4-g64" => QuantType::Int4G64,
            _ => return None,
        })
    }

    /// The GGUF tensor type.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            QuantType::Q8_0 => GgmlType::Q8_0,
            QuantType::Q4_0 => GgmlType::Q4_0,
            QuantType::Int4G64 => GgmlType::Int4G64,
        }
    }
}

/// What [`quantize_gguf`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizeReport {
    /// Tensors written in the new format.
    pub quantized: usize,
    /// Tensors copied unchanged.
    pub copied: usize,
    /// Tensor bytes read.
    pub bytes_in: usize,
    /// Tensor bytes written.
    pub bytes_out: usize,
}

/// Whether `emily quantize` converts this tensor: a 2-D weight matrix whose
/// rows are whole blocks.
fn converts(name: &str, dims: &[usize], ty: GgmlType) -> bool {
    dims.len() == 2 && name.ends_with(".weight") && dims[0].is_multiple_of(ty.block_size())
}

/// `input` with its weight matrices in `ty`: a writer ready to write.
pub fn quantize_gguf(
    input: &GgufFile,
    ty: QuantType,
) -> Result<(GgufWriter, QuantizeReport), LlmError> {
    let target = ty.ggml_type();
    let format = super::params::block_format(target).ok_or_else(|| LlmError::Unsupported {
        path: input.path().to_path_buf(),
        what: format!("quantisation to {target}"),
    })?;
    let mut w = GgufWriter::new();
    for (k, v) in input.metadata() {
        w.add_metadata(k, v.clone());
    }
    w.add_metadata("general.quantization_version", Value::U32(2));
    let mut report = QuantizeReport::default();
    for info in input.tensors() {
        let bytes = input.tensor_bytes(info);
        report.bytes_in += bytes.len();
        let shape = info.shape();
        let tensor_err = |msg: String| {
            LlmError::Gguf(crate::gguf::GgufError::Tensor {
                path: input.path().to_path_buf(),
                name: info.name.clone(),
                msg,
            })
        };
        if converts(&info.name, &info.dims, target) && info.ggml_type != target {
            let values = tensor_f32(input, info)?;
            let q = emily_kernels::quant::quantize(format, &values)
                .map_err(|e| tensor_err(e.to_string()))?;
            report.bytes_out += q.len();
            report.quantized += 1;
            w.add_tensor(&info.name, &shape, target, q)?;
        } else {
            report.bytes_out += bytes.len();
            report.copied += 1;
            w.add_tensor(&info.name, &shape, info.ggml_type, bytes.to_vec())?;
        }
    }
    Ok((w, report))
}
