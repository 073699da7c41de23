//! The token embedding rows a decoder step starts from, gathered outside
//! the step graph: a step reads one row per token, so the table need not be
//! resident. The stored rows are read where the checkpoint holds them (a
//! memory map, at any alignment; the file pages of the rows used are all
//! that becomes resident), or, when the logits run on the int8 GEMV, from
//! its int8 rows (as faster-whisper's `int8` does): the f16 table is then not
//! held at all.

use std::ops::Range;
use std::sync::Arc;

use emily::Tensor;
use emily_kernels::gemv_i8::I8Rows;

use super::GraphError;
use crate::weights::{widen_to_f32, DType as StoredDType, TensorRecord};

/// Where the token embedding rows come from.
#[derive(Clone)]
pub enum TokenTable {
    /// The checkpoint's rows as stored (f16, bf16 or f32), read in place.
    Stored {
        /// The bytes' owner (the file's memory map or an owned copy).
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        /// The table's byte range in `owner`.
        range: Range<usize>,
        /// The stored element type.
        dtype: StoredDType,
        /// Rows (the vocabulary).
        rows: usize,
        /// Values per row (`d_model`).
        width: usize,
    },
    /// The int8 rows of the logits' matrix, dequantized.
    Int8(Arc<I8Rows>),
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenTable::Stored {
                dtype, rows, width, ..
            } => {
                write!(f, "TokenTable::Stored({dtype:?}, {rows} × {width})")
            }
            TokenTable::Int8(r) => write!(f, "TokenTable::Int8({} × {})", r.rows(), r.cols()),
        }
    }
}

impl TokenTable {
    /// The stored rows of `record` (`(vocab, d)`, a float type).
    pub fn stored(record: &TensorRecord) -> Result<TokenTable, GraphError> {
        let [rows, width] = *record.shape() else {
            return Err(GraphError::Input(format!(
                "token embedding: expected (vocab, d), got {:?}",
                record.shape()
            )));
        };
        if !record.dtype().is_float() {
            return Err(GraphError::Input(format!(
                "token embedding: {:?} is not a float type",
                record.dtype()
            )));
        }
        let (owner, range) = record.shared_bytes();
        Ok(TokenTable::Stored {
            owner,
            range,
            dtype: record.dtype(),
            rows,
            width,
        })
    }

    /// Rows and values per row.
    fn dims(&self) -> (usize, usize) {
        match self {
            TokenTable::Stored { rows, width, .. } => (*rows, *width),
            TokenTable::Int8(r) => (r.rows(), r.cols()),
        }
    }

    /// The rows of `ids` (`b` rows of `t` tokens) as an f32 tensor
    /// `(b, t, d)`; an id outside the table is an error naming it.
    pub fn embed(&self, ids: &[i64], b: usize, t: usize) -> Result<Tensor, GraphError> {
        let (vocab, d) = self.dims();
        if ids.len() != b * t {
            return Err(GraphError::Input(format!(
                "{} token ids for ({b}, {t}) tokens",
                ids.len()
            )));
        }
        let mut out = Vec::with_capacity(ids.len() * d);
        for &id in ids {
            let row = usize::try_from(id)
                .ok()
                .filter(|&r| r < vocab)
                .ok_or_else(|| {
                    GraphError::Input(format!("token id {id} outside the vocabulary of {vocab}"))
                })?;
            match self {
                TokenTable::Stored {
                    owner,
                    range,
                    dtype,
                    ..
                } => {
                    let size = dtype.size_in_bytes() * d;
                    let start = range.start + row * size;
                    widen_to_f32(*dtype, &(**owner).as_ref()[start..start + size], &mut out);
                }
                TokenTable::Int8(rows) => {
                    let at = out.len();
                    out.resize(at + d, 0.0);
                    rows.dequantize_row(row, &mut out[at..]);
                }
            }
        }
        Ok(Tensor::from_vec(out, &[b, t, d])?)
    }
}
