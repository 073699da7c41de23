//! Prefill-size products with 8-bit activations: `out = act · wᵀ` for many
//! activation rows, with integer dot products.
//!
//! On AVX512-VNNI the weight rows are cut into panels of 16 over the pool;
//! each worker unpacks a panel once into an L2-resident, transposed form and
//! runs every activation row over it in register tiles (see
//! `x86::tile`), so a weight block is unpacked once per call and the dot
//! products run 16 weight rows to a `vpdpbusd`. Other CPUs run the decode
//! kernel ([`super::gemv_q8_with`]) over all rows, which computes the same
//! integer products one weight row at a time.

use super::activation::Q8Activations;
use super::gemv::{check_q8_product, gemv_q8_unchecked};
use super::{BlockFormat, QuantError, QuantIsa};

/// `out = act · wᵀ` with the best kernel of this CPU ([`QuantIsa::detected`]):
/// `w` holds `n` rows of `act.k` elements in `format`, `out` is row-major
/// `(act.m, n)`. The result is within the activations' rounding of the exact
/// product, as [`super::gemv_q8`]'s.
pub fn gemm_q8(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    gemm_q8_with(QuantIsa::detected(), format, w, n, act, out)
}

/// [`gemm_q8`] with a given implementation (to test and time each one); an
/// error if this CPU lacks it.
pub fn gemm_q8_with(
    isa: QuantIsa,
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_q8_product(isa, format, w.len(), n, act, out.len())?;
    gemm_q8_unchecked(isa, format, w, n, act, out);
    Ok(())
}

/// [`gemm_q8_with`] after [`check_q8_product`].
pub(crate) fn gemm_q8_unchecked(
    isa: QuantIsa,
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if isa == QuantIsa::Avx512Vnni {
        use super::x86::tile::{gemm_panels, PanelBuf, PANEL};
        if act.m == 0 || n == 0 {
            return;
        }
        // Workers write the disjoint columns of their own panels.
        let o = super::send_ptr::SendPtr(out.as_mut_ptr());
        let panels = n.div_ceil(PANEL);
        let cost = PANEL.saturating_mul(act.k).saturating_mul(act.m);
        crate::parallel::for_each_range(panels, cost, |p0, p1| {
            let mut buf = PanelBuf::default();
            // SAFETY: sizes were checked by the caller and the ISA is
            // available; panels p0..p1 are this worker's columns.
            unsafe { gemm_panels(format, w.as_ptr(), n, act, o.get(), (p0, p1), &mut buf) }
        });
        return;
    }
    gemv_q8_unchecked(isa, format, w, n, act, out);
}
