//! A static-size cache: the node's state is a buffer of `max_len` positions
//! along `axis`; each call writes its input at the run-time offset and
//! outputs the whole buffer, so a decode step keeps one shape (and one plan).

use emily::Tensor;

use super::{offset_scalar, shape_err, Ctx};

/// KV-cache options. State slot: `cache`, of the update's shape with `axis`
/// widened to `max_len`.
#[derive(Clone, Debug, PartialEq)]
pub struct KvCacheOptions {
    /// Positions the cache holds.
    pub max_len: usize,
    /// The sequence axis of the update (2 for `(B, H, T, D)`).
    pub axis: usize,
}

impl KvCacheOptions {
    /// A cache of `max_len` positions along axis 2 of `(B, H, T, D)`.
    pub fn new(max_len: usize) -> KvCacheOptions {
        KvCacheOptions { max_len, axis: 2 }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_len == 0 {
            return Err("max_len must be positive".into());
        }
        Ok(())
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let update = ctx.inputs[0].clone();
        let offset = ctx.inputs[1].clone();
        write(ctx, "cache", &update, &offset, self.axis, self.max_len)
    }
}

/// Reads state `slot` (shaped like `update` with `axis` = `max_len`), writes
/// `update` at `offset`, records the new state and returns it.
pub(crate) fn write(
    ctx: &mut Ctx<'_>,
    slot: &'static str,
    update: &Tensor,
    offset: &Tensor,
    axis: usize,
    max_len: usize,
) -> emily::Result<Tensor> {
    if axis >= update.rank() || update.shape()[axis] > max_len {
        return Err(shape_err(
            "kv_cache",
            format!(
                "update {:?} does not fit {max_len} positions along axis {axis}",
                update.shape()
            ),
        ));
    }
    let mut shape = update.shape().to_vec();
    shape[axis] = max_len;
    let cache = ctx.state(slot, &shape, update.dtype())?;
    let updated = cache.slice_update(update, &offset_scalar(offset)?, axis as isize)?;
    ctx.update_state(updated.clone());
    Ok(updated)
}
