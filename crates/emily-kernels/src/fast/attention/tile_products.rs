//! The int8 attention's two products on the AMX tile unit, for CPUs whose
//! int8 GEMM engine is AMX: `tdpbssd` (scores) and `tdpbsud` (values)
//! compute the same integer sums as the VNNI kernels of
//! [`super::int8_scores`] and [`super::int8_values`]. The value product's
//! float steps are theirs, in the same order (bit-identical results); so
//! are a masked score tile's, while an unmasked one is stored without the
//! lane's factor, which the softmax multiplies in as it subtracts the
//! maximum (one rounding moved: a vector multiply fewer per 16 scores).
//!
//! - Scores, `C = K · Q^T`: A = 16 keys' centred s8 codes (64 features per
//!   tile row), B = the s8 query codes in VNNI's packing (4-feature words
//!   per lane, `qt4`, without VNNI's +128 offset: `tdpbssd` takes both
//!   operands signed, so no `128 · Σ codes` is subtracted), C = 16 keys ×
//!   16 lanes: the lanes layout of the score tile.
//! - Values, `C = V^T · P^T`: A = 16 features' s8 codes along 64 keys (the
//!   head's packed values transposed once per head, `v4t`), B = the tile's
//!   u8 weight words (`p4`), C = 16 features × 16 lanes: the layout of the
//!   output accumulator `O^T`.
//!
//! Each 32 × 32 block is four C tiles from two A and two B tiles, stored to
//! an L1 scratch and finished there with vector code (the scales, and for
//! the values the online-softmax rescale). Taken when the head dim is a
//! multiple of 64 (one tile row of features per step; every Whisper size).
//! The programs are written once against [`TileOps`], so the software model
//! of the tile unit tests them on any CPU.

use super::block::Scratch;
use crate::gemm::{Dot, Engine, Precision, TileConfig, TileOps};

/// Rows (keys or features) and lanes per block.
const SIDE: usize = 32;
/// Rows of a tile.
const HALF: usize = 16;
/// Bytes of features per tile row (one A row, 16 words of B).
pub(super) const FEATURES_PER_STEP: usize = 64;
/// Zero key rows kept past the last key's codes, so the last block's A
/// tiles read initialised memory.
pub(super) const KEY_PAD: usize = SIDE;

/// One block of i32 sums, `SIDE` rows × `SIDE` lanes, aligned for the tile
/// stores and small enough to stay in L1.
#[repr(C, align(64))]
struct BlockSums([i32; SIDE * SIDE]);

/// Whether the int8 scores of a call with these keys run on tiles: the
/// int8 engine is AMX (not capped by `EMILY_ISA`) and the codes' row
/// width is whole tile rows.
pub(super) fn scores_on_tiles(width: usize) -> bool {
    width.is_multiple_of(FEATURES_PER_STEP) && amx()
}

/// Whether the int8 value products run on tiles (the int8 engine is AMX).
pub(super) fn values_on_tiles() -> bool {
    amx()
}

fn amx() -> bool {
    Engine::best(Precision::Int8) == Engine::Amx
}

/// The operands of one score tile (see [`scores`]).
#[derive(Clone, Copy)]
pub(super) struct ScoreOperands {
    /// Signed query codes ([`super::int8_scores::QueryCodes::Signed`]):
    /// `width / 4` rows of `lanes` words.
    pub qt4: *const u32,
    /// Query lanes (a multiple of 32).
    pub lanes: usize,
    /// The tile's first key's codes; rows `width` bytes apart, with at
    /// least `keys.next_multiple_of(32)` readable rows.
    pub codes: *const i8,
    /// Bytes per key row (a multiple of 64).
    pub width: usize,
    /// Keys of the tile.
    pub keys: usize,
    /// Per key from the tile's first: the scale.
    pub kscale: *const f32,
    /// Per lane: `s_q · scale · log2(e)`.
    pub qscale: *const f32,
}

