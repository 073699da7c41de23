//! Loading a Hugging Face Whisper directory.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::SafeTensors;

use super::config::{read_json, HfGenerationConfig, HfPreprocessorConfig, HfWhisperConfig};
use super::HfError;
use crate::weights::{DType, TensorRecord, Weights};
use crate::whisper::{CheckpointFormat, GenerationSettings, WhisperCheckpoint, WhisperDims};

/// The canonical name of a checkpoint tensor, or `None` for tensors the canonical
/// naming leaves out: `proj_out.weight` is tied to the token embedding. Checkpoints
/// of the bare `WhisperModel` (no `model.` prefix) are accepted too.
fn canonical_name(name: &str) -> Option<String> {
    if name == "proj_out.weight" {
        None
    } else if name.starts_with("model.") {
        Some(name.to_string())
    } else {
        Some(format!("model.{name}"))
    }
}

/// Memory-map a `.safetensors` file; tensors borrow from the mapping.
pub fn read_safetensors(path: &Path) -> Result<Weights, HfError> {
    let io_err = |source| HfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    if file.metadata().map_err(io_err)?.len() == 0 {
        return Err(HfError::Safetensors {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    // SAFETY: read-only mapping of a file we do not modify.
    let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(io_err)?);
    let parsed = SafeTensors::deserialize(&map[..]).map_err(|e| HfError::Safetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let base = map.as_ptr() as usize;
    let mut weights = Weights::new(path);
    for (name, view) in parsed.tensors() {
        let dtype =
            DType::from_safetensors(view.dtype()).ok_or_else(|| HfError::UnsupportedDType {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype: format!("{:?}", view.dtype()),
            })?;
        let Some(canonical) = canonical_name(&name) else {
            continue;
        };
        // `deserialize` has checked that every tensor's bytes lie inside the buffer
        // and match its shape and dtype.
        let start = view.data().as_ptr() as usize - base;
        let range = start..start + view.data().len();
        let record = TensorRecord::mapped(map.clone(), range, view.shape().to_vec(), dtype);
        weights.insert(canonical, record);
    }
    Ok(weights)
}

/// Check that `config.json` agrees with the shapes of the weights.
fn check_config(config: &HfWhisperConfig, dims: &WhisperDims, path: &Path) -> Result<(), HfError> {
    let pairs = [
        ("vocab_size", config.vocab_size, dims.n_vocab),
        ("num_mel_bins", config.num_mel_bins, dims.n_mels),
        ("d_model", config.d_model, dims.d_model),
        ("encoder_layers", config.encoder_layers, dims.n_audio_layers),
        ("decoder_layers", config.decoder_layers, dims.n_text_layers),
        ("encoder_ffn_dim", config.encoder_ffn_dim, dims.ffn_dim),
        ("decoder_ffn_dim", config.decoder_ffn_dim, dims.ffn_dim),
        (
            "max_source_positions",
            config.max_source_positions,
            dims.n_audio_ctx,
        ),
        (
            "max_target_positions",
            config.max_target_positions,
            dims.n_text_ctx,
        ),
    ];
    for (field, in_config, in_weights) in pairs {
        if in_config != in_weights {
            return Err(HfError::ConfigMismatch {
                path: path.to_path_buf(),
                field,
                config: in_config,
                weights: in_weights,
            });
        }
    }
    if config.activation_function != "gelu" || config.scale_embedding || !config.tie_word_embeddings
    {
        return Err(HfError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "activation `{}`, scale_embedding {}, tie_word_embeddings {} (Whisper uses gelu, false, true)",
                config.activation_function, config.scale_embedding, config.tie_word_embeddings
            ),
        });
    }
    Ok(())
}

/// Check that an optional `preprocessor_config.json` describes features this crate makes.
fn check_preprocessor(
    pre: &HfPreprocessorConfig,
    n_mels: usize,
    path: &Path,
) -> Result<(), HfError> {
    let want = HfPreprocessorConfig::whisper(n_mels);
    let same = pre.feature_size == want.feature_size
        && pre.sampling_rate == want.sampling_rate
        && pre.hop_length == want.hop_length
        && pre.n_fft == want.n_fft
        && pre.chunk_length == want.chunk_length;
    if !same {
        return Err(HfError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "features {} mels, {} Hz, hop {}, n_fft {}, {} s; expected {n_mels} mels, 16000 Hz, hop 160, n_fft 400, 30 s",
                pre.feature_size, pre.sampling_rate, pre.hop_length, pre.n_fft, pre.chunk_length
            ),
        });
    }
    Ok(())
}

/// Load a Hugging Face Whisper directory: `config.json`, `model.safetensors`
/// (memory-mapped), `tokenizer.json` (must exist), and the optional
/// `generation_config.json` (suppress tokens, alignment heads; else taken from
/// `config.json`) and `preprocessor_config.json` (checked to match the featurizer).
pub fn load_hf_dir(dir: &Path) -> Result<WhisperCheckpoint, HfError> {
    let config_path = dir.join("config.json");
    let config: HfWhisperConfig = read_json(&config_path)?;
    let weights = read_safetensors(&dir.join("model.safetensors"))?;
    let dims = WhisperDims::from_weights(
        &weights,
        config.encoder_attention_heads,
        config.decoder_attention_heads,
    )?;
    check_config(&config, &dims, &config_path)?;

    let pre_path = dir.join("preprocessor_config.json");
    if pre_path.is_file() {
        check_preprocessor(&read_json(&pre_path)?, dims.n_mels, &pre_path)?;
    }
    let gen_path = dir.join("generation_config.json");
    let generation = if gen_path.is_file() {
        let g: HfGenerationConfig = read_json(&gen_path)?;
        GenerationSettings {
            suppress_tokens: g.suppress_tokens,
            begin_suppress_tokens: g.begin_suppress_tokens,
            alignment_heads: g.alignment_heads,
        }
    } else {
        GenerationSettings {
            suppress_tokens: config.suppress_tokens.clone().unwrap_or_default(),
            begin_suppress_tokens: config.begin_suppress_tokens.clone().unwrap_or_default(),
            alignment_heads: Vec::new(),
        }
    };
    let tokenizer_path = dir.join("tokenizer.json");
    if !tokenizer_path.is_file() {
        return Err(HfError::Io {
            path: tokenizer_path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json is missing"),
        });
    }
    Ok(WhisperCheckpoint {
        dir: dir.to_path_buf(),
        format: CheckpointFormat::HuggingFace,
        dims,
        weights,
        generation,
        tokenizer_path,
    })
}
