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
        if p.dims == p.head_dim && !p.traditional {
            // Common head sizes with the row length fixed at compile time
            // (short rows are otherwise mostly loop bookkeeping).
            match half {
                8 => return split_rows::<8>(x, dst, p, b, t0, n, table),
                32 => return split_rows::<32>(x, dst, p, b, t0, n, table),
                64 => return split_rows::<64>(x, dst, p, b, t0, n, table),
                _ => {}
            }
        }
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

/// [`rotate_chunk`] for rows that rotate whole (`dims == head_dim`) as split
/// halves of `H` features: the same products as [`rotate_row`] (the same
/// bits), with each head's offsets computed once.
#[inline(always)]
fn split_rows<const H: usize>(
    x: &[f32],
    dst: SharedOut,
    p: &RopeParams<'_>,
    b: usize,
    t0: usize,
    n: usize,
    table: &Table,
) {
    let (xs, os) = (p.x_strides.seq, p.out_strides.seq);
    for h in 0..p.heads {
        let (x0, o0) = (p.x_strides.offset(b, h, t0), p.out_strides.offset(b, h, t0));
        for i in 0..n {
            let row = &x[x0 + i * xs..][..2 * H];
            let (xa, xb): (&[f32; H], &[f32; H]) =
                (row[..H].try_into().unwrap(), row[H..].try_into().unwrap());
            let (c, s) = table.row(i, H);
            let (c, s): (&[f32; H], &[f32; H]) = (c.try_into().unwrap(), s.try_into().unwrap());
            let (mut ra, mut rb) = ([0.0f32; H], [0.0f32; H]);
            for l in 0..H {
                ra[l] = xa[l] * c[l] - xb[l] * s[l];
                rb[l] = xb[l] * c[l] + xa[l] * s[l];
            }
            // SAFETY: `rotate_chunk`'s contract.
            let o = unsafe { dst.slice(o0 + i * os, 2 * H) };
            o[..H].copy_from_slice(&ra);
            o[H..].copy_from_slice(&rb);
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
/// stores, so the step vectorises without run-time alias checks. Rows whose
/// halves are shorter (head size 16: 8 pairs) or leave a remainder take
/// steps of [`SHORT_STEP`], then single pairs.
const STEP: usize = 16;

/// The narrower step after the [`STEP`]s (one AVX2 vector).
const SHORT_STEP: usize = 8;

/// Rotates the first `dims` features of one row by the angles whose cosines
/// and sines are `c`, `s` (`dims/2` each) and copies the rest.
#[inline(always)]
fn rotate_row(x: &[f32], out: &mut [f32], c: &[f32], s: &[f32], dims: usize, traditional: bool) {
    let half = dims / 2;
    let (c, s) = (&c[..half], &s[..half]);
    let (xs, os) = (&x[..dims], &mut out[..dims]);
    let mut done = if traditional {
        interleaved_steps::<STEP>(xs, os, c, s, 0)
    } else {
        split_steps::<STEP>(xs, os, c, s, 0)
    };
    done = if traditional {
        interleaved_steps::<SHORT_STEP>(xs, os, c, s, done)
    } else {
        split_steps::<SHORT_STEP>(xs, os, c, s, done)
    };
    for i in done..half {
        if traditional {
            let (a, b) = (x[2 * i], x[2 * i + 1]);
            out[2 * i] = a * c[i] - b * s[i];
            out[2 * i + 1] = b * c[i] + a * s[i];
        } else {
            let (a, b) = (x[i], x[half + i]);
            out[i] = a * c[i] - b * s[i];
            out[half + i] = b * c[i] + a * s[i];
        }
    }
    if dims < x.len() {
        out[dims..].copy_from_slice(&x[dims..]);
    }
}

/// Rotates split-half pairs `(i, i + half)` for `i` from `from` in whole
/// steps of `W` pairs; returns the first pair not rotated.
#[inline(always)]
fn split_steps<const W: usize>(
    x: &[f32],
    out: &mut [f32],
    c: &[f32],
    s: &[f32],
    from: usize,
) -> usize {
    let half = c.len();
    let steps = (half - from) / W;
    let (x1, x2) = x.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    for k in 0..steps {
        let i0 = from + k * W;
        let (xa, xb): (&[f32; W], &[f32; W]) = (
            x1[i0..][..W].try_into().unwrap(),
            x2[i0..][..W].try_into().unwrap(),
        );
        let (cc, ss): (&[f32; W], &[f32; W]) = (
            c[i0..][..W].try_into().unwrap(),
            s[i0..][..W].try_into().unwrap(),
        );
        let (mut ra, mut rb) = ([0.0f32; W], [0.0f32; W]);
        for i in 0..W {
            ra[i] = xa[i] * cc[i] - xb[i] * ss[i];
            rb[i] = xb[i] * cc[i] + xa[i] * ss[i];
        }
        o1[i0..][..W].copy_from_slice(&ra);
        o2[i0..][..W].copy_from_slice(&rb);
    }
    from + steps * W
}

/// Rotates interleaved pairs `(2i, 2i + 1)` for `i` from `from` in whole
/// steps of `W` pairs; returns the first pair not rotated.
#[inline(always)]
fn interleaved_steps<const W: usize>(
    x: &[f32],
    out: &mut [f32],
    c: &[f32],
    s: &[f32],
    from: usize,
) -> usize {
    let steps = (c.len() - from) / W;
    for k in 0..steps {
        let i0 = from + k * W;
        let xp = &x[2 * i0..][..2 * W];
        let (cc, ss) = (&c[i0..][..W], &s[i0..][..W]);
        // `2 * W` is not a const expression on stable: the step's output
        // as two arrays of `W`, pairs `0..W/2` and `W/2..W`.
        let (mut r0, mut r1) = ([0.0f32; W], [0.0f32; W]);
        for (h, r) in [&mut r0, &mut r1].into_iter().enumerate() {
            for j in 0..W / 2 {
                let i = h * (W / 2) + j;
                let (a, b) = (xp[2 * i], xp[2 * i + 1]);
                r[2 * j] = a * cc[i] - b * ss[i];
                r[2 * j + 1] = b * cc[i] + a * ss[i];
            }
        }
        out[2 * i0..][..W].copy_from_slice(&r0);
        out[2 * i0 + W..][..W].copy_from_slice(&r1);
    }
    from + steps * W
}
