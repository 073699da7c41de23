//! The logits through the tied token embedding on the int8 GEMV: the
//! embedding's rows as CTranslate2's per-row int8 codes (`scale = 127 /
//! max|w|`, ties to even; an int8 CTranslate2 model's own codes, recovered
//! exactly) packed for `vpdpbusd` ([`I8Rows`]), the final layer norm's output
//! quantized to 16-bit blocks of 32 per step. Half the bytes of the f16 table
//! a step otherwise streams (the largest single read of a decoder step:
//! 51,864 × 384 for tiny, × 512 for base).

use std::sync::Arc;

use emily::Tensor;
use emily_kernels::gemv_i8::I8Rows;

use super::GraphError;
use crate::ct2::quantize_row;
use crate::weights::{widen_to_f32, TensorRecord};

/// Rows after which the file pages read for them are released (2 MB of
/// f16 rows for base's embedding): the converted matrix and the whole file
/// matrix are then never resident together (51,865 × 512 f16 is 53 MB).
const RELEASE_ROWS: usize = 2048;

/// The 2-D float matrix `record` (`what` names it in errors: the token
/// embedding `(vocab, d)`, a decoder projection `(out, in)`) as int8 rows,
/// packed a few rows at a time on the pool (no float copy of the matrix is
/// made); the file pages of the rows converted are released as the packing
/// goes.
pub fn int8_rows(what: &str, record: &TensorRecord) -> Result<I8Rows, GraphError> {
    let [rows, width] = *record.shape() else {
        return Err(GraphError::Input(format!(
            "{what}: expected a matrix, got shape {:?}",
            record.shape()
        )));
    };
    let dtype = record.dtype();
    if !dtype.is_float() || width == 0 {
        return Err(GraphError::Input(format!(
            "{what}: {dtype:?} rows of {width} cannot be quantized"
        )));
    }
    let bytes = record.bytes();
    let row_bytes = width * dtype.size_in_bytes();
    Ok(I8Rows::from_rows(rows, width, |r, codes| {
        let mut values = Vec::with_capacity(width);
        widen_to_f32(
            dtype,
            &bytes[r * row_bytes..(r + 1) * row_bytes],
            &mut values,
        );
        if (r + 1) % RELEASE_ROWS == 0 {
            record.release_pages_of((r + 1 - RELEASE_ROWS) * row_bytes..(r + 1) * row_bytes);
        }
        1.0 / quantize_row(&values, codes)
    }))
}

/// `normed` `(B, P, d)` f32 (the final layer norm's output) times the int8
/// rows: logits `(B, P, vocab)`.
pub fn int8_logits(rows: &Arc<I8Rows>, normed: &Tensor) -> Result<Tensor, GraphError> {
    let shape = normed.shape().to_vec();
    let d = rows.cols();
    if shape.len() != 3 || shape[2] != d {
        return Err(GraphError::Input(format!(
            "logits: hidden states {shape:?}, expected (B, P, {d})"
        )));
    }
    let x = normed.to_vec::<f32>()?;
    let m = shape[0] * shape[1];
    let mut out = vec![0f32; m * rows.rows()];
    rows.gemv(&x, m, &mut out);
    Ok(Tensor::from_vec(out, &[shape[0], shape[1], rows.rows()])?)
}
