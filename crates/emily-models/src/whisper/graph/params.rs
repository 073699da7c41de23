//! The Whisper graphs' parameter store, read from a checkpoint. Every store
//! key is a Hugging Face name; the one key a checkpoint does not hold,
//! `proj_out.weight`, is the token embedding (tied).
//!
//! Precision follows the direct implementation: the decoder's projection
//! matrices and the tied `proj_out` keep their stored precision (f16 for the
//! shipped checkpoints), so a decode step streams half the bytes through the
//! core's mixed-precision GEMV (f32 activations, f32 accumulation); every
//! other parameter is f32, except that `auto` on a CPU without a matrix
//! engine keeps the encoder's matrices and position table at their stored
//! precision too ([`ComputeType::encoder_stored_weights`]; exact f32
//! products). The token embedding itself is no parameter: the
//! step gathers its rows outside the graph ([`super::TokenTable`]), and where
//! the logits run on int8 rows ([`ComputeType::int8_logits`]) the head holds
//! only the final norm, so no f16 table is held at all.
//!
//! Memory: a tensor reads the checkpoint's memory map in place when its bytes
//! are aligned; a CTranslate2 file puts most tensors at odd offsets, so those
//! are copied, and a converted tensor (f32, bf16, int8 blocks) is a copy too.
//! The file pages behind every copy are released from the resident set
//! ([`TensorRecord::release_pages`]), so each weight is resident once.

use std::collections::HashMap;

use emily::{DType, Tensor};
use emily_nn::{Model, ParamStore};

use super::GraphError;
use crate::weights::{DType as StoredDType, TensorRecord};
use crate::whisper::ComputeType;
use crate::whisper::WhisperCheckpoint;

/// The tied output projection's store key.
pub const TIED_OUTPUT: &str = "proj_out.weight";
/// The tensor it is tied to.
pub const TOKEN_EMBEDDING: &str = "model.decoder.embed_tokens.weight";

/// The checkpoint tensor behind a store key.
pub fn checkpoint_name(key: &str) -> &str {
    if key == TIED_OUTPUT {
        TOKEN_EMBEDDING
    } else {
        key
    }
}

/// Whether the parameter under `key` (of rank `rank`) keeps its stored
/// precision: the decoder's projection matrices and the token embedding with
/// its tied output projection (one shared half-precision table).
pub fn keeps_stored_precision(key: &str, rank: usize) -> bool {
    key == TIED_OUTPUT
        || key == TOKEN_EMBEDDING
        || (rank == 2 && key.starts_with("model.decoder.layers.") && key.ends_with(".weight"))
}

/// Whether the parameter under `key` (of rank `rank`) is one of the encoder's
/// weight matrices, convolutions or its position table.
pub fn encoder_weight(key: &str, rank: usize) -> bool {
    rank >= 2 && key.starts_with("model.encoder.") && key.ends_with(".weight")
}

/// Whether the encoder parameter under `key` (of rank `rank`) is held at its
/// stored precision if [`ComputeType::encoder_stored_weights`]: the
/// projection matrices and the position table (widened exactly by the mixed
/// f32 product and by the position add), not the convolutions (1.6 MB on
/// base; `conv1d` takes f32 or bf16 weights only).
pub fn stored_encoder_weight(key: &str, rank: usize) -> bool {
    encoder_weight(key, rank) && rank == 2
}

/// Whether the encoder parameter under `key` (of rank `rank`) is prepared in
/// bf16 for `compute` (a concrete type): every encoder matrix for `Bf16`, the
/// convolutions for the int8 types where they run on the bf16 GEMM
/// ([`ComputeType::bf16_convolutions`]; their projections quantize f32
/// weights).
pub fn encoder_bf16(key: &str, rank: usize, compute: ComputeType) -> bool {
    match compute {
        ComputeType::Bf16 => encoder_weight(key, rank),
        ComputeType::Int8Encoder | ComputeType::Int8 => {
            encoder_weight(key, rank) && rank == 3 && compute.bf16_convolutions()
        }
        _ => false,
    }
}

/// Whether the parameter under `key` (of rank `rank`) is an encoder
/// projection matrix that runs on the int8 engine under `compute` (a concrete
/// type). It is read at its stored precision (no f32 copy) and packed at load
/// into its own int8 storage ([`emily::Tensor::pack_int8_weight`]), so
/// neither the stored bytes nor their file pages stay resident beside it.
pub fn encoder_int8(key: &str, rank: usize, compute: ComputeType) -> bool {
    compute.int8_encoder()
        && rank == 2
        && key.starts_with("model.encoder.layers.")
        && key.ends_with(".weight")
}

