//! The Whisper encoder against the machine's arithmetic peaks: its FLOP split
//! (convolutions, projections + MLP, attention), the floor at the measured
//! register-loop peaks for a compute type, and — when tiny.en is fetched —
//! the encoder's measured time on the JFK window as a share of that floor.

use std::path::Path;

use anyhow::Result;
use emily::{Kernels, Tensor};
use emily_models::log_mel::CHUNK_FRAMES;
use emily_models::whisper::{ComputeType, Session, TranscribeOptions, Whisper, WhisperDims};

use super::timer::median_secs;

/// Whisper tiny.en's sizes (the model `make models` fetches first).
pub const TINY_EN: WhisperDims = WhisperDims {
    n_mels: 80,
    d_model: 384,
    ffn_dim: 1536,
    n_audio_heads: 6,
    n_text_heads: 6,
    n_audio_layers: 4,
    n_text_layers: 4,
    n_vocab: 51864,
    n_audio_ctx: 1500,
    n_text_ctx: 448,
};

/// The measured peaks, GFLOP/s (int8: GOP/s).
#[derive(Clone, Copy, Debug)]
pub struct Peaks {
    /// f32 FMA.
    pub f32: f64,
    /// bf16 dot products.
    pub bf16: f64,
    /// u8 × s8 dot products.
    pub int8: f64,
}

/// One encoder pass's GFLOP by kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderFlops {
    /// The two convolutions (k = 3; the second has stride 2).
    pub conv: f64,
    /// q, k, v, out projections and the two MLP matrices of every layer.
    pub linear: f64,
    /// QKᵀ and PV of every layer.
    pub attention: f64,
}

impl EncoderFlops {
    /// The split for a model of `dims` (one 30 s window).
    pub fn of(dims: &WhisperDims) -> EncoderFlops {
        let (d, t) = (dims.d_model as f64, dims.n_audio_ctx as f64);
        let (layers, ffn, mels) = (
            dims.n_audio_layers as f64,
            dims.ffn_dim as f64,
            dims.n_mels as f64,
        );
        EncoderFlops {
            // conv1 at 2t positions (mels → d), conv2 at t (d → d), 3 taps.
            conv: 2.0 * (2.0 * t * d * mels * 3.0 + t * d * d * 3.0) / 1e9,
            linear: layers * 2.0 * t * (4.0 * d * d + 2.0 * d * ffn) / 1e9,
            attention: layers * 4.0 * t * t * d / 1e9,
        }
    }

    /// Total GFLOP.
    pub fn total(&self) -> f64 {
        self.conv + self.linear + self.attention
    }

    /// Milliseconds at `peaks` when the convolutions and attention run at
    /// `dense` GFLOP/s and the projections at `linear` GFLOP/s.
    fn ms(&self, dense: f64, linear: f64) -> f64 {
        ((self.conv + self.attention) / dense + self.linear / linear) * 1e3
    }

    /// The floor in ms for `compute` (resolved) at `peaks`: f32 everywhere,
    /// bf16 everywhere, or int8 projections with the convolutions and the
    /// attention in the number types the int8 types pick on this CPU
    /// ([`ComputeType::bf16_convolutions`], [`ComputeType::bf16_attention_core`]),
    /// the attention at the int8 peak where its products run on int8 codes
    /// ([`ComputeType::int8_attention`]).
    pub fn floor_ms(&self, compute: ComputeType, peaks: Peaks) -> f64 {
        let compute = compute.resolve();
        let rate = |bf16: bool| if bf16 { peaks.bf16 } else { peaks.f32 };
        match compute {
            ComputeType::F32 => self.ms(peaks.f32, peaks.f32),
            ComputeType::Bf16 => self.ms(peaks.bf16, peaks.bf16),
            _ if compute.int8_attention() => self.int8_attention_floor_ms(peaks),
            _ => {
                let conv = self.conv / rate(compute.bf16_convolutions());
                let attention = self.attention / rate(compute.bf16_attention_core());
                (conv + attention + self.linear / peaks.int8) * 1e3
            }
        }
    }

    /// The floor with the attention in int8 as well.
    pub fn int8_attention_floor_ms(&self, peaks: Peaks) -> f64 {
        (self.conv / peaks.bf16 + (self.linear + self.attention) / peaks.int8) * 1e3
    }
}