/// `S^T[m][lane] = s_q[lane] · s_k[m] · Σ_i Q^T[i][lane] · K[m][i]` for
/// every key `m` of the tile into `st` (`keys` rows of `lanes` floats):
/// [`super::int8_scores::tile_scores`] on the tile unit. With `tmax`
/// (`lanes` floats: an unmasked tile), the scores are stored without the
/// lane's factor `s_q[lane]` — `S'^T[m][lane] = s_k[m] · Σ`, which the
/// softmax multiplies in as it subtracts the maximum
/// ([`super::int8_values::softmax_and_pack`]) — and each lane's entry of
/// `tmax` is raised to its largest `S'`, so the softmax needs no pass of
/// its own for it.
///
/// # Safety
/// `ops` may execute tile instructions on this thread (the hardware needs
/// AMX-INT8 with the tile permission); the pointers address the regions
/// documented on [`ScoreOperands`], `st` `keys · lanes` writable floats and
/// `tmax` `lanes`.
#[inline(always)]
pub(super) unsafe fn scores<O: TileOps>(
    ops: &mut O,
    x: ScoreOperands,
    st: *mut f32,
    tmax: Option<*mut f32>,
) {
    let steps = x.width / FEATURES_PER_STEP;
    let ldq = x.lanes * 4;
    let mut sums = BlockSums([0; SIDE * SIDE]);
    // SAFETY: the caller's contract; every tile reads inside the regions above.
    unsafe {
        ops.configure(&TileConfig::all_16x64());
        for rc in (0..x.lanes).step_by(SIDE) {
            let q = x.qt4.add(rc);
            if steps == 1 {
                // One step: the queries stay in their tiles for every key block.
                ops.load::<6>(q.cast(), ldq);
                ops.load::<7>(q.add(HALF).cast(), ldq);
            }
            // Two running maxima per lane, for even and odd keys: one chain
            // of `vmaxps` per key row was the block's critical path.
            let mut lane_max = [[f32::NEG_INFINITY; SIDE]; 2];
            for kg in (0..x.keys).step_by(SIDE) {
                zero_sums(ops);
                for s in 0..steps {
                    let a = x.codes.add(kg * x.width + s * FEATURES_PER_STEP);
                    ops.load::<4>(a.cast(), x.width);
                    ops.load::<5>(a.add(HALF * x.width).cast(), x.width);
                    if steps > 1 {
                        let b = q.add(s * HALF * x.lanes);
                        ops.load::<6>(b.cast(), ldq);
                        ops.load::<7>(b.add(HALF).cast(), ldq);
                    }
                    dots(ops, Dot::S8S8);
                }
                store_sums(ops, &mut sums);
                let block = (kg, rc, st);
                if tmax.is_some() {
                    finish_scores::<true>(&sums, &x, block, &mut lane_max);
                } else {
                    finish_scores::<false>(&sums, &x, block, &mut lane_max);
                }
            }
            if let Some(tmax) = tmax {
                let tmax = std::slice::from_raw_parts_mut(tmax.add(rc), SIDE);
                for (t, (&even, &odd)) in tmax.iter_mut().zip(lane_max[0].iter().zip(&lane_max[1]))
                {
                    let mx = if odd > even { odd } else { even };
                    *t = if mx > *t { mx } else { *t };
                }
            }
        }
        ops.release();
    }
}

/// The floats of the finished block of keys `kg..` and lanes `rc..` of
/// [`scores`] from its sums into `st`: `sum · s_k[m]`, times the lane's
/// factor unless `UNSCALED`, which also raises `lane_max` to each lane's
/// largest (`lane_max[m % 2]` for key row `m`: two independent chains).
/// (Two builds, so the row loop carries no branch.)
///
/// # Safety
/// As [`scores`] for this block.
#[inline(always)]
unsafe fn finish_scores<const UNSCALED: bool>(
    sums: &BlockSums,
    x: &ScoreOperands,
    (kg, rc, st): (usize, usize, *mut f32),
    lane_max: &mut [[f32; SIDE]; 2],
) {
    // SAFETY: the caller's contract.
    unsafe {
        let lane = std::slice::from_raw_parts(x.qscale.add(rc), SIDE);
        let rows = SIDE.min(x.keys - kg);
        let [even, odd] = lane_max;
        for m in (0..rows).step_by(2) {
            finish_row::<UNSCALED>(sums, x, (kg, rc, st), lane, m, even);
            if m + 1 < rows {
                finish_row::<UNSCALED>(sums, x, (kg, rc, st), lane, m + 1, odd);
            }
        }
    }
}

