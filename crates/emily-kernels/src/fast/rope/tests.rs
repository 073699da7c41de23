//! The shared-table path (positions the same in every batch entry) against the
//! per-entry path and a float64 reference, at odd sizes, f32 and f16/bf16.
//! Positions given once per batch entry (`batch * seq` ids) always take the
//! per-entry path, so tiling the same ids across the batch must reproduce the
//! shared path bit for bit.

use half::{bf16, f16};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::{rope_bf16, rope_f16, rope_f32, Positions, RopeParams};

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// float64 RoPE of a contiguous `(batch, heads, seq, head_dim)` tensor whose
/// sequence index `t` sits at position `pos[t]` in every batch entry.
fn reference(x: &[f32], p: &RopeParams<'_>, pos: &[i64]) -> Vec<f64> {
    let half = p.dims / 2;
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (r, row) in out.chunks_exact_mut(p.head_dim).enumerate() {
        let t = r % p.seq;
        for i in 0..half {
            let inv = (p.base as f64).powf(-2.0 * i as f64 / p.dims as f64);
            let (s, c) = (pos[t] as f64 * p.scale as f64 * inv).sin_cos();
            let (ia, ib) = if p.traditional {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (a, b) = (row[ia], row[ib]);
            row[ia] = a * c - b * s;
            row[ib] = b * c + a * s;
        }
    }
    out
}

/// The cases: (batch, heads, seq, head_dim, dims, traditional).
fn cases() -> Vec<(usize, usize, usize, usize, usize, bool)> {
    let mut v = Vec::new();
    for batch in [1, 3, 16] {
        for seq in [1, 7, 77, 1000] {
            for head_dim in [16, 64, 96, 128] {
                // Full rotation, and a partial one (a quarter, at least a pair).
                for dims in [head_dim, (head_dim / 4).max(2)] {
                    for traditional in [false, true] {
                        // Keep the biggest tensors to one head (~2M values).
                        let heads = if batch * seq * head_dim > 100_000 {
                            1
                        } else {
                            3
                        };
                        v.push((batch, heads, seq, head_dim, dims, traditional));
                    }
                }
            }
        }
    }
    v
}

/// The ways of giving the same positions to every entry: an offset, and `seq`
/// ids (i32 and i64), each also written out per batch entry (`batch * seq`
/// ids, which take the per-entry path).
struct SharedPositions {
    offset: usize,
    offset_ids: Vec<i64>,
    offset_tiled: Vec<i64>,
    ids: Vec<i32>,
    ids64: Vec<i64>,
    tiled: Vec<i32>,
    tiled64: Vec<i64>,
}

impl SharedPositions {
    fn new(batch: usize, seq: usize, seed: u64) -> Self {
        let offset = 5 + seed as usize % 300;
        let offset_ids: Vec<i64> = (0..seq).map(|t| (offset + t) as i64).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<i32> = (0..seq).map(|_| rng.gen_range(0..40_000)).collect();
        let ids64: Vec<i64> = ids.iter().map(|&v| v as i64).collect();
        Self {
            offset,
            offset_tiled: offset_ids.repeat(batch),
            offset_ids,
            tiled: ids.repeat(batch),
            tiled64: ids64.repeat(batch),
            ids,
            ids64,
        }
    }

    /// (shared positions, the same positions per entry, the positions).
    fn pairs(&self) -> [(Positions<'_>, Positions<'_>, &[i64]); 2] {
        [
            (
                Positions::Offset(self.offset),
                Positions::PerTokenI64(&self.offset_tiled),
                &self.offset_ids,
            ),
            (
                Positions::PerToken(&self.ids),
                Positions::PerToken(&self.tiled),
                &self.ids64,
            ),
        ]
    }
}

#[test]
fn shared_positions_match_per_entry_path_and_f64_reference() {
    for (k, (batch, heads, seq, head_dim, dims, traditional)) in cases().into_iter().enumerate() {
        let n = batch * heads * seq * head_dim;
        let x = randn(n, k as u64);
        let ids = SharedPositions::new(batch, seq, k as u64);
        let mut p = RopeParams::new(batch, heads, seq, head_dim);
        (p.dims, p.traditional, p.scale) = (dims, traditional, 0.75);
        let what = format!("{batch}x{heads}x{seq}x{head_dim} dims {dims} trad {traditional}");
        for (shared, tiled, pos) in ids.pairs() {
            let (mut a, mut b) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            rope_f32(
                &x,
                &mut a,
                &RopeParams {
                    positions: shared,
                    ..p
                },
            );
            rope_f32(
                &x,
                &mut b,
                &RopeParams {
                    positions: tiled,
                    ..p
                },
            );
            assert!(
                a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()),
                "{what} {shared:?}: shared table differs from the per-entry path"
            );
            let want = reference(&x, &p, pos);
            let worst = a
                .iter()
                .zip(&want)
                .map(|(g, w)| (*g as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(worst < 2e-6, "{what} {shared:?}: max error {worst:e}");
        }
        // The i64 ids, shared and tiled, agree with the i32 ones.
        let tiled64 = Positions::PerTokenI64(&ids.tiled64);
        for positions in [Positions::PerTokenI64(&ids.ids64), tiled64] {
            let (mut a, mut b) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            rope_f32(&x, &mut a, &RopeParams { positions, ..p });
            let i32_ids = Positions::PerToken(&ids.ids);
            rope_f32(
                &x,
                &mut b,
                &RopeParams {
                    positions: i32_ids,
                    ..p
                },
            );
            assert_eq!(a, b, "{what}: i64 ids {positions:?}");
        }
    }
}

/// One half-precision format's checks: shared == per-entry bit for bit, and
/// within `rel` (relative rounding) of the f64 reference of the rounded input.
fn check_half<T: Copy + PartialEq + std::fmt::Debug + Default>(
    to: impl Fn(f32) -> T,
    from: impl Fn(T) -> f32,
    rope: impl Fn(&[T], &mut [T], &RopeParams<'_>),
    rel: f64,
) {
    for (k, (batch, heads, seq, head_dim, dims, traditional)) in cases().into_iter().enumerate() {
        if k % 3 != 0 {
            continue; // a third of the f32 cases keeps the half tests short
        }
        let n = batch * heads * seq * head_dim;
        let x: Vec<T> = randn(n, k as u64).into_iter().map(&to).collect();
        let xf: Vec<f32> = x.iter().map(|&v| from(v)).collect();
        let ids = SharedPositions::new(batch, seq, k as u64);
        let mut p = RopeParams::new(batch, heads, seq, head_dim);
        (p.dims, p.traditional) = (dims, traditional);
        let what = format!("{batch}x{heads}x{seq}x{head_dim} dims {dims} trad {traditional}");
        for (shared, tiled, pos) in ids.pairs() {
            let (mut a, mut b) = (vec![T::default(); n], vec![T::default(); n]);
            rope(
                &x,
                &mut a,
                &RopeParams {
                    positions: shared,
                    ..p
                },
            );
            rope(
                &x,
                &mut b,
                &RopeParams {
                    positions: tiled,
                    ..p
                },
            );
            assert!(a == b, "{what} {shared:?}: shared table differs");
            let want = reference(&xf, &p, pos);
            for (g, w) in a.iter().zip(&want) {
                let err = (from(*g) as f64 - w).abs();
                assert!(err <= rel * w.abs() + 1e-6, "{what}: {g:?} vs {w}");
            }
        }
    }
}

#[test]
fn shared_positions_f16_and_bf16() {
    check_half(f16::from_f32, f16::to_f32, rope_f16, 1.0 / 1024.0);
    check_half(bf16::from_f32, bf16::to_f32, rope_bf16, 1.0 / 128.0);
}
