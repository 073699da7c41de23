//! Decode-size products: `out = x · wᵀ` for a few activation rows, with the
//! activations quantized to 8-bit blocks and integer dot products, each
//! weight row streamed from memory once, output columns split over the pool.

use super::activation::Q8Activations;
use super::send_ptr::SendPtr;
use super::{BlockFormat, QuantError, QuantIsa};
use crate::parallel;

/// Checks the sizes of a product of `n` weight rows in `format` with `m`
/// activation rows of `k` given as `x_len` values, writing `out_len` floats.
pub(crate) fn check_product(
    format: BlockFormat,
    w_len: usize,
    n: usize,
    k: usize,
    (m, x_len): (usize, usize),
    out_len: usize,
) -> Result<(), QuantError> {
    let row = format.row_bytes(k)?;
    let want = row
        .checked_mul(n)
        .ok_or(QuantError::Overflow { format, elems: k })?;
    if w_len != want {
        return Err(QuantError::ByteLength {
            format,
            bytes: w_len,
            elems: n.saturating_mul(k),
        });
    }
    if m.checked_mul(k) != Some(x_len) {
        return Err(QuantError::InputLength { m, k, len: x_len });
    }
    if m.checked_mul(n) != Some(out_len) {
        return Err(QuantError::OutputLength { m, n, len: out_len });
    }
    Ok(())
}

/// Checks the sizes of a product with quantized activations and that this
/// CPU runs `isa`.
pub(crate) fn check_q8_product(
    isa: QuantIsa,
    format: BlockFormat,
    w_len: usize,
    n: usize,
    act: &Q8Activations,
    out_len: usize,
) -> Result<(), QuantError> {
    check_product(format, w_len, n, act.k, (act.m, act.qs.len()), out_len)?;
    if !isa.available() {
        return Err(QuantError::UnavailableIsa(isa.name()));
    }
    Ok(())
}

/// `out = act · wᵀ` with the best kernel of this CPU ([`QuantIsa::detected`]):
/// `w` holds `n` rows of `act.k` elements in `format`, `out` is row-major
/// `(act.m, n)`.
pub fn gemv_q8(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    gemv_q8_with(QuantIsa::detected(), format, w, n, act, out)
}

/// [`gemv_q8`] with a given implementation (to test and time each one);
/// an error if this CPU lacks it.
pub fn gemv_q8_with(
    isa: QuantIsa,
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_q8_product(isa, format, w.len(), n, act, out.len())?;
    gemv_q8_unchecked(isa, format, w, n, act, out);
    Ok(())
}

/// [`gemv_q8_with`] after [`check_q8_product`].
pub(crate) fn gemv_q8_unchecked(
    isa: QuantIsa,
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) {
    if act.m == 0 || n == 0 {
        return;
    }
    let o = SendPtr(out.as_mut_ptr());
    // A weight row costs its bytes' worth of work, plus the dots per x row.
    let cost = (w.len() / n).saturating_mul(1 + act.m / 2);
    parallel::for_each_even_range(n, cost, |r0, r1| {
        // SAFETY: sizes were checked by the caller; `r0..r1` is this
        // worker's own range of output columns; `isa` is available.
        unsafe { gemv_rows(isa, format, w, act, o.get(), n, r0, r1) }
    });
}

/// # Safety
/// As the per-ISA `gemv_rows`: sizes checked, `r0..r1` owned, `isa` available.
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_rows(
    isa: QuantIsa,
    format: BlockFormat,
    w: &[u8],
    act: &Q8Activations,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if isa != QuantIsa::Portable {
        // SAFETY: the caller's contract.
        return unsafe { super::x86::gemv_rows(isa, format, w.as_ptr(), act, out, n, r0, r1) };
    }
    let _ = isa;
    // SAFETY: the caller's contract.
    unsafe { super::portable::gemv_rows(format, w, act, out, n, r0, r1) }
}