/// Key row `m` of [`finish_scores`], its maxima into `lane_max`.
///
/// # Safety
/// As [`finish_scores`].
#[inline(always)]
unsafe fn finish_row<const UNSCALED: bool>(
    sums: &BlockSums,
    x: &ScoreOperands,
    (kg, rc, st): (usize, usize, *mut f32),
    lane: &[f32],
    m: usize,
    lane_max: &mut [f32; SIDE],
) {
    // SAFETY: the caller's contract.
    unsafe {
        let sk = *x.kscale.add(kg + m);
        let mut vals = [0f32; SIDE];
        for ((v, &sum), &q) in vals.iter_mut().zip(&sums.0[m * SIDE..][..SIDE]).zip(lane) {
            *v = if UNSCALED {
                sum as f32 * sk
            } else {
                sum as f32 * (q * sk)
            };
        }
        std::ptr::copy_nonoverlapping(vals.as_ptr(), st.add((kg + m) * x.lanes + rc), SIDE);
        if UNSCALED {
            for (mx, &v) in lane_max.iter_mut().zip(&vals) {
                // A NaN score is skipped, as by `vmaxps` in the softmax's own pass.
                *mx = if v > *mx { v } else { *mx };
            }
        }
    }
}

/// The operands of one value tile (see [`values`]).
#[derive(Clone, Copy)]
pub(super) struct ValueOperands {
    /// The tile's weight words: `groups.next_multiple_of(16)` rows of
    /// `lanes` words, zero past its `groups` rows.
    pub p4: *const u32,
    /// Query lanes (a multiple of 32).
    pub lanes: usize,
    /// 4-key groups of the tile.
    pub groups: usize,
    /// The tile's first group in each feature row of `v4t`: feature `c`'s
    /// words at `c · gstride`, `v_head_dim.next_multiple_of(32)` rows with
    /// at least `groups.next_multiple_of(16)` readable words from here.
    pub v4t: *const u32,
    pub gstride: usize,
    /// Value features.
    pub dv: usize,
    /// Per lane: `s_p`; per feature: `s_v`; per lane: the rescale `α`.
    pub pscale: *const f32,
    pub vscale: *const f32,
    pub alpha: *const f32,
}

/// `O^T[c][lane] = α[lane]·O^T[c][lane] + s_p[lane]·s_v[c]·Σ_g V4^T[c][g]·P4[g][lane]`
/// for every feature `c` into `ot` (`dv` rows of `lanes` floats):
/// [`super::int8_values::tile_values`] on the tile unit.
///
/// # Safety
/// As [`scores`], for the regions documented on [`ValueOperands`] and `ot`.
#[inline(always)]
pub(super) unsafe fn values<O: TileOps>(ops: &mut O, x: ValueOperands, ot: *mut f32) {
    let steps = x.groups.div_ceil(HALF);
    let ldp = x.lanes * 4;
    let ldv = x.gstride * 4;
    let mut sums = BlockSums([0; SIDE * SIDE]);
    // SAFETY: the caller's contract; every tile reads inside the regions above.
    unsafe {
        ops.configure(&TileConfig::all_16x64());
        for rc in (0..x.lanes).step_by(SIDE) {
            for c0 in (0..x.dv).step_by(SIDE) {
                zero_sums(ops);
                for s in 0..steps {
                    let a = x.v4t.add(c0 * x.gstride + s * HALF);
                    ops.load::<4>(a.cast(), ldv);
                    ops.load::<5>(a.add(HALF * x.gstride).cast(), ldv);
                    let b = x.p4.add(s * HALF * x.lanes + rc);
                    ops.load::<6>(b.cast(), ldp);
                    ops.load::<7>(b.add(HALF).cast(), ldp);
                    dots(ops, Dot::S8U8);
                }
                store_sums(ops, &mut sums);
                let (pscale, alpha) = (x.pscale.add(rc), x.alpha.add(rc));
                for m in 0..SIDE.min(x.dv - c0) {
                    let sv = *x.vscale.add(c0 + m);
                    let row = ot.add((c0 + m) * x.lanes + rc);
                    for (l, &v) in sums.0[m * SIDE..][..SIDE].iter().enumerate() {
                        let f = v as f32 * (*pscale.add(l) * sv);
                        *row.add(l) = (*row.add(l)).mul_add(*alpha.add(l), f);
                    }
                }
            }
        }
        ops.release();
    }
}

