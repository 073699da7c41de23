//! Model inputs: a declared shape (free dims as `None`) and dtype.

use emily::DType;

/// A model input's declaration. Free dims (`None`) take any size; fixed dims
/// and the dtype are checked on every forward call.
#[derive(Clone, Debug, PartialEq)]
pub struct InputOptions {
    /// The shape; `None` marks a free dim (batch, sequence).
    pub shape: Vec<Option<usize>>,
    /// The element type.
    pub dtype: DType,
}

impl InputOptions {
    /// An input of `shape` and `dtype`.
    pub fn new(shape: &[Option<usize>], dtype: DType) -> InputOptions {
        InputOptions {
            shape: shape.to_vec(),
            dtype,
        }
    }

    /// Whether a tensor of `shape`/`dtype` satisfies the declaration.
    pub fn accepts(&self, shape: &[usize], dtype: DType) -> bool {
        dtype == self.dtype
            && shape.len() == self.shape.len()
            && shape
                .iter()
                .zip(&self.shape)
                .all(|(&d, s)| s.is_none_or(|s| s == d))
    }

    /// `"[?, ?, 64] f32"`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        format!("[{}] {}", dims.join(", "), self.dtype)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
