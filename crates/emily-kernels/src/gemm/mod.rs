//! Low-precision GEMM engines: bf16 × bf16 → f32 and u8 × s8 → i32, with
//! run-time dispatch over AMX tiles, AVX-512 (`vdpbf16ps`, `vpdpbusd`), AVX2
//! and portable code.
//!
//! The B operand (weights) is packed once into a [`PackedBf16`] or
//! [`PackedInt8`] (at model load or plan compile time) and read by every
//! engine; the A operand (activations) is packed per call, converting f32 to
//! bf16 or quantizing it on the fly. Outputs are row-major `m × n`.
//!
//! Numerics:
//! - bf16: products of bf16 values are exact in f32; sums are f32 (the
//!   order differs per engine, so results agree to f32 round-off, not bit
//!   for bit). f32 A values are rounded to bf16 (nearest, ties to even).
//! - int8: [`gemm_u8s8`] is exact, `Σ (a − zero_point_row) · b` in i32
//!   (wrapping only for `k > 66,000`-ish worst cases, which the API refuses).
//!   [`gemm_int8`] quantizes each row of f32 activations to u8 with its own
//!   scale and zero point ([`quantize_row_u8`]) and dequantizes with the
//!   weights' per-column scales: `out = s_a · s_b · (Σ q_a·q_b − zp·Σ q_b)`.
//!
//! Engine choice: [`Engine::best`] (fastest that runs here, capped by
//! `EMILY_ISA`); the `*_on` functions take an explicit engine (tests run
//! every engine this CPU has, plus [`Engine::AmxEmulated`]).

mod amx;
mod amx_emulated;
mod amx_os;
mod amx_write;
mod driver;
mod engine;
mod interleave;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
mod kernel_portable;
mod matrix;
mod pack_a;
mod pack_rows;
mod packed;
mod peak;
mod prepack;
mod quantize;
mod quantized_rows;
mod words;
pub(crate) use words::{Floats, Words};

use std::cell::Cell;

use half::bf16;

pub use engine::{Engine, Precision};
pub use matrix::MatRef;
pub use packed::{PackedBf16, PackedInt8, NR};
pub use peak::{peak_ops_per_sec, PeakOp};
pub use quantize::{bf16_bits, quantize_columns_s8, quantize_row_u8, RowQuant};
pub use quantized_rows::{gemm_int8_quantized_then, QuantizedRows};

/// The tile unit's program interface and its two implementations, for the
/// attention's int8 products on tiles ([`crate::fast`]).
pub(crate) use amx::{Dot, TileConfig, TileOps};
#[cfg(target_arch = "x86_64")]
pub(crate) use amx::{Hardware as HardwareTiles, HeldTiles};
#[cfg(test)]
pub(crate) use amx_emulated::Emulated as EmulatedTiles;

use driver::{AOperand, Gemm};
use pack_a::{ASource, I8Shifted, U8Quads};

/// Largest depth the int8 engines accept: `k · 255 · 127` stays below 2³¹.
pub const MAX_INT8_DEPTH: usize = 65_536;

/// An A operand type the bf16 engines read (f32 is rounded to bf16 while packing).
pub trait Bf16Input: Copy + Sync + sealed::Sealed {}

impl Bf16Input for f32 {}
impl Bf16Input for bf16 {}

mod sealed {
    use super::pack_a::{ASource, Bf16Pairs, F32AsBf16};
    use super::MatRef;

    /// How an element type becomes packable words.
    pub trait Sealed: Sized {
        fn source(a: MatRef<'_, Self>) -> Box<dyn ASource + '_>;
    }

    impl Sealed for f32 {
        fn source(a: MatRef<'_, Self>) -> Box<dyn ASource + '_> {
            Box::new(F32AsBf16(a))
        }
    }

