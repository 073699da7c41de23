//! Building blocks for inner loops that LLVM vectorises: lane-parallel
//! reductions (a float sum only vectorises when written as independent lane
//! accumulators) and a multiply-add that becomes one FMA instruction where the
//! ISA has it.

/// Independent accumulators per reduction: two AVX-512 vectors, enough to hide
/// the add latency.
pub(crate) const LANES: usize = 32;

/// `a * b + c`, as a single fused instruction when `FMA` (the caller's ISA has
/// FMA), else as a multiply and an add (`mul_add` without hardware FMA would be
/// a slow library call).
#[inline(always)]
pub(crate) fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Sum of `x`, accumulated in [`LANES`] independent partial sums.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    for (a, v) in acc.iter_mut().zip(tail) {
        *a += *v;
    }
    fold(acc)
}

/// Sum of `x^2`, accumulated in [`LANES`] independent partial sums.
#[inline(always)]
pub(crate) fn sum_sq(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] * c[l];
        }
    }
    for (a, v) in acc.iter_mut().zip(tail) {
        *a += *v * *v;
    }
    fold(acc)
}

/// `(sum(x - shift), sum((x - shift)^2))`, each accumulated in [`LANES`]
/// independent partial sums.
#[inline(always)]
pub(crate) fn sums_shifted(x: &[f32], shift: f32) -> (f32, f32) {
    let mut acc = [0.0f32; LANES];
    let mut acc2 = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            let d = c[l] - shift;
            acc[l] += d;
            acc2[l] += d * d;
        }
    }
    for ((a, a2), v) in acc.iter_mut().zip(acc2.iter_mut()).zip(tail) {
        let d = *v - shift;
        *a += d;
        *a2 += d * d;
    }
    (fold(acc), fold(acc2))
}

/// Pairwise sum of the lane accumulators.
#[inline(always)]
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut n = LANES / 2;
    while n > 0 {
        for l in 0..n {
            acc[l] += acc[l + n];
        }
        n /= 2;
    }
    acc[0]
}
