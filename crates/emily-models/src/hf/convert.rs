//! Converting a CTranslate2 Whisper directory to the Hugging Face layout.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{write_json, HfGenerationConfig, HfPreprocessorConfig, HfWhisperConfig};
use super::HfError;
use crate::ct2::{load_ct2_dir, Ct2Error};
use crate::tokenizer::{SpecialTokens, TokenizerError};
use crate::weights::{DType, TensorRecord};
use crate::whisper::WhisperCheckpoint;

/// Errors from [`convert_ct2_to_hf`].
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The source directory could not be read.
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    /// A destination file could not be written.
    #[error(transparent)]
    Hf(#[from] HfError),
    /// The source tokenizer lacks Whisper's special tokens.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Source and destination are the same directory (`config.json` would be overwritten).
    #[error("{dir}: cannot convert a model directory into itself")]
    SameDirectory {
        /// The directory.
        dir: PathBuf,
    },
}

/// A stored tensor as a safetensors view (bytes written as they are: f16 stays f16).
struct RecordView<'a>(&'a TensorRecord);

impl safetensors::View for RecordView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.0.dtype().to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.bytes())
    }
    fn data_len(&self) -> usize {
        self.0.bytes().len()
    }
}

fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        _ => "float32",
    }
}

/// The Hugging Face `config.json` describing `ckpt`.
fn hf_config(ckpt: &WhisperCheckpoint, special: &SpecialTokens, dtype: DType) -> HfWhisperConfig {
    let d = &ckpt.dims;
    HfWhisperConfig {
        model_type: "whisper".into(),
        architectures: vec!["WhisperForConditionalGeneration".into()],
        vocab_size: d.n_vocab,
        num_mel_bins: d.n_mels,
        d_model: d.d_model,
        encoder_layers: d.n_audio_layers,
        decoder_layers: d.n_text_layers,
        encoder_attention_heads: d.n_audio_heads,
        decoder_attention_heads: d.n_text_heads,
        encoder_ffn_dim: d.ffn_dim,
        decoder_ffn_dim: d.ffn_dim,
        max_source_positions: d.n_audio_ctx,
        max_target_positions: d.n_text_ctx,
        activation_function: "gelu".into(),
        scale_embedding: false,
        tie_word_embeddings: true,
        suppress_tokens: Some(ckpt.generation.suppress_tokens.clone()),
        begin_suppress_tokens: Some(ckpt.generation.begin_suppress_tokens.clone()),
        bos_token_id: Some(special.eot),
        eos_token_id: Some(special.eot),
        pad_token_id: Some(special.eot),
        decoder_start_token_id: Some(special.sot),
        torch_dtype: Some(torch_dtype(dtype).into()),
        is_encoder_decoder: true,
    }
}

/// The Hugging Face `generation_config.json` for `ckpt`.
fn generation_config(ckpt: &WhisperCheckpoint, special: &SpecialTokens) -> HfGenerationConfig {
    let multilingual = ckpt.dims.is_multilingual();
    let mut lang_to_id = BTreeMap::new();
    let mut task_to_id = BTreeMap::new();
    if multilingual {
        for (code, id) in &special.languages {
            lang_to_id.insert(format!("<|{code}|>"), *id);
        }
        task_to_id.insert("transcribe".into(), special.transcribe);
        task_to_id.insert("translate".into(), special.translate);
    }
    HfGenerationConfig {
        alignment_heads: ckpt.generation.alignment_heads.clone(),
        suppress_tokens: ckpt.generation.suppress_tokens.clone(),
        begin_suppress_tokens: ckpt.generation.begin_suppress_tokens.clone(),
        bos_token_id: Some(special.eot),
        decoder_start_token_id: Some(special.sot),
        eos_token_id: Some(special.eot),
        pad_token_id: Some(special.eot),
        no_timestamps_token_id: Some(special.no_timestamps),
        prev_sot_token_id: Some(special.sot_prev),
        is_multilingual: multilingual,
        lang_to_id,
        task_to_id,
        max_initial_timestamp_index: Some(50),
        max_length: Some(ckpt.dims.n_text_ctx),
    }
}

/// Convert the CTranslate2 Whisper directory `from_dir` into a Hugging Face
/// directory `to_dir` (created if needed): `config.json`, `model.safetensors`
/// (tensors under HF names, dtypes kept, so f16 stays f16; the tied `proj_out` is
/// omitted), `generation_config.json` (suppress tokens, alignment heads, special
/// ids), `preprocessor_config.json` and a copy of `tokenizer.json`.
pub fn convert_ct2_to_hf(from_dir: &Path, to_dir: &Path) -> Result<(), ConvertError> {
    let ckpt = load_ct2_dir(from_dir)?;
    let special = SpecialTokens::from_tokenizer_json(&ckpt.tokenizer_path)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HfError::Io { path, source }
    };
    std::fs::create_dir_all(to_dir).map_err(io(to_dir))?;
    let same = match (from_dir.canonicalize(), to_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(ConvertError::SameDirectory {
            dir: to_dir.to_path_buf(),
        });
    }

    let st_path = to_dir.join("model.safetensors");
    let tmp_path = to_dir.join("model.safetensors.partial");
    let views = ckpt
        .weights
        .iter()
        .map(|(name, record)| (name, RecordView(record)));
    safetensors::serialize_to_file(views, &None, &tmp_path).map_err(|e| HfError::Safetensors {
        path: tmp_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::rename(&tmp_path, &st_path).map_err(io(&st_path))?;

    let dtype = ckpt
        .weights
        .get("model.decoder.embed_tokens.weight")
        .map_err(Ct2Error::from)?
        .dtype();
    write_json(
        &to_dir.join("config.json"),
        &hf_config(&ckpt, &special, dtype),
    )?;
    write_json(
        &to_dir.join("generation_config.json"),
        &generation_config(&ckpt, &special),
    )?;
    write_json(
        &to_dir.join("preprocessor_config.json"),
        &HfPreprocessorConfig::whisper(ckpt.dims.n_mels),
    )?;
    let tok_dest = to_dir.join("tokenizer.json");
    std::fs::copy(&ckpt.tokenizer_path, &tok_dest).map_err(io(&tok_dest))?;
    Ok(())
}