/// The rates an encoder floor is computed at: which, and the rates.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// What the rates are, for the printed line.
    pub name: &'static str,
    pub peaks: Peaks,
}

/// Prints the FLOP split and floors of `dims`, and when `model` holds a
/// Whisper model, its encoder's measured time under `auto` on the JFK window
/// and the share of each reference's floor that achieves. The target (issue
/// 11's "≥ 70 % of the measured GEMM peak") is stated against the last
/// reference.
pub fn run(model: &Path, label: &str, dims: &WhisperDims, refs: &[Reference]) -> Result<()> {
    let f = EncoderFlops::of(dims);
    println!(
        "Whisper {label} encoder: conv {:.2} GFLOP, projections + MLP {:.1}, attention {:.1} (total {:.1})",
        f.conv,
        f.linear,
        f.attention,
        f.total()
    );
    if refs.is_empty() {
        return Ok(());
    }
    let auto = ComputeType::Auto;
    for r in refs {
        let peaks = r.peaks;
        println!(
            "  encoder floor at the {}: f32 {:.1} ms; conv + attention bf16, projections int8 {:.1} ms; attention int8 too {:.1} ms",
            r.name,
            f.floor_ms(ComputeType::F32, peaks),
            f.ms(peaks.bf16, peaks.int8),
            f.int8_attention_floor_ms(peaks)
        );
    }
    if !model.join("model.bin").exists() && !model.join("model.safetensors").exists() {
        println!("  (no model at {}: encoder not timed)", model.display());
        return Ok(());
    }
    let w = Whisper::load_with(model, Kernels::Fused, auto)?;
    anyhow::ensure!(
        w.dims() == dims,
        "{}: dims differ from the {label} figures above",
        model.display()
    );
    let samples = emily_models::audio::load_audio(Path::new("samples/jfk.wav"))?;
    let mut session = Session::from_samples(&w, &samples, &TranscribeOptions::greedy())?;
    let Some(window) = session.next_window()? else {
        anyhow::bail!("samples/jfk.wav has no window");
    };
    let x = Tensor::from_slice(window, &[1, dims.n_mels, CHUNK_FRAMES])?;
    let secs = median_secs(1.0, || {
        w.graph()
            .encode(&x)
            .and_then(|y| Ok(y.eval()?))
            .expect("encoder pass");
    });
    let ms = secs * 1e3;
    println!(
        "  encoder measured ({} = {}): {ms:.1} ms, {:.0} GFLOP/s",
        auto.name(),
        auto.resolve().name(),
        f.total() / secs,
    );
    for (i, r) in refs.iter().enumerate() {
        let floor = f.floor_ms(auto, r.peaks);
        let target = if i + 1 == refs.len() {
            " (target >= 70%)"
        } else {
            ""
        };
        println!(
            "    floor at the {} {floor:.1} ms -> {:.0}% of that rate{target}",
            r.name,
            100.0 * floor / ms
        );
    }
    super::encoder_profile::breakdown(&w, &x, &samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_en_split_and_floors() {
        let dims = TINY_EN;
        let f = EncoderFlops::of(&dims);
        // conv1 2·3000·240·384, conv2 2·1500·1152·384.
        assert!((f.conv - (0.55296 + 1.327104)).abs() < 1e-9);
        assert!((f.linear - 21.233664).abs() < 1e-9);
        assert!((f.attention - 13.824).abs() < 1e-9);
        let peaks = Peaks {
            f32: 100.0,
            bf16: 200.0,
            int8: 400.0,
        };
        let want_f32 = f.total() / 100.0 * 1e3;
        assert!((f.floor_ms(ComputeType::F32, peaks) - want_f32).abs() < 1e-9);
        let int8 = ComputeType::Int8Encoder;
        let rate = |bf16: bool| if bf16 { 200.0 } else { 100.0 };
        let mixed = if int8.int8_attention() {
            f.conv / 200.0 * 1e3 + (f.linear + f.attention) / 400.0 * 1e3
        } else {
            // AVX2-only: convolutions and attention in f32 (Zen 2).
            (f.conv / rate(int8.bf16_convolutions())
                + f.attention / rate(int8.bf16_attention_core())
                + f.linear / 400.0)
                * 1e3
        };
        assert!((f.floor_ms(ComputeType::Int8Encoder, peaks) - mixed).abs() < 1e-9);
    }
}