    impl Sealed for half::bf16 {
        fn source(a: MatRef<'_, Self>) -> Box<dyn ASource + '_> {
            Box::new(Bf16Pairs(a))
        }
    }
}

fn check_engine(engine: Engine, p: Precision) {
    assert!(
        engine.runs_here(p),
        "gemm: engine {} cannot run {p:?} on this CPU",
        engine.name()
    );
}

fn check_shapes(what: &str, m: usize, k: usize, bk: usize, n: usize, out: usize) {
    assert_eq!(k, bk, "{what}: A has {k} columns but B has {bk} rows");
    assert_eq!(
        out,
        m * n,
        "{what}: output has {out} elements, expected {m}x{n}"
    );
}

/// `out (m × n) = a (m × k) · b (k × n)` in bf16 with f32 sums, on the best engine.
///
/// # Panics
/// If the shapes disagree.
pub fn gemm_bf16<A: Bf16Input>(a: MatRef<'_, A>, b: &PackedBf16, out: &mut [f32]) {
    gemm_bf16_on(Engine::best(Precision::Bf16), a, b, out)
}

/// [`gemm_bf16`] on a given engine.
///
/// # Panics
/// If the shapes disagree or the engine does not run on this CPU.
pub fn gemm_bf16_on<A: Bf16Input>(
    engine: Engine,
    a: MatRef<'_, A>,
    b: &PackedBf16,
    out: &mut [f32],
) {
    bf16_then(engine, a, b, None, out)
}

/// [`gemm_bf16`] followed by `then` over the finished f32 outputs while
/// they are in cache, on the best engine: the result equals [`gemm_bf16`]
/// with `then` applied to its output.
///
/// # Panics
/// As [`gemm_bf16`].
pub fn gemm_bf16_then<A: Bf16Input>(
    a: MatRef<'_, A>,
    b: &PackedBf16,
    then: RowEpilogue<'_>,
    out: &mut [f32],
) {
    gemm_bf16_then_on(Engine::best(Precision::Bf16), a, b, then, out)
}

/// [`gemm_bf16_then`] on a given engine.
///
/// # Panics
/// As [`gemm_bf16_on`].
pub fn gemm_bf16_then_on<A: Bf16Input>(
    engine: Engine,
    a: MatRef<'_, A>,
    b: &PackedBf16,
    then: RowEpilogue<'_>,
    out: &mut [f32],
) {
    bf16_then(engine, a, b, Some(then), out)
}

fn bf16_then<A: Bf16Input>(
    engine: Engine,
    a: MatRef<'_, A>,
    b: &PackedBf16,
    then: Option<RowEpilogue<'_>>,
    out: &mut [f32],
) {
    check_engine(engine, Precision::Bf16);
    check_shapes("gemm_bf16", a.rows(), a.cols(), b.k(), b.n(), out.len());
    let src = <A as sealed::Sealed>::source(a);
    let epilogue = |i: usize, j0: usize, row: &mut [u32]| {
        if let Some(then) = then {
            then(i, j0, bytemuck::cast_slice_mut(row));
        }
    };
    let mut gemm = Gemm {
        engine,
        precision: Precision::Bf16,
        m: a.rows(),
        a: AOperand::Rows(&*src),
        b_layout: b.layout,
        b: b.data.as_slice(),
        epilogue: then.is_some().then_some(&epilogue as driver::Epilogue<'_>),
    };
    if gemm.splits() == 1 {
        gemm.run(bytemuck::cast_slice_mut(out));
        return;
    }
    // Several jobs per row block (few rows, e.g. 128 × 1536 × 576): pack A
    // once instead of once per job.
    let mut words = PACKED_A.with(Cell::take);
    prepack::pack(&*src, a.rows(), a.cols(), gemm.blocking(), &mut words);
    gemm.a = AOperand::Packed(words.as_slice());
    gemm.run(bytemuck::cast_slice_mut(out));
    keep_packed_a(words);
}

/// Returns a packed A buffer to this thread for its next call, unless large.
fn keep_packed_a(words: words::Words) {
    if words.capacity() <= KEEP_PACKED_A_WORDS {
        PACKED_A.with(|cell| cell.set(words));
    }
}

/// Exact integer product `out[i][j] = Σ_k (a[i][k] − zero_points[i]) · b[k][j]`
/// with u8 activations and the s8 values of `b` (its scales are not applied),
/// on the best engine.
///
/// # Panics
/// If the shapes disagree, `zero_points.len() != m` or `k > MAX_INT8_DEPTH`.
pub fn gemm_u8s8(a: MatRef<'_, u8>, zero_points: &[i32], b: &PackedInt8, out: &mut [i32]) {
    gemm_u8s8_on(Engine::best(Precision::Int8), a, zero_points, b, out)
}

/// [`gemm_u8s8`] on a given engine.
///
/// # Panics
/// As [`gemm_u8s8`], or if the engine does not run on this CPU.
pub fn gemm_u8s8_on(
    engine: Engine,
    a: MatRef<'_, u8>,
    zero_points: &[i32],
    b: &PackedInt8,
    out: &mut [i32],
) {
    assert_eq!(
        zero_points.len(),
        a.rows(),
        "gemm_u8s8: one zero point per row"
    );
    int8_integer(engine, &U8Quads(a), a.rows(), a.cols(), zero_points, b, out);
}

/// Exact integer product of signed activations: `out = a · b` with s8 `a`
/// (packed as `a + 128` in u8, the shift removed by the zero-point correction).
///
/// # Panics
/// As [`gemm_u8s8_on`].
pub fn gemm_s8s8_on(engine: Engine, a: MatRef<'_, i8>, b: &PackedInt8, out: &mut [i32]) {
    let zp = vec![128; a.rows()];
    int8_integer(engine, &I8Shifted(a), a.rows(), a.cols(), &zp, b, out);
}

fn int8_integer(
    engine: Engine,
    src: &dyn ASource,
    m: usize,
    k: usize,
    zero_points: &[i32],
    b: &PackedInt8,
    out: &mut [i32],
) {
    check_engine(engine, Precision::Int8);
    check_shapes("gemm_u8s8", m, k, b.k(), b.n(), out.len());
    assert!(
        k <= MAX_INT8_DEPTH,
        "gemm_u8s8: depth {k} exceeds {MAX_INT8_DEPTH}"
    );
    let sums = &b.col_sums;
    let epilogue = |i: usize, j0: usize, row: &mut [u32]| {
        let zp = zero_points[i];
        for (v, &s) in row.iter_mut().zip(&sums[j0..]) {
            *v = (*v as i32).wrapping_sub(zp.wrapping_mul(s)) as u32;
        }
    };
    Gemm {
        engine,
        precision: Precision::Int8,
        m,
        a: AOperand::Rows(src),
        b_layout: b.layout,
        b: b.data.as_slice(),
        epilogue: Some(&epilogue),
    }
    .run(bytemuck::cast_slice_mut(out));
}

/// `out ≈ a · b` for f32 activations and int8 weights: each row of `a` is
/// quantized to u8 with its own scale and zero point, the integer product is
/// exact, and `out[i][j] = s_a[i] · s_b[j] · (Σ q_a·q_b − zp[i] · Σ q_b)`;
/// on the best engine.
///
/// # Panics
/// If the shapes disagree or `k > MAX_INT8_DEPTH`.
pub fn gemm_int8(a: MatRef<'_, f32>, b: &PackedInt8, out: &mut [f32]) {
    gemm_int8_on(Engine::best(Precision::Int8), a, b, out)
}

/// [`gemm_int8`] on a given engine.
///
/// # Panics
/// As [`gemm_int8`], or if the engine does not run on this CPU.
pub fn gemm_int8_on(engine: Engine, a: MatRef<'_, f32>, b: &PackedInt8, out: &mut [f32]) {
    gemm_int8_bias_on(engine, a, b, None, out)
}

/// [`gemm_int8`] plus `bias[j]` added to every row while the output is
/// written (no separate pass), on the best engine.
///
/// # Panics
/// As [`gemm_int8`], or if `bias.len() != n`.
pub fn gemm_int8_bias(a: MatRef<'_, f32>, b: &PackedInt8, bias: &[f32], out: &mut [f32]) {
    gemm_int8_bias_on(Engine::best(Precision::Int8), a, b, Some(bias), out)
}

/// [`gemm_int8`] with an optional per-column bias, on a given engine: the
/// rows of `a` are quantized straight into the packed layout the engine
/// reads (once per call), and the epilogue applies the zero-point
/// correction, both scales and the bias in one vector pass per output row.
///
/// # Panics
/// As [`gemm_int8_bias`], or if the engine does not run on this CPU.
pub fn gemm_int8_bias_on(
    engine: Engine,
    a: MatRef<'_, f32>,
    b: &PackedInt8,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    int8_dequantized(engine, a, b, bias, None, out)
}

/// A pass over finished output values, run while they are in cache: called
/// with a row, the first column and that row's values for a range of
/// columns (every output element is passed exactly once).
pub type RowEpilogue<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// [`gemm_int8`] followed by `then` over the dequantized outputs (a bias,
/// an activation, a residual add …) in the same pass, on the best engine:
/// the result equals [`gemm_int8`] with `then` applied to its output.
///
/// # Panics
/// As [`gemm_int8`].
pub fn gemm_int8_then(a: MatRef<'_, f32>, b: &PackedInt8, then: RowEpilogue<'_>, out: &mut [f32]) {
    gemm_int8_then_on(Engine::best(Precision::Int8), a, b, then, out)
}

/// [`gemm_int8_then`] on a given engine.
///
/// # Panics
/// As [`gemm_int8_on`].
pub fn gemm_int8_then_on(
    engine: Engine,
    a: MatRef<'_, f32>,
    b: &PackedInt8,
    then: RowEpilogue<'_>,
    out: &mut [f32],
) {
    int8_dequantized(engine, a, b, None, Some(then), out)
}

/// [`gemm_int8_then`] with `bias[j]` added by the dequantizing pass before
/// `then` runs (one rounding, as a separate f32 add would give), on the best
/// engine.
///
/// # Panics
/// As [`gemm_int8_bias`].
pub fn gemm_int8_bias_then(
    a: MatRef<'_, f32>,
    b: &PackedInt8,
    bias: Option<&[f32]>,
    then: RowEpilogue<'_>,
    out: &mut [f32],
) {
    int8_dequantized(Engine::best(Precision::Int8), a, b, bias, Some(then), out)
}

fn int8_dequantized(
    engine: Engine,
    a: MatRef<'_, f32>,
    b: &PackedInt8,
    bias: Option<&[f32]>,
    then: Option<RowEpilogue<'_>>,
    out: &mut [f32],
) {
    check_engine(engine, Precision::Int8);
    check_shapes("gemm_int8", a.rows(), a.cols(), b.k(), b.n(), out.len());
    let words = PACKED_A.with(Cell::take);
    let rows = QuantizedRows::quantize_into(engine, a, b, words);
    gemm_int8_quantized_then(&rows, b, bias, then, out);
    keep_packed_a(rows.into_words());
}

/// Largest packed A (in words, 4 MiB) a thread keeps for its next call.
const KEEP_PACKED_A_WORDS: usize = 1 << 20;

thread_local! {
    /// The packed A of this thread's last [`gemm_int8_bias_on`] call (or
    /// [`gemm_bf16_on`] call that packed A once), reused by the next (taken out while in use, so a nested call on
    /// the same thread simply allocates its own): the encoder's products
    /// quantize megabytes of activations per call, and a fresh buffer costs
    /// page faults or a clearing pass each time.
    static PACKED_A: Cell<words::Words> = const { Cell::new(words::Words::new()) };
}

crate::simd_dispatch! {
    /// One output row of the int8 product, in place: the i32 sums become
    /// `s_a · s_b[j] · (acc − zp · Σ_k q_b[k][j]) (+ bias[j])`; `bias` is
    /// empty or as long as `row`.
    fn dequantize_row(
        row: &mut [u32],
        zero_point: i32,
        scale: f32,
        sums: &[i32],
        scales: &[f32],
        bias: &[f32],
    ) {
        let value = |v: u32, s: i32, sb: f32| {
            (v as i32).wrapping_sub(zero_point.wrapping_mul(s)) as f32 * (scale * sb)
        };
        if bias.is_empty() {
            for ((v, &s), &sb) in row.iter_mut().zip(sums).zip(scales) {
                *v = value(*v, s, sb).to_bits();
            }
        } else {
            for (((v, &s), &sb), &c) in row.iter_mut().zip(sums).zip(scales).zip(bias) {
                *v = (value(*v, s, sb) + c).to_bits();
            }
        }
    }
}
