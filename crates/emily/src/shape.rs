//! Shape arithmetic: element counts, strides, broadcasting, axis normalisation.

use crate::error::{invalid, shape_err, Error, Result};
use crate::DType;

/// Number of elements of a shape (1 for a scalar). Only for shapes that were
/// validated (every tensor's and array's shape was, by [`checked_bytes`]);
/// shapes from callers go through [`checked_numel`].
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Number of elements of `shape`, or an [`crate::Error::Shape`] naming `op`
/// when the product overflows `usize`.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            shape_err(
                op,
                format!("shape {shape:?} has more elements than usize holds"),
            )
        })
}

/// Bytes of a `dtype` array of `shape` ([`DType::storage_bytes`], the one
/// size rule), or an [`crate::Error::Shape`] naming `op` when the count
/// overflows or exceeds `isize::MAX` (the most any allocation or slice can
/// hold). Every shape a tensor or array takes passes through here, so
/// element counts of existing tensors never overflow.
pub fn checked_bytes(op: &'static str, shape: &[usize], dtype: DType) -> Result<usize> {
    dtype.storage_bytes(shape).map_err(|e| match e {
        Error::Shape { msg, .. } => shape_err(op, msg),
        other => other,
    })
}

/// `a + b` for a dimension size, or an [`crate::Error::Shape`] naming `op`.
pub fn checked_add(op: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_add(b)
        .ok_or_else(|| shape_err(op, format!("size {a} + {b} overflows usize")))
}

/// `a * b` for a dimension size, or an [`crate::Error::Shape`] naming `op`.
pub fn checked_mul(op: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| shape_err(op, format!("size {a} * {b} overflows usize")))
}

/// Row-major strides (in elements) of a contiguous array.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Whether a slice (`starts`, `steps`) of a contiguous array of shape `src`
/// giving shape `out` is the array's first `numel(out)` elements in order:
/// it starts at element 0 and walks the source like a contiguous `out`.
pub(crate) fn is_leading_slice(
    src: &[usize],
    starts: &[usize],
    steps: &[usize],
    out: &[usize],
) -> bool {
    let own = contiguous_strides(src);
    let dense = contiguous_strides(out);
    starts.iter().zip(&own).all(|(s, o)| s * o == 0)
        && out
            .iter()
            .zip(steps.iter().zip(&own))
            .zip(&dense)
            .all(|((&n, (step, o)), d)| n <= 1 || step * o == *d)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(shape_err(op, format!("cannot broadcast {a:?} with {b:?}"))),
        };
    }
    Ok(out)
}

/// Strides (in elements) to read a contiguous array of `shape` as if it had
/// shape `target` (numpy broadcasting; broadcast axes get stride 0).
pub fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let off = target.len() - shape.len();
    (0..target.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                own[i - off]
            }
        })
        .collect()
}

/// Resolves a possibly negative axis against a rank.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) || (rank == 0 && a != 0) {
        return Err(invalid(
            op,
            format!("axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(a as usize)
}

/// Resolves a list of axes, rejecting duplicates; returns them sorted.
pub fn normalize_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out = axes
        .iter()
        .map(|&a| normalize_axis(op, a, rank))
        .collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(op, format!("repeated axis in {axes:?}")));
    }
    Ok(out)
}

/// Merges adjacent axes that are contiguous in every operand's strides, so
/// kernels iterate over as few (and as long) dimensions as possible. Returns the
/// collapsed shape and each operand's collapsed strides.
pub fn collapse_dims(shape: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides.iter().enumerate().all(|(k, s)| {
                let prev = *out_strides[k].last().unwrap();
                prev == s[d] * shape[d]
            });
        if mergeable {
            *out_shape.last_mut().unwrap() *= shape[d];
            for (k, s) in strides.iter().enumerate() {
                *out_strides[k].last_mut().unwrap() = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (k, s) in strides.iter().enumerate() {
                out_strides[k].push(s[d]);
            }
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for s in out_strides.iter_mut() {
            s.push(1);
        }
    }
    (out_shape, out_strides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shapes("t", &[4, 1, 3], &[5, 1]).unwrap(),
            vec![4, 5, 3]
        );
        assert_eq!(broadcast_shapes("t", &[], &[2]).unwrap(), vec![2]);
        let e = broadcast_shapes("add", &[2, 3], &[4])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "[add] cannot broadcast [2, 3] with [4]");
    }

    #[test]
    fn collapse_merges_contiguous_axes() {
        let shape = [2, 3, 4];
        let a = contiguous_strides(&shape);
        let b = broadcast_strides(&[4], &shape);
        let (s, st) = collapse_dims(&shape, &[a, b]);
        assert_eq!(s, vec![6, 4]);
        assert_eq!(st, vec![vec![4, 1], vec![0, 1]]);
    }
}
