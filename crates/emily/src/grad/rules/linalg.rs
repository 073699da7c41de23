//! Matrix product and convolution rules.

use super::layout::dilate;
use super::unbroadcast;
use crate::error::Result;
use crate::Tensor;

/// The gradients of `op(a) @ op(b)`, where `op` swaps the last two axes of a
/// stored-transposed operand. Broadcast batch axes are summed back; each
/// product reads its transposed operands in place.
pub(super) fn matmul(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    // Mixed precision (f32 · half): differentiate in the activation dtype.
    let b_c = if b.dtype() != a.dtype() {
        b.cast(a.dtype())?
    } else {
        b.clone()
    };
    let op_a = || if ta { a.t() } else { Ok(a.clone()) };
    let op_b = || if tb { b_c.t() } else { Ok(b_c.clone()) };
    let ga = needs[0]
        .then(|| -> Result<Tensor> {
            let d = if ta {
                // a is stored (…, k, m): da = op(b) · gᵀ
                op_b()?.matmul(&g.t()?)?
            } else {
                // da = g · op(b)ᵀ
                let op_bt = if tb { b_c.clone() } else { b_c.t()? };
                g.matmul(&op_bt)?
            };
            unbroadcast(&d, a.shape())
        })
        .transpose()?;
    let gb = needs[1]
        .then(|| -> Result<Tensor> {
            let d = if tb {
                // b is stored (…, n, k): db = gᵀ · op(a)
                g.t()?.matmul(&op_a()?)?
            } else {
                // db = op(a)ᵀ · g
                let op_at = if ta { a.clone() } else { a.t()? };
                op_at.matmul(g)?
            };
            unbroadcast(&d, b.shape())?.cast(b.dtype())
        })
        .transpose()?;
    Ok(vec![ga, gb])
}

/// Convolution hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

/// The gradients of `conv1d(x, w)`: the input's is the transposed
/// convolution (the cotangent dilated by the stride, convolved with the
/// flipped, group-transposed weight); the weight's is the cotangent times the
/// strided input windows (im2col by slices).
pub(super) fn conv1d(
    x: &Tensor,
    w: &Tensor,
    p: ConvParams,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let (n, cin, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (cout, cin_g, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let lout = g.shape()[2];
    let groups = p.groups;
    let cout_g = cout / groups;
    let span = p.dilation * (k - 1);
    let gx = needs[0]
        .then(|| -> Result<Tensor> {
            let gd = dilate(g, 2, p.stride)?;
            let extra = l + 2 * p.padding - (gd.shape()[2] + span);
            let gp = gd.pad(&[(0, 0), (0, 0), (span, span + extra)], 0.0)?;
            // (G, cout_g, cin_g, K) → (G, cin_g, cout_g, K) → (cin, cout_g, K), flipped in K.
            let wt = w
                .reshape_to(&[groups, cout_g, cin_g, k])?
                .permute(&[0, 2, 1, 3])?
                .reshape_to(&[cin, cout_g, k])?;
            let rev: Vec<i64> = (0..k as i64).rev().collect();
            let flipped = wt.gather(&Tensor::from_slice_on(&rev, &[k], w.device())?, 2)?;
            gp.conv1d(&flipped, 1, 0, p.dilation, groups)?
                .narrow(2, p.padding, l)
        })
        .transpose()?;
    let gw = needs[1]
        .then(|| -> Result<Tensor> {
            let xp = x.pad(&[(0, 0), (0, 0), (p.padding, p.padding)], 0.0)?;
            let taps = (0..k)
                .map(|j| {
                    let start = j * p.dilation;
                    xp.slice(
                        &[0, 0, start],
                        &[n, cin, start + (lout - 1) * p.stride + 1],
                        &[1, 1, p.stride],
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            // (N, cin, K, Lout) → (N, G, cin_g·K, Lout)
            let cols = Tensor::stack(&taps.iter().collect::<Vec<_>>(), 2)?.reshape_to(&[
                n,
                groups,
                cin_g * k,
                lout,
            ])?;
            let gg = g.reshape_to(&[n, groups, cout_g, lout])?;
            gg.matmul(&cols.t()?)?
                .sum(&[0], false)?
                .reshape_to(&[cout, cin_g, k])
        })
        .transpose()?;
    Ok(vec![gx, gw])
}
