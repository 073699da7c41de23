//! The Whisper graphs' parameter store, read from a checkpoint. Every store
//! key is a Hugging Face name; the one key a checkpoint does not hold,
//! `proj_out.weight`, is the token embedding (tied), shared, not copied.

use std::collections::HashMap;

use emily::Tensor;
use emily_nn::{Model, ParamStore};

use super::GraphError;
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

/// Every parameter `models` need, as f32 tensors from `ck` (checked against
/// each node's expected shape; errors name the tensor and the file).
pub fn param_store(ck: &WhisperCheckpoint, models: &[&Model]) -> Result<ParamStore, GraphError> {
    let mut loaded: HashMap<String, Tensor> = HashMap::new();
    let mut store = ParamStore::new();
    for model in models {
        for (key, spec) in model.param_specs() {
            if store.contains(&key) {
                continue;
            }
            let name = checkpoint_name(&key);
            let tensor = match loaded.get(name) {
                Some(t) => t.clone(),
                None => {
                    let record = ck.weights.get_shaped(name, &spec.shape)?;
                    let t = Tensor::from_slice(&record.to_f32_vec(), record.shape())?.eval()?;
                    loaded.insert(name.to_string(), t.clone());
                    t
                }
            };
            store.insert(key, tensor);
        }
    }
    Ok(store)
}
