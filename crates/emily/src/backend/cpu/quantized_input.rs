//! One quantization of an int8 product's input for every product that reads
//! it.
//!
//! A layer's query, key and value projections multiply the same layer-norm
//! output, and the cross-attention key/value model multiplies one encoder
//! output by eight weights; each `matmul_int8` would quantize and pack the
//! same f32 rows again. This thread keeps the rows its last int8 product
//! quantized, with a weak handle on the buffer they came from: a product
//! whose input is that same buffer (and shape) reuses them. The handle makes
//! this sound: while it lives the buffer cannot be written in place (see
//! [`Array::storage_handle`]) and no other buffer can take its identity.
//! Reusing gives the same bits as quantizing again.

use std::cell::RefCell;
use std::sync::Weak;

use emily_kernels::gemm::{MatRef, PackedInt8, QuantizedRows};

use crate::storage::Storage;
use crate::Array;

/// Largest quantized input (in rows × depth bytes, 4 MiB) a thread keeps
/// between products.
const KEEP_BYTES: usize = 1 << 22;

/// A thread's last quantized input and the buffer it was read from (taken
/// out while in use, so a nested call on this thread quantizes its own).
pub(super) type Kept<T> = RefCell<Option<(Weak<Storage>, T)>>;

thread_local! {
    /// The last int8 product's quantized input on this thread.
    static LAST: Kept<QuantizedRows> = const { RefCell::new(None) };
}

/// Runs `f` with `x` (`elems` values) in quantized form `T` kept in `slot`:
/// the form kept there when it came from `x`'s buffer and `fits` it (same
/// shape, same kind), else one `refill`ed from `x` (into the kept form's
/// memory) or `fresh`. Kept again afterwards when small enough.
pub(super) fn with_kept<T: 'static, R>(
    slot: &'static std::thread::LocalKey<Kept<T>>,
    x: &Array,
    elems: usize,
    fits: impl FnOnce(&T) -> bool,
    refill: impl FnOnce(&mut T),
    fresh: impl FnOnce() -> T,
    f: impl FnOnce(&T) -> R,
) -> R {
    let kept = slot.with(|last| last.borrow_mut().take());
    let (handle, quantized) = match kept {
        Some((handle, q)) if x.has_storage(&handle) && fits(&q) => (handle, q),
        Some((_, mut q)) => {
            refill(&mut q);
            (x.storage_handle(), q)
        }
        None => (x.storage_handle(), fresh()),
    };
    let out = f(&quantized);
    if elems <= KEEP_BYTES {
        slot.with(|last| *last.borrow_mut() = Some((handle, quantized)));
    }
    out
}

/// Runs `f` with the `rows × k` f32 matrix `x` quantized for products with
/// `weight`: the rows the last product on this thread quantized when they
/// came from `x`'s buffer at this shape, else freshly quantized (into the
/// kept rows' memory).
pub(crate) fn with_quantized<R>(
    x: &Array,
    (rows, k): (usize, usize),
    weight: &PackedInt8,
    f: impl FnOnce(&QuantizedRows) -> R,
) -> R {
    let a = || MatRef::row_major(x.as_slice::<f32>(), rows, k);
    with_kept(
        &LAST,
        x,
        rows * k,
        |q| q.rows() == rows && q.cols() == k && q.fits(weight),
        |q| q.requantize(a(), weight),
        || QuantizedRows::quantize(a(), weight),
        f,
    )
}
