//! Hugging Face Whisper JSON files: `config.json` (`WhisperConfig`),
//! `generation_config.json` and `preprocessor_config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::HfError;

/// The fields of Hugging Face's `WhisperConfig` this crate reads and writes.
/// Unknown fields are ignored when reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HfWhisperConfig {
    /// Always `"whisper"`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Model classes the weights fit.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Vocabulary size (timestamps included).
    pub vocab_size: usize,
    /// Mel bins of the input features.
    pub num_mel_bins: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Encoder blocks.
    pub encoder_layers: usize,
    /// Decoder blocks.
    pub decoder_layers: usize,
    /// Encoder attention heads.
    pub encoder_attention_heads: usize,
    /// Decoder attention heads.
    pub decoder_attention_heads: usize,
    /// Encoder MLP size.
    pub encoder_ffn_dim: usize,
    /// Decoder MLP size.
    pub decoder_ffn_dim: usize,
    /// Encoder positions (1500).
    pub max_source_positions: usize,
    /// Decoder positions (448).
    pub max_target_positions: usize,
    /// Activation between the MLP layers (`"gelu"`).
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Whether embeddings are scaled by sqrt(d_model) (false for Whisper).
    #[serde(default)]
    pub scale_embedding: bool,
    /// Whether the output projection is the token embedding (true for Whisper).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Tokens never generated.
    #[serde(default)]
    pub suppress_tokens: Option<Vec<u32>>,
    /// Tokens not generated at the first step.
    #[serde(default)]
    pub begin_suppress_tokens: Option<Vec<u32>>,
    /// Beginning-of-sequence token (`<|endoftext|>` in converted models; unused).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// `<|endoftext|>`.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Padding token (`<|endoftext|>`).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// First decoder token (`<|startoftranscript|>`).
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// Storage dtype of the weights (`"float16"`, `"float32"`).
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// Always true.
    #[serde(default = "default_true")]
    pub is_encoder_decoder: bool,
}

fn default_model_type() -> String {
    "whisper".into()
}
fn default_activation() -> String {
    "gelu".into()
}
fn default_true() -> bool {
    true
}

/// Hugging Face's `generation_config.json` for Whisper (the fields used here).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HfGenerationConfig {
    /// `[layer, head]` pairs for word alignment.
    #[serde(default)]
    pub alignment_heads: Vec<(usize, usize)>,
    /// Tokens never generated.
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    /// Tokens not generated at the first step.
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
    /// Beginning-of-sequence token (unused by Whisper decoding).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// First decoder token.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// `<|endoftext|>`.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Padding token.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// `<|notimestamps|>`.
    #[serde(default)]
    pub no_timestamps_token_id: Option<u32>,
    /// `<|startofprev|>`.
    #[serde(default)]
    pub prev_sot_token_id: Option<u32>,
    /// Whether the model knows languages other than English.
    #[serde(default)]
    pub is_multilingual: bool,
    /// `"<|en|>"` -> id (multilingual models).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lang_to_id: BTreeMap<String, u32>,
    /// `"transcribe"`/`"translate"` -> id (multilingual models).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_to_id: BTreeMap<String, u32>,
    /// Last timestamp index allowed at the first step (50 = 1.00 s).
    #[serde(default)]
    pub max_initial_timestamp_index: Option<u32>,
    /// Maximum sequence length (448).
    #[serde(default)]
    pub max_length: Option<usize>,
}

/// Hugging Face's `preprocessor_config.json` for `WhisperFeatureExtractor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HfPreprocessorConfig {
    /// Feature extractor class, `"WhisperFeatureExtractor"`.
    #[serde(default)]
    pub feature_extractor_type: Option<String>,
    /// Mel bins.
    pub feature_size: usize,
    /// Input sample rate (16000).
    pub sampling_rate: u32,
    /// STFT hop (160).
    pub hop_length: usize,
    /// FFT size (400).
    pub n_fft: usize,
    /// Window length in seconds (30).
    pub chunk_length: usize,
    /// Samples per window (480000).
    #[serde(default)]
    pub n_samples: Option<usize>,
    /// Frames per window (3000).
    #[serde(default)]
    pub nb_max_frames: Option<usize>,
    /// Padding value of the audio (0.0).
    #[serde(default)]
    pub padding_value: f32,
    /// Always false for Whisper.
    #[serde(default)]
    pub return_attention_mask: bool,
}

impl HfPreprocessorConfig {
    /// The standard Whisper feature extractor settings for `n_mels` bins.
    pub fn whisper(n_mels: usize) -> Self {
        HfPreprocessorConfig {
            feature_extractor_type: Some("WhisperFeatureExtractor".into()),
            feature_size: n_mels,
            sampling_rate: 16_000,
            hop_length: 160,
            n_fft: 400,
            chunk_length: 30,
            n_samples: Some(480_000),
            nb_max_frames: Some(3000),
            padding_value: 0.0,
            return_attention_mask: false,
        }
    }
}

/// Read and parse the JSON file at `path` as `T`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, HfError> {
    let text = std::fs::read_to_string(path).map_err(|source| HfError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| HfError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Write `value` as pretty JSON to `path`.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), HfError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| HfError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|source| HfError::Io {
        path: path.to_path_buf(),
        source,
    })
}
