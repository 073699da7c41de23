//! Run-time instruction-set selection.
//!
//! Kernels are written as plain loops that LLVM vectorises; `simd_dispatch!`
//! compiles one body three times (AVX-512, AVX2+FMA, baseline) and picks the
//! best version the running CPU supports, once per process. The binary therefore
//! runs on any x86-64 (and on aarch64, where NEON is baseline).

use std::sync::OnceLock;

/// The vector instruction set the kernels run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/VL/BW/DQ with FMA (x86-64-v4).
    Avx512,
    /// AVX2 with FMA and F16C (x86-64-v3).
    Avx2,
    /// Whatever the target's baseline is (SSE2 on x86-64, NEON on aarch64).
    Baseline,
}

/// The best instruction set of this CPU, detected once; `EMILY_ISA=avx2|baseline`
/// caps it (to test the fallback paths on a machine that has more).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

fn detect() -> Isa {
    let cap = std::env::var("EMILY_ISA").unwrap_or_default();
    #[cfg(target_arch = "x86_64")]
    {
        let v4 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let v3 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        match cap.as_str() {
            "baseline" => return Isa::Baseline,
            "avx2" if v3 => return Isa::Avx2,
            _ => {}
        }
        if v4 {
            return Isa::Avx512;
        }
        if v3 {
            return Isa::Avx2;
        }
    }
    let _ = cap;
    Isa::Baseline
}

/// Defines a function whose body is compiled once per [`Isa`] and dispatched at
/// run time. The body may call other `#[inline(always)]` functions (they inherit
/// the target features when inlined). Generic parameters are not supported;
/// write one function per element type.
///
/// ```
/// emily_kernels::simd_dispatch! {
///     /// Adds `b` into `a`.
///     pub fn add_assign(a: &mut [f32], b: &[f32]) {
///         for (x, y) in a.iter_mut().zip(b) { *x += *y; }
///     }
/// }
/// let mut a = vec![1.0f32; 5];
/// add_assign(&mut a, &[2.0; 5]);
/// assert_eq!(a, vec![3.0; 5]);
/// ```
#[macro_export]
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::simd::isa() {
                    // SAFETY: `isa()` reported these features present on this CPU.
                    $crate::simd::Isa::Avx512 => return unsafe { v4($($arg),*) },
                    $crate::simd::Isa::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::simd::Isa::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