/// Zeroes the four accumulator tiles.
///
/// # Safety
/// Tiles are configured.
#[inline(always)]
unsafe fn zero_sums<O: TileOps>(ops: &mut O) {
    // SAFETY: forwarded.
    unsafe {
        ops.zero::<0>();
        ops.zero::<1>();
        ops.zero::<2>();
        ops.zero::<3>();
    }
}

/// The four products `d` of one step: rows of tiles 4/5 by lanes of tiles 6/7.
///
/// # Safety
/// Tiles are configured and 4–7 loaded.
#[inline(always)]
unsafe fn dots<O: TileOps>(ops: &mut O, d: Dot) {
    // SAFETY: forwarded.
    unsafe {
        ops.dot::<0, 4, 6>(d);
        ops.dot::<1, 4, 7>(d);
        ops.dot::<2, 5, 6>(d);
        ops.dot::<3, 5, 7>(d);
    }
}

/// Stores the accumulators as one `SIDE × SIDE` block (rows of A × lanes of B).
///
/// # Safety
/// Tiles are configured and 0–3 hold sums.
#[inline(always)]
unsafe fn store_sums<O: TileOps>(ops: &mut O, sums: &mut BlockSums) {
    let (o, os) = (sums.0.as_mut_ptr(), SIDE * 4);
    // SAFETY: each tile is 16 rows of 64 bytes inside the 4 KiB block.
    unsafe {
        ops.store::<0>(o.cast(), os);
        ops.store::<1>(o.add(HALF).cast(), os);
        ops.store::<2>(o.add(HALF * SIDE).cast(), os);
        ops.store::<3>(o.add(HALF * SIDE + HALF).cast(), os);
    }
}

/// [`scores`] on the tile unit for the score tile of keys `j0 .. j0 + keys`
/// of the block in `s` (the hardware entry of
/// [`super::bf16_products::process`]); with `with_max` (an unmasked tile),
/// the scores without their lane factor and `s.tmax` each lane's largest of
/// them (see [`scores`]).
///
/// # Safety
/// AMX-INT8 with the tile permission ([`scores_on_tiles`]) and AVX-512 (the
/// finishing loops are compiled for it); [`super::int8_scores::prepare_keys`]
/// and `pack_queries` ran for this block with `lanes` lanes; `s.st` holds
/// `keys · lanes` floats and `j0 + keys ≤ kv_len`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
pub(super) unsafe fn tile_scores(
    s: &mut Scratch,
    lanes: usize,
    j0: usize,
    keys: usize,
    with_max: bool,
) {
    let x = s.i8.score_operands(lanes, j0, keys);
    let tmax = with_max.then(|| {
        s.tmax.clear();
        s.tmax.resize(lanes, f32::NEG_INFINITY);
        s.tmax.as_mut_ptr()
    });
    // SAFETY: as documented; the operands address the scratch's buffers.
    unsafe { scores(&mut crate::gemm::HardwareTiles, x, s.st.as_mut_ptr(), tmax) }
}

