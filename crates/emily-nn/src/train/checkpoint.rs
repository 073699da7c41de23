//! Checkpoints as safetensors files: parameters (and optionally optimizer
//! state, the loss scaler and the step count) written with their exact bytes
//! and dtypes, so a round trip is bit for bit.
//!
//! A parameter file ([`save_params`]) holds the store's keys as they are. A
//! training checkpoint ([`save_checkpoint`]) prefixes parameters with
//! `param/` and optimizer tensors with `optimizer/`, and keeps the optimizer
//! kind, step counts and loss scale in the header's metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use emily::{DType, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::optim::OptimizerState;
use crate::error::{Error, Result};
use crate::params::ParamStore;

const FORMAT: &str = "emily-train-checkpoint-v1";

/// Everything needed to resume training.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// The (master) parameters.
    pub params: ParamStore,
    /// The optimizer's state, if saved.
    pub optimizer: Option<OptimizerState>,
    /// Training steps taken (including skipped ones).
    pub step: u64,
    /// The loss scaler's scale and clean-step count, in mixed precision.
    pub loss_scale: Option<(f64, u64)>,
}

/// The safetensors dtype of `d` (`None` for block-quantised weights, which
/// training never produces and safetensors cannot hold).
fn to_st(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
        DType::Quantized(_) => return None,
    })
}

fn from_st(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// Writes named tensors and metadata (evaluating pending tensors).
fn write(path: &Path, tensors: Vec<(String, Tensor)>, meta: HashMap<String, String>) -> Result<()> {
    let arrays = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.array()?)))
        .collect::<Result<Vec<_>>>()?;
    let bytes = arrays
        .iter()
        .map(|(_, a)| a.to_host_bytes())
        .collect::<emily::Result<Vec<_>>>()?;
    let views = arrays
        .iter()
        .zip(&bytes)
        .map(|((k, a), b)| {
            let dtype = to_st(a.dtype()).ok_or_else(|| {
                err(
                    path,
                    format!("tensor `{k}`: {} cannot be checkpointed", a.dtype()),
                )
            })?;
            TensorView::new(dtype, a.shape().to_vec(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| err(path, format!("tensor `{k}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, &Some(meta), path).map_err(|e| err(path, e.to_string()))
}

/// Reads every tensor and the metadata of a safetensors file.
fn read(path: &Path) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| err(path, format!("bad header: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(path, format!("bad file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = from_st(view.dtype()).ok_or_else(|| {
            err(
                path,
                format!("tensor `{name}` has unsupported dtype {:?}", view.dtype()),
            )
        })?;
        let t = Tensor::from_bytes(view.data(), view.shape(), dtype)
            .map_err(|e| err(path, format!("tensor `{name}`: {e}")))?;
        out.insert(name, t);
    }
    Ok((out, meta))
}

/// Writes a parameter store (keys as they are).
pub fn save_params(path: impl AsRef<Path>, params: &ParamStore) -> Result<()> {
    let tensors = params
        .iter()
        .map(|(k, t)| (k.to_string(), t.clone()))
        .collect();
    write(path.as_ref(), tensors, HashMap::new())
}

/// Reads a parameter store written by [`save_params`] (or any safetensors
/// file of supported dtypes).
pub fn load_params(path: impl AsRef<Path>) -> Result<ParamStore> {
    Ok(read(path.as_ref())?.0.into_iter().collect())
}

/// Writes a training checkpoint.
pub fn save_checkpoint(path: impl AsRef<Path>, ckpt: &Checkpoint) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = ckpt
        .params
        .iter()
        .map(|(k, t)| (format!("param/{k}"), t.clone()))
        .collect();
    let mut meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("step".to_string(), ckpt.step.to_string()),
    ]);
    if let Some(o) = &ckpt.optimizer {
        meta.insert("optimizer".into(), o.kind.clone());
        meta.insert("optimizer_step".into(), o.step.to_string());
        tensors.extend(
            o.tensors
                .iter()
                .map(|(k, t)| (format!("optimizer/{k}"), t.clone())),
        );
    }
    if let Some((scale, clean)) = ckpt.loss_scale {
        meta.insert("loss_scale".into(), format!("{scale:e}"));
        meta.insert("loss_scale_clean_steps".into(), clean.to_string());
    }
    write(path.as_ref(), tensors, meta)
}

/// Reads a checkpoint written by [`save_checkpoint`]; every field is checked
/// and named in errors.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let (tensors, meta) = read(path)?;
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(err(
            path,
            format!(
                "not a training checkpoint (metadata `format` is {:?}, expected {FORMAT:?})",
                meta.get("format")
            ),
        ));
    }
    let number = |key: &str| -> Result<u64> {
        meta.get(key)
            .ok_or_else(|| err(path, format!("metadata `{key}` is missing")))?
            .parse()
            .map_err(|e| err(path, format!("metadata `{key}`: {e}")))
    };
    let mut ckpt = Checkpoint {
        step: number("step")?,
        ..Checkpoint::default()
    };
    let mut opt = BTreeMap::new();
    for (name, t) in tensors {
        if let Some(k) = name.strip_prefix("param/") {
            ckpt.params.insert(k, t);
        } else if let Some(k) = name.strip_prefix("optimizer/") {
            opt.insert(k.to_string(), t);
        } else {
            return Err(err(path, format!("unexpected tensor `{name}`")));
        }
    }
    if let Some(kind) = meta.get("optimizer") {
        ckpt.optimizer = Some(OptimizerState {
            kind: kind.clone(),
            step: number("optimizer_step")?,
            tensors: opt,
        });
    } else if !opt.is_empty() {
        return Err(err(path, "optimizer tensors without metadata `optimizer`"));
    }
    if let Some(s) = meta.get("loss_scale") {
        let scale: f64 = s
            .parse()
            .map_err(|e| err(path, format!("metadata `loss_scale`: {e}")))?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(
                path,
                format!("metadata `loss_scale` {scale} is not a positive number"),
            ));
        }
        ckpt.loss_scale = Some((scale, number("loss_scale_clean_steps")?));
    }
    Ok(ckpt)
}
