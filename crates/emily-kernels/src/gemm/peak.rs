//! The CPU's arithmetic peaks for the GEMM engines' instructions, measured by
//! register-only loops on every thread of the pool: f32 FMA (`vfmadd231ps`),
//! bf16 dot products (`vdpbf16ps`) and u8 × s8 dot products (`vpdpbusd`),
//! all on 512-bit registers, and the AMX tile dot products (`tdpbf16ps`,
//! `tdpbusd`) where Linux granted the tile state. The ceiling a GEMM's GFLOP/s is read against,
//! and the floor of a model's matrix work (FLOP ÷ peak).

use std::hint::black_box;
use std::time::Instant;

use super::{Engine, Precision};
use crate::parallel;

/// The instruction a peak is measured for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakOp {
    /// f32 fused multiply-add: 32 FLOP per 512-bit instruction.
    F32Fma,
    /// bf16 pair dot product into f32: 64 FLOP per instruction.
    Bf16Dot,
    /// u8 × s8 quad dot product into i32: 128 integer ops per instruction.
    Int8Dot,
    /// AMX `tdpbf16ps` on 16 × 16 tiles: 16,384 FLOP per instruction.
    AmxBf16,
    /// AMX `tdpbusd` on 16 × 16 tiles: 32,768 integer ops per instruction.
    AmxInt8,
}

impl PeakOp {
    /// Floating-point (or integer) operations per 512-bit instruction.
    pub fn ops_per_instruction(self) -> usize {
        match self {
            PeakOp::F32Fma => 32,
            PeakOp::Bf16Dot => 64,
            PeakOp::Int8Dot => 128,
            PeakOp::AmxBf16 => 16 * 16 * 32 * 2,
            PeakOp::AmxInt8 => 16 * 16 * 64 * 2,
        }
    }

    /// Independent instructions per loop trip.
    fn per_trip(self) -> usize {
        match self {
            PeakOp::AmxBf16 | PeakOp::AmxInt8 => 4,
            _ => CHAINS,
        }
    }
}

/// Independent accumulators per loop (enough to cover the latency of every
/// pipe on current x86 cores).
const CHAINS: usize = 12;
/// Loop trips per timed run on each thread.
const TRIPS: usize = 2_000_000;

/// Operations per second of `op` over all the pool's threads (best of three
/// runs), or `None` when this CPU lacks the instruction (AVX-512 F, BF16,
/// VNNI respectively).
pub fn peak_ops_per_sec(op: PeakOp) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let runs_here = match op {
            PeakOp::F32Fma => crate::simd::isa() == crate::simd::Isa::Avx512,
            PeakOp::Bf16Dot => Engine::Avx512.runs_here(Precision::Bf16),
            PeakOp::Int8Dot => Engine::Avx512.runs_here(Precision::Int8),
            PeakOp::AmxBf16 => Engine::Amx.runs_here(Precision::Bf16),
            PeakOp::AmxInt8 => Engine::Amx.runs_here(Precision::Int8),
        };
        if !runs_here {
            return None;
        }
        let threads = parallel::num_threads();
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                // SAFETY: the instruction set was checked above.
                parallel::pool().broadcast(|_| unsafe { x86::spin(op, TRIPS) });
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        let ops = (threads * TRIPS * op.per_trip() * op.ops_per_instruction()) as f64;
        Some(ops / best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (op, Engine::Portable, Precision::Bf16);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::transmute;

    use super::{black_box, PeakOp, CHAINS};
    use crate::gemm::Precision;

    /// `trips` rounds of `CHAINS` independent instructions of `op`.
    ///
    /// # Safety
    /// The CPU must have the instruction (see `peak_ops_per_sec`).
    pub(super) unsafe fn spin(op: PeakOp, trips: usize) {
        // SAFETY: forwarded.
        unsafe {
            match op {
                PeakOp::F32Fma => fma(trips),
                PeakOp::Bf16Dot => bf16(trips),
                PeakOp::Int8Dot => int8(trips),
                PeakOp::AmxBf16 => {
                    crate::gemm::amx::spin(&mut crate::gemm::amx::Hardware, Precision::Bf16, trips)
                }
                PeakOp::AmxInt8 => {
                    crate::gemm::amx::spin(&mut crate::gemm::amx::Hardware, Precision::Int8, trips)
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn fma(trips: usize) {
        let (a, b) = (
            black_box(_mm512_set1_ps(0.999)),
            black_box(_mm512_set1_ps(1e-3)),
        );
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..trips {
            for c in acc.iter_mut() {
                *c = _mm512_fmadd_ps(a, *c, b);
            }
        }
        black_box(acc);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn bf16(trips: usize) {
        // SAFETY: same-size vector reinterpretations.
        let (a, b): (__m512bh, __m512bh) = unsafe {
            (
                transmute::<__m512i, __m512bh>(black_box(_mm512_set1_epi16(0x3f80))),
                transmute::<__m512i, __m512bh>(black_box(_mm512_set1_epi16(0x3a83))),
            )
        };
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..trips {
            for c in acc.iter_mut() {
                *c = _mm512_dpbf16_ps(*c, a, b);
            }
        }
        black_box(acc);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn int8(trips: usize) {
        let (a, b) = (
            black_box(_mm512_set1_epi8(3)),
            black_box(_mm512_set1_epi8(-2)),
        );
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..trips {
            for c in acc.iter_mut() {
                *c = _mm512_dpbusd_epi32(*c, a, b);
            }
        }
        black_box(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each peak this CPU has is a finite positive rate. (How the peaks
    /// compare is a benchmark's business: two timed loops on a shared
    /// machine can differ by any factor, so no test compares them.)
    #[test]
    fn peaks_are_positive_rates() {
        for op in [
            PeakOp::F32Fma,
            PeakOp::Bf16Dot,
            PeakOp::Int8Dot,
            PeakOp::AmxBf16,
            PeakOp::AmxInt8,
        ] {
            if let Some(x) = peak_ops_per_sec(op) {
                assert!(x.is_finite() && x > 0.0, "{op:?}: {x}");
            }
        }
    }
}
