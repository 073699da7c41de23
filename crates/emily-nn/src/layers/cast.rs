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

/// `(B, T, …)` → `(B, 1, …)`: the last position along axis 1.
pub(crate) fn last_position(x: &Tensor) -> emily::Result<Tensor> {
    if x.rank() < 2 || x.shape()[1] == 0 {
        return Err(shape_err(
            "last_position",
            format!("x must be (B, T >= 1, ...), got {:?}", x.shape()),
        ));
    }
    let t = x.shape()[1];
    if t == 1 {
        return Ok(x.clone());
    }
    x.narrow(1, t - 1, 1)
}
