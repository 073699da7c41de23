//! Which integer dot-product instructions the quantized kernels use.

use crate::simd::{self, Isa};

/// An implementation of the quantized-weight dot products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantIsa {
    /// AVX512-VNNI `vpdpbusd` on 256-bit vectors (with AVX-512 BW/VL).
    Avx512Vnni,
    /// AVX-VNNI (the VEX encoding of `vpdpbusd`) with AVX2.
    AvxVnni,
    /// AVX2 `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// Plain integer loops (any CPU).
    Portable,
}

impl QuantIsa {
    /// Every implementation, best first.
    pub const ALL: [QuantIsa; 4] = [
        QuantIsa::Avx512Vnni,
        QuantIsa::AvxVnni,
        QuantIsa::Avx2,
        QuantIsa::Portable,
    ];

    /// The best implementation this CPU runs, within the cap that
    /// `EMILY_ISA` puts on [`simd::isa`] (`avx2` leaves AVX2 without VNNI,
    /// `baseline` the portable loops). Detected once.
    pub fn detected() -> QuantIsa {
        static DETECTED: std::sync::OnceLock<QuantIsa> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            let cap = simd::isa();
            let vnni_allowed = std::env::var("EMILY_ISA").map_or(true, |v| v != "avx2");
            QuantIsa::ALL
                .into_iter()
                .find(|q| {
                    q.available()
                        && match q {
                            QuantIsa::Avx512Vnni => cap == Isa::Avx512 && vnni_allowed,
                            QuantIsa::AvxVnni => cap != Isa::Baseline && vnni_allowed,
                            QuantIsa::Avx2 => cap != Isa::Baseline,
                            QuantIsa::Portable => true,
                        }
                })
                .unwrap_or(QuantIsa::Portable)
        })
    }

    /// Whether this CPU has the instructions (regardless of `EMILY_ISA`).
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            match self {
                QuantIsa::Avx512Vnni => {
                    avx2 && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512vnni")
                }
                QuantIsa::AvxVnni => avx2 && is_x86_feature_detected!("avxvnni"),
                QuantIsa::Avx2 => avx2,
                QuantIsa::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == QuantIsa::Portable
        }
    }

    /// The implementations this CPU runs, best first.
    pub fn all_available() -> Vec<QuantIsa> {
        QuantIsa::ALL
            .into_iter()
            .filter(|q| q.available())
            .collect()
    }

    /// A short name for messages and benchmarks.
    pub const fn name(self) -> &'static str {
        match self {
            QuantIsa::Avx512Vnni => "avx512-vnni",
            QuantIsa::AvxVnni => "avx-vnni",
            QuantIsa::Avx2 => "avx2",
            QuantIsa::Portable => "portable",
        }
    }
}
