//! Weights held as int8 rows packed for the int8-row GEMV
//! ([`emily_kernels::gemv_i8`]): a `Q8_0` weight whose blocks share one
//! scale per row (CTranslate2's per-row int8 codes) can be held in that
//! kernel's panel layout instead ([`Tensor::from_int8_rows`]). The array
//! keeps the `Q8_0` dtype and shape, so the graph's rules for quantized
//! weights apply unchanged; only `x · wᵀ` reads it (the quantized matmul
//! routes it to [`I8Rows::gemv`]), and it has no host form.

use std::sync::Arc;

use emily_kernels::gemv_i8::I8Rows;

use super::packed_weights::OwnForm;
use crate::error::{invalid, Result};
use crate::{Array, BlockFormat, DType, Tensor};

/// The storage of a weight built by [`Tensor::from_int8_rows`] (standing
/// for the `Q8_0` bytes of its shape; the packed form is about 6 % smaller).
type Int8RowsWeight = OwnForm<Arc<I8Rows>>;

/// The packed rows of `a`, if it is a weight built by
/// [`Tensor::from_int8_rows`].
pub(crate) fn of(a: &Array) -> Option<&Arc<I8Rows>> {
    a.buffer::<Int8RowsWeight>().map(|b| &b.form)
}

impl Tensor {
    /// A `(n, k)` weight of dtype `Q8_0` held as `rows` in the int8-row
    /// GEMV's packed layout (one f32 step per row, no per-block scales): the
    /// Dense form `x · wᵀ` multiplies by it through [`I8Rows::gemv`]
    /// (activations quantized to 16-bit blocks of 32, any number of rows),
    /// or under [`emily_kernels::quant::with_exact_products`] by its
    /// dequantized rows in f32. Any other op, or reading it back to the
    /// host, is an error. `k` must be a multiple of 32 (whole `Q8_0`
    /// blocks).
    pub fn from_int8_rows(rows: Arc<I8Rows>) -> Result<Tensor> {
        let shape = [rows.rows(), rows.cols()];
        let dtype = DType::Quantized(BlockFormat::Q8_0);
        let logical_bytes = dtype.storage_bytes(&shape).map_err(|_| {
            invalid(
                "from_int8_rows",
                format!(
                    "rows of {} values are not whole Q8_0 blocks of 32",
                    shape[1]
                ),
            )
        })?;
        let buffer = Int8RowsWeight::new(
            rows,
            logical_bytes,
            "a weight held as packed int8 rows (Tensor::from_int8_rows) has no host form",
        );
        Ok(Tensor::from_array(Array::from_buffer(
            Box::new(buffer),
            &shape,
            dtype,
        )?))
    }

    /// The packed rows this tensor holds, if it was built by
    /// [`Tensor::from_int8_rows`] (what it reads per product:
    /// [`I8Rows::bytes`]). A pending tensor is not evaluated: `None`.
    pub fn int8_rows(&self) -> Option<Arc<I8Rows>> {
        match &*self.state() {
            crate::tensor::State::Ready(a) => of(a).cloned(),
            _ => None,
        }
    }
}
