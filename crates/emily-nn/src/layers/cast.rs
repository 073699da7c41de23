//! Element-type conversion and the last-position pick.

use emily::{DType, Tensor};

use super::shape_err;

/// Cast options: the target element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CastOptions {
    /// The output dtype.
    pub dtype: DType,
}

impl CastOptions {
    /// A cast to `dtype`.
    pub fn new(dtype: DType) -> CastOptions {
        CastOptions { dtype }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> emily::Result<Tensor> {
        if x.dtype() == self.dtype {
            return Ok(x.clone());
        }
        x.cast(self.dtype)
    }
}

/// Options of a last-position node. Inputs: `x (B, T, …)` and, with
/// `lengths`, the real length of each row `(B,)` (integers in `1..=T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LastPositionOptions {
    /// Pick position `lengths[b] − 1` of each row (right-padded rows)
    /// instead of position `T − 1`.
    pub lengths: bool,
}

/// `(B, T, …)` → `(B, 1, …)`: position `T − 1`, or `lengths[b] − 1` per row.
pub(crate) fn last_position(x: &Tensor, lengths: Option<&Tensor>) -> emily::Result<Tensor> {
    if x.rank() < 2 || x.shape()[1] == 0 {
        return Err(shape_err(
            "last_position",
            format!("x must be (B, T >= 1, ...), got {:?}", x.shape()),
        ));
    }
    let (b, t) = (x.shape()[0], x.shape()[1]);
    let Some(lengths) = lengths else {
        return if t == 1 {
            Ok(x.clone())
        } else {
            x.narrow(1, t - 1, 1)
        };
    };
    if lengths.shape() != [b] || !lengths.dtype().is_int() {
        return Err(shape_err(
            "last_position",
            format!(
                "lengths must be ({b},) integers for x {:?}, got {:?} {}",
                x.shape(),
                lengths.shape(),
                lengths.dtype()
            ),
        ));
    }
    // Row b's pick is flat row b·T + lengths[b] − 1 of (B·T, …).
    let rest: Vec<usize> = x.shape()[2..].to_vec();
    let mut flat = vec![b * t];
    flat.extend_from_slice(&rest);
    let starts = Tensor::arange(b, DType::I64)?.mul_scalar(t as f64)?;
    let index = starts.add(&lengths.cast(DType::I64)?)?.add_scalar(-1.0)?;
    let mut out = vec![b, 1];
    out.extend_from_slice(&rest);
    x.reshape_to(&flat)?.gather(&index, 0)?.reshape_to(&out)
}