/// Whether the parameter under `key` (of rank `rank`) is a decoder layer's
/// cross-attention key or value projection that runs on the int8 engine
/// under `compute` (a concrete type): under both int8 types. They read the
/// 1500 encoder rows once per window — a GEMM (see
/// `WhisperGraph::with_compute`); the int8-row GEMV that holds `Int8`'s
/// other decoder matrices ([`decoder_int8`], one row per step) took ~7 ms
/// longer per JFK window. Packed at load like [`encoder_int8`]'s matrices:
/// one scale per output channel, which recovers a CTranslate2 int8 model's
/// own per-row codes.
pub fn cross_kv_int8(key: &str, rank: usize, compute: ComputeType) -> bool {
    compute.int8_encoder()
        && rank == 2
        && key.starts_with("model.decoder.layers.")
        && (key.ends_with(".encoder_attn.k_proj.weight")
            || key.ends_with(".encoder_attn.v_proj.weight"))
}

/// Whether the parameter under `key` of `shape` is held in int8 for
/// `compute` (a concrete type): under `Int8` the matrices that otherwise keep
/// their stored precision (the decoder's projections, the token embedding and
/// its tied output projection), as CTranslate2's per-row int8 codes packed
/// for the int8-row GEMV ([`Tensor::from_int8_rows`], a `Q8_0` weight to the
/// graph; rows must be whole blocks of 32).
pub fn decoder_int8(key: &str, shape: &[usize], compute: ComputeType) -> bool {
    compute == ComputeType::Int8
        && keeps_stored_precision(key, shape.len())
        && !cross_kv_int8(key, shape.len(), compute)
        && shape.last().is_some_and(|&k| k > 0 && k % 32 == 0)
}

/// Every parameter `models` need, from `ck` (checked against each node's
/// expected shape; errors name the tensor and the file), with the encoder's
/// matrices prepared for the concrete `compute` type, or held at their stored
/// precision if `encoder_stored` ([`ComputeType::encoder_stored_weights`]).
/// A checkpoint tensor read twice at one precision is one tensor in the store.
pub fn param_store(
    ck: &WhisperCheckpoint,
    models: &[&Model],
    compute: ComputeType,
    encoder_stored: bool,
) -> Result<ParamStore, GraphError> {
    let mut loaded: HashMap<(String, bool), Tensor> = HashMap::new();
    let mut store = ParamStore::new();
    for model in models {
        for (key, spec) in model.param_specs() {
            if store.contains(&key) {
                continue;
            }
            let name = checkpoint_name(&key);
            let rank = spec.shape.len();
            let stored = keeps_stored_precision(&key, rank)
                || encoder_int8(&key, rank, compute)
                || (encoder_stored && stored_encoder_weight(&key, rank));
            let id = (name.to_string(), stored);
            let tensor = match loaded.get(&id) {
                Some(t) => t.clone(),
                None => {
                    let record = ck.weights.get_shaped(name, &spec.shape)?;
                    let (mut t, mut in_place) = if decoder_int8(&key, &spec.shape, compute) {
                        (read_int8(&key, record)?, false)
                    } else {
                        read(record, stored)?
                    };
                    if encoder_bf16(&key, spec.shape.len(), compute) {
                        t = t.cast(DType::BF16)?.eval()?;
                        in_place = false;
                    }
                    if encoder_int8(&key, rank, compute) || cross_kv_int8(&key, rank, compute) {
                        // Packed now into the weight's own storage: the
                        // stored bytes (a copy, or the file's pages) go.
                        t = t.pack_int8_weight(true)?;
                        in_place = false;
                    }
                    if !in_place {
                        // Only the copy is used: the file's pages need not stay.
                        record.release_pages();
                    }
                    loaded.insert(id, t.clone());
                    t
                }
            };
            store.insert(key, tensor);
        }
    }
    Ok(store)
}

/// One checkpoint matrix as its per-row int8 codes (those of a CTranslate2
/// int8 model, recovered exactly from its dequantized values) packed for the
/// int8-row GEMV ([`Tensor::from_int8_rows`]: a `Q8_0` weight to the graph),
/// converted a few rows at a time and held without a further copy.
fn read_int8(key: &str, record: &TensorRecord) -> Result<Tensor, GraphError> {
    let rows = super::logits::int8_rows(key, record)?;
    Ok(Tensor::from_int8_rows(std::sync::Arc::new(rows))?)
}

