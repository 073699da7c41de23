//! The number type of the Whisper encoder's and decoder's matrix products.

/// The number type Whisper's matrix products run in. The decoder, a few rows
/// per step and bound by memory, keeps its stored half-precision weights and
/// the f32 GEMV except under `Int8`; its logits through the tied embedding
/// run on the int8 GEMV under `Int8Encoder` and `Int8`
/// ([`ComputeType::int8_logits`]).
///
/// - `F32`: f32 weights, f32 GEMM (the reference).
/// - `Bf16`: encoder matrices and convolutions in bf16 (prepared at load);
///   activations rounded to bf16 inside the GEMM, f32 sums; the encoder's
///   self-attention core on bf16 q, k, v (bf16 dot products on AVX512-BF16)
///   except on AMX hosts, where it stays f32
///   ([`ComputeType::bf16_attention_core`]).
/// - `Int8Encoder`: encoder projections and the decoder's cross-attention
///   K/V projections (1500 encoder rows, once per window) with 8-bit integer
///   products (activation rows quantized on the fly, weights per output
///   channel at first use); where the CPU has int8 or bf16 dot products
///   (AVX512-VNNI/BF16, AMX) the encoder's self-attention core on int8 codes
///   of bf16 q, k, v and the convolutions in bf16, elsewhere (AVX2: no such
///   instruction, bf16 only emulated) both in f32
///   ([`ComputeType::bf16_attention_core`], [`ComputeType::bf16_convolutions`]); the logits
///   on the tied embedding's per-row int8 codes (JFK logits within the
///   tolerance `whisper_compute_types` states, same tokens).
/// - `Int8`: the whole model in int8, as faster-whisper's `int8`: the
///   encoder and the cross-attention K/V projections as `Int8Encoder`, the
///   decoder's other matrices and the token embedding held as per-row int8
///   codes (CTranslate2's rule; an int8 CTranslate2 model's own codes)
///   packed for the int8-row GEMV
///   (`emily_kernels::gemv_i8`, activations in 16-bit blocks of 32; the
///   step's token rows dequantized from the embedding's codes). Half the decoder's weight bytes; the
///   JFK transcript can differ where greedy decoding is a near tie (one
///   comma: 0.08 logits apart in f32).
/// - `Auto`: the fastest of the encoder types that this CPU runs on a matrix engine
///   (AMX, AVX512-VNNI/BF16) and that keeps the JFK transcript exact and the
///   encoder output within the tolerance the tests state; see [`ComputeType::resolve`].
///   Where that is `F32`, `auto` still holds f16 cross keys and values
///   ([`ComputeType::cross_kv_dtype`]) and the encoder's matrices at their
///   stored precision ([`ComputeType::encoder_stored_weights`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ComputeType {
    /// Pick per CPU.
    #[default]
    Auto,
    /// f32 everywhere.
    F32,
    /// bf16 encoder GEMMs and convolutions.
    Bf16,
    /// int8 encoder and cross-attention K/V projections, bf16 convolutions.
    Int8Encoder,
    /// int8 encoder projections and int8 decoder weights.
    Int8,
}

impl ComputeType {
    /// The concrete type `Auto` stands for on this CPU: `Int8Encoder` when
    /// the int8 GEMM runs on a matrix engine (AMX tiles or AVX512-VNNI),
    /// else `Bf16` when the bf16 GEMM does, else `F32`. On AMX hosts `auto`
    /// was `Bf16` while the int8 types' attention core ran on slow
    /// `vdpbf16ps`; with that core on int8 dot products (`vpdpbusd`) a lent
    /// Xeon at 2 threads ran the tiny.en encoder in 79–81 ms under
    /// `int8-encoder` vs 105–112 under `bf16`, and JFK warm in 151–157 vs
    /// 203–224 ms (three interleaved rounds, BENCHMARKS.md, session 7).
    /// Other values are returned as they are.
    pub fn resolve(self) -> ComputeType {
        use emily_kernels::gemm::{Engine, Precision};
        let engine = |p| matches!(Engine::best(p), Engine::Amx | Engine::Avx512);
        match self {
            ComputeType::Auto if engine(Precision::Int8) => ComputeType::Int8Encoder,
            ComputeType::Auto if engine(Precision::Bf16) => ComputeType::Bf16,
            ComputeType::Auto => ComputeType::F32,
            other => other,
        }
    }

