//! The number type of the Whisper encoder's matrix products.

/// The number type the Whisper encoder's matrix products run in (the
/// decoder, a few rows per step and bound by memory, keeps its stored
/// half-precision weights and the f32 GEMV in every case).
///
/// - `F32`: f32 weights, f32 GEMM (the reference).
/// - `Bf16`: encoder matrices and convolutions in bf16 (prepared at load);
///   activations rounded to bf16 inside the GEMM, f32 sums.
/// - `Int8`: encoder projections with 8-bit integer products (activation
///   rows quantized on the fly, weights per output channel at first use),
///   convolutions in bf16.
/// - `Auto`: the fastest of these that this CPU runs on a matrix engine
///   (AMX, AVX512-VNNI/BF16) and that keeps the JFK transcript exact and the
///   encoder output within the tolerance the tests state; see [`ComputeType::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ComputeType {
    /// Pick per CPU.
    #[default]
    Auto,
    /// f32 everywhere.
    F32,
    /// bf16 encoder GEMMs and convolutions.
    Bf16,
    /// int8 encoder projections, bf16 convolutions.
    Int8,
}

impl ComputeType {
    /// The concrete type `Auto` stands for on this CPU: `Int8` when the int8
    /// GEMM runs on a matrix engine, else `Bf16` when the bf16 GEMM does, else
    /// `F32`. Other values are returned as they are.
    pub fn resolve(self) -> ComputeType {
        use emily_kernels::gemm::{Engine, Precision};
        let engine = |p| matches!(Engine::best(p), Engine::Amx | Engine::Avx512);
        match self {
            ComputeType::Auto if engine(Precision::Int8) => ComputeType::Int8,
            ComputeType::Auto if engine(Precision::Bf16) => ComputeType::Bf16,
            ComputeType::Auto => ComputeType::F32,
            other => other,
        }
    }

    /// Lowercase name (`auto`, `f32`, `bf16`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            ComputeType::Auto => "auto",
            ComputeType::F32 => "f32",
            ComputeType::Bf16 => "bf16",
            ComputeType::Int8 => "int8",
        }
    }
}