/// One checkpoint tensor as f32, or in its stored half precision if
/// `stored`, and whether it reads the checkpoint's bytes in place (a
/// misaligned or converted tensor is a copy).
fn read(record: &TensorRecord, stored: bool) -> Result<(Tensor, bool), GraphError> {
    let dtype = match record.dtype() {
        StoredDType::F16 if stored => Some(DType::F16),
        StoredDType::BF16 if stored => Some(DType::BF16),
        StoredDType::F32 => Some(DType::F32),
        _ => None,
    };
    match dtype {
        // Read from the memory map in place (copied by the tensor when the
        // bytes are not aligned to the element size).
        Some(dtype) => {
            let aligned = (record.bytes().as_ptr() as usize).is_multiple_of(dtype.size_in_bytes());
            if !aligned && record.is_mapped() {
                // Copied a few MB at a time, the file pages of each part
                // released as it goes (the caller's release finds none).
                let t = Tensor::from_external(
                    record.copy_releasing_pages()?,
                    0,
                    record.shape(),
                    dtype,
                )?;
                return Ok((t, false));
            }
            let (owner, range) = record.shared_bytes();
            let t = Tensor::from_external(owner, range.start, record.shape(), dtype)?;
            Ok((t, aligned && record.is_mapped()))
        }
        None => Ok((
            Tensor::from_slice(&record.to_f32_vec(), record.shape())?.eval()?,
            false,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_cross_kv_matrices_are_the_cross_attention_key_value_projections() {
        let k = "model.decoder.layers.3.encoder_attn.k_proj.weight";
        let v = "model.decoder.layers.0.encoder_attn.v_proj.weight";
        for key in [k, v] {
            assert!(cross_kv_int8(key, 2, ComputeType::Int8Encoder));
            assert!(cross_kv_int8(key, 2, ComputeType::Int8));
            // Not also the int8-row GEMV's.
            assert!(!decoder_int8(key, &[384, 384], ComputeType::Int8));
            assert!(!cross_kv_int8(key, 2, ComputeType::F32));
            assert!(!cross_kv_int8(key, 2, ComputeType::Bf16));
        }
        for other in [
            "model.decoder.layers.3.encoder_attn.q_proj.weight",
            "model.decoder.layers.3.self_attn.k_proj.weight",
            "model.decoder.layers.3.encoder_attn.k_proj.bias",
        ] {
            assert!(
                !cross_kv_int8(other, 2, ComputeType::Int8Encoder),
                "{other}"
            );
        }
    }

    #[test]
    fn stored_encoder_weights_are_the_matrices_and_the_position_table() {
        for key in [
            "model.encoder.layers.0.fc1.weight",
            "model.encoder.layers.5.self_attn.out_proj.weight",
            "model.encoder.embed_positions.weight",
        ] {
            assert!(stored_encoder_weight(key, 2), "{key}");
        }
        assert!(!stored_encoder_weight("model.encoder.conv1.weight", 3));
        assert!(!stored_encoder_weight("model.encoder.layers.0.fc1.bias", 1));
        assert!(!stored_encoder_weight("model.encoder.layer_norm.weight", 1));
        assert!(!stored_encoder_weight(
            "model.decoder.layers.0.fc1.weight",
            2
        ));
    }

    #[test]
    fn int8_encoder_matrices_are_the_encoder_layers_projections() {
        let fc1 = "model.encoder.layers.0.fc1.weight";
        assert!(encoder_int8(fc1, 2, ComputeType::Int8Encoder));
        assert!(encoder_int8(fc1, 2, ComputeType::Int8));
        assert!(!encoder_int8(fc1, 2, ComputeType::F32));
        assert!(!encoder_int8(fc1, 2, ComputeType::Bf16));
        assert!(!encoder_int8(
            "model.encoder.layers.0.fc1.bias",
            1,
            ComputeType::Int8
        ));
        assert!(!encoder_int8(
            "model.encoder.embed_positions.weight",
            2,
            ComputeType::Int8
        ));
        assert!(!encoder_int8(
            "model.encoder.conv1.weight",
            3,
            ComputeType::Int8
        ));
    }
}