    /// Whether the encoder's self-attention core runs on bf16 q, k, v: under
    /// `Bf16` where the bf16 dot product is the fast path (AVX512-BF16
    /// without AMX, e.g. Zen 4: about twice the f32 FMA rate), not on AMX
    /// hosts, whose `vdpbf16ps` runs at half the f32 FMA rate (the tiles
    /// serve the projections there); under the int8 types where that core's
    /// products run on int8 codes ([`ComputeType::int8_attention`]). On an
    /// AVX2-only CPU (Zen 2) the int8 types' core stays f32: a bf16 core
    /// there only adds the rounding and widening passes (its products run
    /// at the f32 rate), 2 % of the tiny.en int8 encoder's CPU samples.
    pub fn bf16_attention_core(self) -> bool {
        (self == ComputeType::Bf16 && !amx_tiles()) || self.int8_attention()
    }

    /// Whether the encoder's convolutions run on the bf16 GEMM: under `Bf16`,
    /// and under the int8 types where the bf16 GEMM has a matrix engine
    /// (AMX tiles or AVX512-BF16). On an AVX2-only CPU the bf16 GEMM widens
    /// its operands and runs at 0.40–0.47× the f32 GEMM (Zen 2, `emily bench
    /// core`), so the int8 types keep f32 convolutions there.
    pub fn bf16_convolutions(self) -> bool {
        use emily_kernels::gemm::{Engine, Precision};
        self == ComputeType::Bf16
            || (self.int8_encoder()
                && matches!(Engine::best(Precision::Bf16), Engine::Amx | Engine::Avx512))
    }

    /// Whether the encoder's self-attention products (`q·k` and `p·v`) run
    /// on int8 codes (`emily_nn::AttentionOptions::int8_products`): under
    /// the int8 types (whose projections put the core on bf16) where the
    /// int8 GEMM runs on a matrix engine (AVX512-VNNI or AMX), i.e. where
    /// `vpdpbusd` serves them. Keys are centred and quantized per key,
    /// queries per row, values per feature, softmax weights per row and
    /// key tile.
    pub fn int8_attention(self) -> bool {
        use emily_kernels::gemm::{Engine, Precision};
        self.int8_encoder() && matches!(Engine::best(Precision::Int8), Engine::Amx | Engine::Avx512)
    }

    /// Lowercase name (`auto`, `f32`, `bf16`, `int8-encoder`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            ComputeType::Auto => "auto",
            ComputeType::F32 => "f32",
            ComputeType::Bf16 => "bf16",
            ComputeType::Int8Encoder => "int8-encoder",
            ComputeType::Int8 => "int8",
        }
    }

    /// The number type the decoder's cross-attention keys and values are
    /// held in for this type as asked for: f32 under `F32`, the reference;
    /// f16 otherwise, which halves what a window holds (18 MB for tiny.en, 37
    /// MB for base) and what every decoder step reads of them. `Auto` holds
    /// f16 ones on every CPU, also where it resolves to `F32` (no matrix
    /// engine): with f32 ones its peak RSS on such a host was 1.04× (tiny.en)
    /// to 1.12× (base) whisper.cpp f16's.
    pub fn cross_kv_dtype(self) -> emily::DType {
        match self {
            ComputeType::F32 => emily::DType::F32,
            _ => emily::DType::F16,
        }
    }

    /// Whether the encoder's weight matrices and position table are held at
    /// their stored precision (f16 in the shipped
    /// checkpoints) and widened to f32 exactly where they are used, for the
    /// type as asked for: under `Auto` where it resolves to `F32` (no matrix
    /// engine). The encoder's products are then the f32 ones bit for bit on
    /// half the weight bytes (base: 82 → 41 MB): with f32 ones `auto`'s peak
    /// RSS on such a host was 1.05× whisper.cpp f16's on base. `F32` itself,
    /// the reference, keeps f32 copies (no widening per product).
    pub fn encoder_stored_weights(self) -> bool {
        self == ComputeType::Auto && self.resolve() == ComputeType::F32
    }

    /// Whether the logits through the tied token embedding run on the int8
    /// GEMV (`emily_kernels::gemv_i8`: the table's rows as CTranslate2's
    /// per-row int8 codes, the final norm's output quantized per block of
    /// 32): under `Int8` and `Int8Encoder`, whose encoders already trade
    /// exactness for speed. Half the bytes of the largest read of a decoder
    /// step; the f16 table is then not held (the step gathers its token rows
    /// from the checkpoint, or from the int8 rows under `Int8`).
    pub fn int8_logits(self) -> bool {
        matches!(self, ComputeType::Int8Encoder | ComputeType::Int8)
    }

    /// Whether the encoder's projections use 8-bit integer products.
    pub fn int8_encoder(self) -> bool {
        matches!(self, ComputeType::Int8Encoder | ComputeType::Int8)
    }
}

/// Whether the bf16 GEMM runs on AMX tiles on this CPU.
fn amx_tiles() -> bool {
    use emily_kernels::gemm::{Engine, Precision};
    Engine::best(Precision::Bf16) == Engine::Amx
}
