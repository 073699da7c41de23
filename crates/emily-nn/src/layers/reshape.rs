//! Shape helpers: reshape, transpose, and splitting/merging attention heads.

use emily::Tensor;

use super::shape_err;

/// Reshape options: `0` copies the input's dim at that position, `-1` is
/// inferred (at most one).
#[derive(Clone, Debug, PartialEq)]
pub struct ReshapeOptions {
    /// The target shape.
    pub shape: Vec<isize>,
}

impl ReshapeOptions {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.shape.iter().filter(|&&d| d == -1).count() > 1 || self.shape.iter().any(|&d| d < -1)
        {
            return Err(format!("invalid target shape {:?}", self.shape));
        }
        Ok(())
    }

    pub(crate) fn forward(&self, x: &Tensor) -> emily::Result<Tensor> {
        let mut target = Vec::with_capacity(self.shape.len());
        for (i, &d) in self.shape.iter().enumerate() {
            if d == 0 {
                let Some(&s) = x.shape().get(i) else {
                    return Err(shape_err(
                        "reshape",
                        format!("dim {i} of {:?} to copy does not exist", x.shape()),
                    ));
                };
                target.push(s as isize);
            } else {
                target.push(d);
            }
        }
        x.reshape(&target)
    }
}

/// Transpose options: output axis `i` is input axis `perm[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransposeOptions {
    /// The permutation.
    pub perm: Vec<usize>,
}

impl TransposeOptions {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut seen = vec![false; self.perm.len()];
        for &p in &self.perm {
            if p >= seen.len() || std::mem::replace(&mut seen[p], true) {
                return Err(format!("{:?} is not a permutation", self.perm));
            }
        }
        Ok(())
    }

    pub(crate) fn forward(&self, x: &Tensor) -> emily::Result<Tensor> {
        x.permute(&self.perm)
    }
}

/// Split-heads options.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitHeadsOptions {
    /// Heads the last axis is split into.
    pub num_heads: usize,
}

impl SplitHeadsOptions {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.num_heads == 0 {
            return Err("num_heads must be positive".into());
        }
        Ok(())
    }

    pub(crate) fn forward(&self, x: &Tensor) -> emily::Result<Tensor> {
        split_heads(x, self.num_heads)
    }
}

/// `(B, T, H·D)` → `(B, H, T, D)`.
pub(crate) fn split_heads(x: &Tensor, heads: usize) -> emily::Result<Tensor> {
    let s = x.shape();
    if s.len() != 3 || !s[2].is_multiple_of(heads) {
        return Err(shape_err(
            "split_heads",
            format!("expected (B, T, {heads}·D), got {s:?}"),
        ));
    }
    x.reshape_to(&[s[0], s[1], heads, s[2] / heads])?
        .permute(&[0, 2, 1, 3])
}

/// `(B, H, T, D)` → `(B, T, H·D)`.
pub(crate) fn merge_heads(x: &Tensor) -> emily::Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return Err(shape_err(
            "merge_heads",
            format!("expected (B, H, T, D), got {s:?}"),
        ));
    }
    x.permute(&[0, 2, 1, 3])?
        .reshape_to(&[s[0], s[2], s[1] * s[3]])
}
