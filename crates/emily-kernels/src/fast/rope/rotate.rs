//! The rotation itself: one row, and every head of a chunk of positions.

use super::{RopeParams, Table};
use crate::fast::layout::SharedOut;

crate::simd_dispatch! {
    /// Rotates every head's rows at positions `t0..t0 + n` of batch entry `b`
    /// with the chunk's `(cos, sin)` table. Private contract (called only from
    /// `rope_f32`): `dst` is valid for the validated `p.out_strides`, and no
    /// one else writes these rows.
    pub(super) fn rotate_chunk(
        x: &[f32],
        dst: SharedOut,
        p: &RopeParams<'_>,
        b: usize,
        t0: usize,
        n: usize,
        table: &Table,
    ) {
        let half = p.dims / 2;
        for h in 0..p.heads {
            for i in 0..n {
                let t = t0 + i;
                let src = &x[p.x_strides.offset(b, h, t)..][..p.head_dim];
                // SAFETY: the contract above.
                let o = unsafe { dst.slice(p.out_strides.offset(b, h, t), p.head_dim) };
                let (c, s) = table.row(i, half);
                rotate_row(src, o, c, s, p.dims, p.traditional);
            }
        }
    }
}

crate::simd_dispatch! {
    /// [`rotate_row`] on its own (the f16/bf16 paths, which convert each row).
    pub(super) fn rotate_one(
        x: &[f32],
        out: &mut [f32],
        c: &[f32],
        s: &[f32],
        dims: usize,
        traditional: bool,
    ) {
        rotate_row(x, out, c, s, dims, traditional)
    }
}

/// Lanes per step of [`rotate_row`]: all loads of a step happen before its
/// stores, so the step vectorises without run-time alias checks.
const STEP: usize = 16;

/// Rotates the first `dims` features of one row by the angles whose cosines
/// and sines are `c`, `s` (`dims/2` each) and copies the rest.
#[inline(always)]
fn rotate_row(x: &[f32], out: &mut [f32], c: &[f32], s: &[f32], dims: usize, traditional: bool) {
    let half = dims / 2;
    let (c, s) = (&c[..half], &s[..half]);
    if traditional {
        let (xs, os) = (&x[..dims], &mut out[..dims]);
        let steps = xs.chunks_exact(2 * STEP).zip(os.chunks_exact_mut(2 * STEP));
        let trig = c.chunks_exact(STEP).zip(s.chunks_exact(STEP));
        for ((xp, op), (cc, ss)) in steps.zip(trig) {
            let mut r = [0.0f32; 2 * STEP];
            for i in 0..STEP {
                let (a, b) = (xp[2 * i], xp[2 * i + 1]);
                r[2 * i] = a * cc[i] - b * ss[i];
                r[2 * i + 1] = b * cc[i] + a * ss[i];
            }
            op.copy_from_slice(&r);
        }
        for i in half / STEP * STEP..half {
            let (a, b) = (x[2 * i], x[2 * i + 1]);
            out[2 * i] = a * c[i] - b * s[i];
            out[2 * i + 1] = b * c[i] + a * s[i];
        }
    } else {
        let (x1, x2) = x[..dims].split_at(half);
        let (o1, o2) = out[..dims].split_at_mut(half);
        let xs = x1.chunks_exact(STEP).zip(x2.chunks_exact(STEP));
        let os = o1.chunks_exact_mut(STEP).zip(o2.chunks_exact_mut(STEP));
        let trig = c.chunks_exact(STEP).zip(s.chunks_exact(STEP));
        for (((xa, xb), (oa, ob)), (cc, ss)) in xs.zip(os).zip(trig) {
            let (mut ra, mut rb) = ([0.0f32; STEP], [0.0f32; STEP]);
            for i in 0..STEP {
                ra[i] = xa[i] * cc[i] - xb[i] * ss[i];
                rb[i] = xb[i] * cc[i] + xa[i] * ss[i];
            }
            oa.copy_from_slice(&ra);
            ob.copy_from_slice(&rb);
        }
        for i in half / STEP * STEP..half {
            let (a, b) = (x1[i], x2[i]);
            o1[i] = a * c[i] - b * s[i];
            o2[i] = b * c[i] + a * s[i];
        }
    }
    out[dims..].copy_from_slice(&x[dims..]);
}
