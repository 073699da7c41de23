//! Building blocks for inner loops that LLVM vectorises: lane-parallel
//! reductions (a float sum only vectorises when written as independent lane
//! accumulators) and a multiply-add that becomes one FMA instruction where the
//! ISA has it.

/// Independent accumulators per reduction: four AVX-512 vectors, enough to hide
/// the add / FMA latency.
pub(crate) const LANES: usize = 64;

/// Like [`crate::simd_dispatch!`], but the body is generic over
/// `const FMA: bool`, true in the versions compiled for an ISA with fused
/// multiply-add (and on aarch64), so it can use [`fmadd`]. Private functions
/// only.
macro_rules! fma_dispatch {
    ($(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<const FMA: bool>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) { body::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) { body::<true>($($arg),*) }
                match $crate::simd::isa() {
                    // SAFETY: `isa()` reported these features present on this CPU.
                    $crate::simd::Isa::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::Isa::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::simd::Isa::Baseline => {}
                }
            }
            body::<{ cfg!(target_arch = "aarch64") }>($($arg),*)
        }
    };
}
pub(crate) use fma_dispatch;

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

/// Runs `body` with `$c: &[f32; LANES]` bound to every full chunk of `x`, then
/// once to the tail padded with `pad` (if there is a tail). Every chunk has the
/// same constant length, so accumulators indexed by lane stay in registers. A
/// macro rather than a closure-taking function: the body must be compiled
/// inside the caller's ISA-specific copy (see [`fma_dispatch`]).
macro_rules! for_each_chunk {
    ($x:expr, $pad:expr, |$c:ident| $body:block) => {{
        let chunks = $x.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            let $c: &[f32; LANES] = chunk.try_into().unwrap();
            $body
        }
        if !tail.is_empty() {
            let mut last = [$pad; LANES];
            last[..tail.len()].copy_from_slice(tail);
            let $c = &last;
            $body
        }
    }};
}

/// Sum of `x`, accumulated in [`LANES`] independent partial sums.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for_each_chunk!(x, 0.0, |c| {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    });
    fold(acc)
}

/// Sum of `x^2`, accumulated in [`LANES`] independent partial sums.
#[inline(always)]
pub(crate) fn sum_sq<const FMA: bool>(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for_each_chunk!(x, 0.0, |c| {
        for l in 0..LANES {
            acc[l] = fmadd::<FMA>(c[l], c[l], acc[l]);
        }
    });
    fold(acc)
}

/// `sum(a[i] * b[i])` over equal-length slices, accumulated in [`LANES`]
/// independent partial sums.
#[inline(always)]
pub(crate) fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let (x, y): (&[f32; LANES], &[f32; LANES]) = (x.try_into().unwrap(), y.try_into().unwrap());
        for l in 0..LANES {
            acc[l] = fmadd::<FMA>(x[l], y[l], acc[l]);
        }
    }
    for (l, (x, y)) in ta.iter().zip(tb).enumerate() {
        acc[l] = fmadd::<FMA>(*x, *y, acc[l]);
    }
    fold(acc)
}

/// `(sum(x - shift), sum((x - shift)^2))`, each accumulated in [`LANES`]
/// independent partial sums.
#[inline(always)]
pub(crate) fn sums_shifted<const FMA: bool>(x: &[f32], shift: f32) -> (f32, f32) {
    let mut acc = [0.0f32; LANES];
    let mut acc2 = [0.0f32; LANES];
    // Padding with `shift` makes the padded lanes contribute exactly 0.
    for_each_chunk!(x, shift, |c| {
        for l in 0..LANES {
            let d = c[l] - shift;
            acc[l] += d;
            acc2[l] = fmadd::<FMA>(d, d, acc2[l]);
        }
    });
    (fold(acc), fold(acc2))
}

/// The sum of `N` partial sums (`N` a power of two) as a halving tree:
/// lane `l` adds lane `l + w` for `w = N/2, N/4, …, 1`. Shared by kernels
/// whose per-row partial sums must add up in this fixed order.
#[inline(always)]
pub(crate) fn halving_sum<const N: usize>(mut a: [f32; N]) -> f32 {
    let mut w = N / 2;
    while w > 0 {
        for l in 0..w {
            a[l] += a[l + w];
        }
        w /= 2;
    }
    a[0]
}

/// Pairwise sum of the lane accumulators (constant trip counts, so each
/// halving step is a few vector adds).
#[inline(always)]
fn fold(acc: [f32; LANES]) -> f32 {
    let mut a = [0.0f32; LANES / 2];
    for l in 0..LANES / 2 {
        a[l] = acc[l] + acc[l + LANES / 2];
    }
    let mut b = [0.0f32; LANES / 4];
    for l in 0..LANES / 4 {
        b[l] = a[l] + a[l + LANES / 4];
    }
    let mut c = [0.0f32; LANES / 8];
    for l in 0..LANES / 8 {
        c[l] = b[l] + b[l + LANES / 8];
    }
    c.iter().sum()
}