/// [`values`] on the tile unit for the tile of keys from `j0` (a multiple
/// of 4) of the block in `s`.
///
/// # Safety
/// As [`tile_scores`], with [`super::int8_values::prepare_values`] run for
/// this head (tiles on) and `softmax_and_pack` for this tile of `keys` keys;
/// `s.ot` holds `dv · lanes` floats and `s.alpha` `lanes`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
pub(super) unsafe fn tile_values(s: &mut Scratch, lanes: usize, dv: usize, j0: usize, keys: usize) {
    let x = s.v8.value_operands(&s.alpha, lanes, dv, j0, keys);
    // SAFETY: as documented; the operands address the scratch's buffers.
    unsafe { values(&mut crate::gemm::HardwareTiles, x, s.ot.as_mut_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::EmulatedTiles;

    /// A small deterministic generator (xorshift) for random codes.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    #[test]
    fn score_tiles_equal_the_signed_code_formula() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (keys, lanes, width) in [
            (1usize, 32usize, 64usize),
            (7, 32, 64),
            (77, 64, 64),
            (33, 32, 128),
        ] {
            let groups = width / 4;
            let codes: Vec<i8> = (0..(keys + KEY_PAD) * width)
                .map(|i| {
                    if i < keys * width {
                        rng.byte() as i8
                    } else {
                        0
                    }
                })
                .collect();
            let qt4: Vec<u32> = (0..groups * lanes).map(|_| rng.next() as u32).collect();
            let kscale: Vec<f32> = (0..keys).map(|_| rng.unit() + 0.01).collect();
            let qscale: Vec<f32> = (0..lanes).map(|_| rng.unit() + 0.01).collect();
            let x = ScoreOperands {
                qt4: qt4.as_ptr(),
                lanes,
                codes: codes.as_ptr(),
                width,
                keys,
                kscale: kscale.as_ptr(),
                qscale: qscale.as_ptr(),
            };
            // With the maxima the scores come without the lane factor.
            for with_max in [false, true] {
                let mut st = vec![f32::NAN; keys * lanes];
                let mut tmax = vec![f32::NEG_INFINITY; lanes];
                let maxima = with_max.then_some(tmax.as_mut_ptr());
                // SAFETY: every region above is as `ScoreOperands` documents.
                unsafe { scores(&mut EmulatedTiles::new(), x, st.as_mut_ptr(), maxima) };
                for m in 0..keys {
                    for l in 0..lanes {
                        let mut acc = 0i32;
                        for i in 0..groups {
                            let w = qt4[i * lanes + l].to_le_bytes();
                            for (e, &qb) in w.iter().enumerate() {
                                let k = codes[m * width + 4 * i + e] as i32;
                                acc = acc.wrapping_add(qb as i8 as i32 * k);
                            }
                        }
                        let want = if with_max {
                            acc as f32 * kscale[m]
                        } else {
                            acc as f32 * (qscale[l] * kscale[m])
                        };
                        let got = st[m * lanes + l];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "keys {keys} lanes {lanes} width {width} maxima {with_max}: key {m} lane {l}"
                        );
                    }
                }
                for l in 0..lanes {
                    let want = if with_max {
                        (0..keys)
                            .map(|m| st[m * lanes + l])
                            .fold(f32::NEG_INFINITY, f32::max)
                    } else {
                        f32::NEG_INFINITY
                    };
                    assert_eq!(
                        tmax[l], want,
                        "keys {keys} lanes {lanes}: lane {l}'s maximum"
                    );
                }
            }
        }
    }

    #[test]
    fn value_tiles_equal_the_vnni_formula() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for (groups, lanes, dv) in [
            (1usize, 32usize, 64usize),
            (7, 32, 40),
            (20, 64, 64),
            (64, 32, 1),
        ] {
            let prows = groups.next_multiple_of(HALF);
            let p4: Vec<u32> = (0..prows * lanes)
                .map(|i| {
                    if i < groups * lanes {
                        rng.next() as u32
                    } else {
                        0
                    }
                })
                .collect();
            let gstride = prows + 5;
            let vrows = dv.next_multiple_of(SIDE);
            let v4t: Vec<u32> = (0..vrows * gstride).map(|_| rng.next() as u32).collect();
            let pscale: Vec<f32> = (0..lanes).map(|_| rng.unit()).collect();
            let vscale: Vec<f32> = (0..dv).map(|_| rng.unit()).collect();
            let alpha: Vec<f32> = (0..lanes).map(|_| rng.unit()).collect();
            let o0: Vec<f32> = (0..dv * lanes).map(|_| rng.unit() - 0.5).collect();
            let mut ot = o0.clone();
            let x = ValueOperands {
                p4: p4.as_ptr(),
                lanes,
                groups,
                v4t: v4t.as_ptr(),
                gstride,
                dv,
                pscale: pscale.as_ptr(),
                vscale: vscale.as_ptr(),
                alpha: alpha.as_ptr(),
            };
            // SAFETY: every region above is as `ValueOperands` documents.
            unsafe { values(&mut EmulatedTiles::new(), x, ot.as_mut_ptr()) };
            for c in 0..dv {
                for l in 0..lanes {
                    let mut acc = 0i32;
                    for g in 0..groups {
                        let (p, v) = (
                            p4[g * lanes + l].to_le_bytes(),
                            v4t[c * gstride + g].to_le_bytes(),
                        );
                        for e in 0..4 {
                            acc = acc.wrapping_add(p[e] as i32 * v[e] as i8 as i32);
                        }
                    }
                    let f = acc as f32 * (pscale[l] * vscale[c]);
                    let want = o0[c * lanes + l].mul_add(alpha[l], f);
                    let got = ot[c * lanes + l];
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "groups {groups} lanes {lanes} dv {dv}: feature {c} lane {l}"
                    );
                }
            }
        }
    }
}
