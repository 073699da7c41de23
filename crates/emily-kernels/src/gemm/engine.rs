//! Which matrix engine runs a low-precision GEMM, chosen at run time.
//!
//! Order of preference: AMX tiles (only after Linux granted the tile-data
//! permission), AVX-512 (`vdpbf16ps` for bf16, `vpdpbusd` for int8), AVX2
//! (`vpmaddwd` for int8, the portable kernels compiled for AVX2 + FMA for
//! bf16), portable. `EMILY_ISA` caps the choice: `avx512` (no AMX), `avx2`,
//! `baseline` (portable).

use std::sync::OnceLock;

/// A GEMM implementation: one instruction-set family and its blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Intel AMX tiles (`tdpbf16ps`, `tdpbusd`), 32 × 32 output blocks.
    Amx,
    /// AVX-512 with `vdpbf16ps` (AVX512-BF16) or `vpdpbusd` (AVX512-VNNI).
    Avx512,
    /// AVX2: `vpmaddwd` on widened operands for int8, the portable bf16
    /// kernel compiled for AVX2 + FMA.
    Avx2,
    /// Plain Rust, any CPU.
    Portable,
    /// The AMX blocking and tile program run through a software model of the
    /// tile registers (slow: for testing the AMX path on CPUs without AMX).
    AmxEmulated,
}

/// The operand types of a GEMM (which instructions an engine needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// bf16 × bf16 → f32.
    Bf16,
    /// u8 × s8 → i32.
    Int8,
}

impl Engine {
    /// Short lowercase name (`amx`, `avx512`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Amx => "amx",
            Engine::Avx512 => "avx512",
            Engine::Avx2 => "avx2",
            Engine::Portable => "portable",
            Engine::AmxEmulated => "amx-emulated",
        }
    }

    /// True when this CPU (and OS, for AMX) can run the engine for `p`.
    pub fn runs_here(self, p: Precision) -> bool {
        let f = features();
        match self {
            Engine::Amx => match p {
                Precision::Bf16 => f.amx_bf16,
                Precision::Int8 => f.amx_int8,
            },
            Engine::Avx512 => match p {
                Precision::Bf16 => f.avx512_bf16,
                Precision::Int8 => f.avx512_vnni,
            },
            Engine::Avx2 => f.avx2,
            Engine::Portable | Engine::AmxEmulated => true,
        }
    }

    /// Every engine this machine runs for `p`, fastest first (the emulated
    /// AMX path is not listed: it is a test vehicle).
    pub fn available(p: Precision) -> Vec<Engine> {
        [Engine::Amx, Engine::Avx512, Engine::Avx2, Engine::Portable]
            .into_iter()
            .filter(|e| e.runs_here(p))
            .collect()
    }

    /// The engine GEMMs of precision `p` use: the fastest that runs here,
    /// capped by `EMILY_ISA` (`avx512`, `avx2`, `baseline`); detected once.
    pub fn best(p: Precision) -> Engine {
        static BEST: OnceLock<[Engine; 2]> = OnceLock::new();
        let best = BEST.get_or_init(|| {
            let cap = std::env::var("EMILY_ISA").unwrap_or_default();
            [Precision::Bf16, Precision::Int8].map(|p| choose(p, &cap))
        });
        best[p as usize]
    }
}

/// The fastest engine for `p` under the `EMILY_ISA` value `cap`.
fn choose(p: Precision, cap: &str) -> Engine {
    let rank = |e: Engine| match e {
        Engine::Amx => 3,
        Engine::Avx512 => 2,
        Engine::Avx2 => 1,
        _ => 0,
    };
    let limit = match cap {
        "avx512" => 2,
        "avx2" => 1,
        "baseline" => 0,
        _ => 3,
    };
    Engine::available(p)
        .into_iter()
        .find(|&e| rank(e) <= limit)
        .unwrap_or(Engine::Portable)
}

/// What this CPU offers the GEMM engines.
#[derive(Clone, Copy, Debug, Default)]
struct Features {
    amx_bf16: bool,
    amx_int8: bool,
    avx512_bf16: bool,
    avx512_vnni: bool,
    avx2: bool,
}

fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    // The AVX-512 engine also uses F/BW/VL (masks, byte loads), which
    // `simd::isa()` checks; its `EMILY_ISA` cap does not apply here (ours does).
    let v4 = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl");
    let amx = super::amx_os::amx_usable();
    Features {
        amx_bf16: amx.bf16,
        amx_int8: amx.int8,
        avx512_bf16: v4 && is_x86_feature_detected!("avx512bf16"),
        avx512_vnni: v4 && is_x86_feature_detected!("avx512vnni"),
        avx2: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Features {
    Features::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_respected() {
        for p in [Precision::Bf16, Precision::Int8] {
            assert_eq!(choose(p, "baseline"), Engine::Portable);
            let e = choose(p, "avx2");
            assert!(matches!(e, Engine::Avx2 | Engine::Portable));
            assert_ne!(choose(p, "avx512"), Engine::Amx);
            assert!(choose(p, "").runs_here(p));
        }
    }
}
