//! Renaming CTranslate2 Whisper variables to the Hugging Face names this crate uses
//! as the canonical weight naming.
//!
//! | CTranslate2 (`S` = encoder/decoder, `N` = layer) | Hugging Face |
//! |---|---|
//! | `encoder/conv{1,2}/{weight,bias}` | `model.encoder.conv{1,2}.{weight,bias}` |
//! | `encoder/position_encodings/encodings` | `model.encoder.embed_positions.weight` |
//! | `decoder/embeddings/weight` | `model.decoder.embed_tokens.weight` |
//! | `decoder/position_encodings/encodings` | `model.decoder.embed_positions.weight` |
//! | `S/layer_norm/{gamma,beta}` | `model.S.layer_norm.{weight,bias}` |
//! | `S/layer_N/self_attention/layer_norm` | `model.S.layers.N.self_attn_layer_norm` |
//! | `S/layer_N/self_attention/linear_0` (fused Q,K,V rows) | `…self_attn.{q,k,v}_proj` |
//! | `S/layer_N/self_attention/linear_1` | `…self_attn.out_proj` |
//! | `decoder/layer_N/attention/layer_norm` | `…encoder_attn_layer_norm` |
//! | `decoder/layer_N/attention/linear_0` | `…encoder_attn.q_proj` |
//! | `decoder/layer_N/attention/linear_1` (fused K,V rows) | `…encoder_attn.{k,v}_proj` |
//! | `decoder/layer_N/attention/linear_2` | `…encoder_attn.out_proj` |
//! | `S/layer_N/ffn/layer_norm` | `…final_layer_norm` |
//! | `S/layer_N/ffn/linear_{0,1}` | `…fc1`, `…fc2` |
//!
//! Splitting the fused projections takes row ranges of the row-major `(k·d, d)`
//! matrices, so the split tensors still borrow from the memory map. Hugging Face's
//! K projections have no bias: CTranslate2 stores zeros there, and the slice is
//! dropped. (Even a non-zero K bias adds `q·b` to every score of a query, which the
//! softmax cancels, so dropping it is exact.)
//!
//! The tied output projection (`decoder/projection/weight`, an alias of the
//! embedding) and the scalar settings are not renamed; the settings are checked to
//! describe a standard Whisper model.

use std::collections::BTreeSet;
use std::path::Path;

use super::Ct2Error;
use crate::weights::Weights;

/// Scalar settings that must have these values for the Whisper graph to be right.
const REQUIRED_SETTINGS: &[(&str, i64, &str)] = &[
    ("decoder/activation", 3, "GELU activation"),
    ("decoder/pre_norm", 1, "pre-LayerNorm blocks"),
    ("decoder/scale_embeddings", 0, "unscaled embeddings"),
    ("decoder/alibi", 0, "no ALiBi"),
];

/// Number of `S/layer_N` blocks, counted from 0 until one is missing.
pub(crate) fn count_layers(vars: &Weights, side: &str) -> usize {
    (0..)
        .take_while(|i| vars.contains(&format!("{side}/layer_{i}/self_attention/linear_0/weight")))
        .count()
}

/// Builds the Hugging Face view, remembering which variables were consumed.
struct Renamer<'a> {
    vars: &'a Weights,
    out: Weights,
    used: BTreeSet<String>,
    path: &'a Path,
}

impl Renamer<'_> {
    fn rename(&mut self, ct2: &str, hf: &str) -> Result<(), Ct2Error> {
        let record = self.vars.get(ct2)?.clone();
        self.used.insert(ct2.to_string());
        self.out.insert(hf, record);
        Ok(())
    }

    /// `{gamma, beta}` to `{weight, bias}` and `{weight, bias}` to the same names.
    fn rename_norm(&mut self, ct2: &str, hf: &str) -> Result<(), Ct2Error> {
        self.rename(&format!("{ct2}/gamma"), &format!("{hf}.weight"))?;
        self.rename(&format!("{ct2}/beta"), &format!("{hf}.bias"))
    }

    fn rename_linear(&mut self, ct2: &str, hf: &str) -> Result<(), Ct2Error> {
        self.rename(&format!("{ct2}/weight"), &format!("{hf}.weight"))?;
        self.rename(&format!("{ct2}/bias"), &format!("{hf}.bias"))
    }

    /// Split a fused projection's rows into equal parts; a `None` part is dropped.
    fn split(&mut self, ct2: &str, parts: &[Option<String>]) -> Result<(), Ct2Error> {
        let record = self.vars.get(ct2)?;
        let rows = record.shape().first().copied().unwrap_or(0);
        if rows == 0 || rows % parts.len() != 0 {
            return Err(Ct2Error::Mapping {
                path: self.path.to_path_buf(),
                tensor: ct2.to_string(),
                reason: format!(
                    "shape {:?} cannot be split into {} fused projections",
                    record.shape(),
                    parts.len()
                ),
            });
        }
        let step = rows / parts.len();
        for (i, part) in parts.iter().enumerate() {
            if let Some(hf) = part {
                let slice = record.rows(ct2, i * step, (i + 1) * step)?;
                self.out.insert(hf.clone(), slice);
            }
        }
        self.used.insert(ct2.to_string());
        Ok(())
    }

    /// A fused linear layer: weight rows split into `names`, bias too except `no_bias`.
    fn split_linear(
        &mut self,
        ct2: &str,
        hf: &str,
        names: &[&str],
        no_bias: &str,
    ) -> Result<(), Ct2Error> {
        let weights: Vec<_> = names
            .iter()
            .map(|n| Some(format!("{hf}.{n}.weight")))
            .collect();
        let biases: Vec<_> = names
            .iter()
            .map(|n| (*n != no_bias).then(|| format!("{hf}.{n}.bias")))
            .collect();
        self.split(&format!("{ct2}/weight"), &weights)?;
        self.split(&format!("{ct2}/bias"), &biases)
    }

    fn layer(&mut self, side: &str, i: usize) -> Result<(), Ct2Error> {
        let ct = format!("{side}/layer_{i}");
        let hf = format!("model.{side}.layers.{i}");
        self.rename_norm(
            &format!("{ct}/self_attention/layer_norm"),
            &format!("{hf}.self_attn_layer_norm"),
        )?;
        self.split_linear(
            &format!("{ct}/self_attention/linear_0"),
            &format!("{hf}.self_attn"),
            &["q_proj", "k_proj", "v_proj"],
            "k_proj",
        )?;
        self.rename_linear(
            &format!("{ct}/self_attention/linear_1"),
            &format!("{hf}.self_attn.out_proj"),
        )?;
        if side == "decoder" {
            self.rename_norm(
                &format!("{ct}/attention/layer_norm"),
                &format!("{hf}.encoder_attn_layer_norm"),
            )?;
            self.rename_linear(
                &format!("{ct}/attention/linear_0"),
                &format!("{hf}.encoder_attn.q_proj"),
            )?;
            self.split_linear(
                &format!("{ct}/attention/linear_1"),
                &format!("{hf}.encoder_attn"),
                &["k_proj", "v_proj"],
                "k_proj",
            )?;
            self.rename_linear(
                &format!("{ct}/attention/linear_2"),
                &format!("{hf}.encoder_attn.out_proj"),
            )?;
        }
        self.rename_norm(
            &format!("{ct}/ffn/layer_norm"),
            &format!("{hf}.final_layer_norm"),
        )?;
        self.rename_linear(&format!("{ct}/ffn/linear_0"), &format!("{hf}.fc1"))?;
        self.rename_linear(&format!("{ct}/ffn/linear_1"), &format!("{hf}.fc2"))
    }
}

/// The Hugging Face-named view of CTranslate2 Whisper variables `vars` read from `path`.
///
/// Fails, naming the variable, if a Whisper tensor is missing, a setting describes a
/// different architecture, or a variable is not understood (for example the
/// `weight_zero` of an asymmetric quantization).
pub(crate) fn ct2_to_hf(vars: &Weights, path: &Path) -> Result<Weights, Ct2Error> {
    let mut r = Renamer {
        vars,
        out: Weights::new(path),
        used: BTreeSet::new(),
        path,
    };
    for side in ["encoder", "decoder"] {
        for i in 0..count_layers(vars, side) {
            r.layer(side, i)?;
        }
        r.rename_norm(
            &format!("{side}/layer_norm"),
            &format!("model.{side}.layer_norm"),
        )?;
    }
    r.rename_linear("encoder/conv1", "model.encoder.conv1")?;
    r.rename_linear("encoder/conv2", "model.encoder.conv2")?;
    r.rename(
        "encoder/position_encodings/encodings",
        "model.encoder.embed_positions.weight",
    )?;
    r.rename(
        "decoder/embeddings/weight",
        "model.decoder.embed_tokens.weight",
    )?;
    r.rename(
        "decoder/position_encodings/encodings",
        "model.decoder.embed_positions.weight",
    )?;

    for &(name, want, meaning) in REQUIRED_SETTINGS {
        if let Ok(record) = vars.get(name) {
            if record.first_as_i64() != Some(want) {
                return Err(Ct2Error::Mapping {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    reason: format!(
                        "expected {want} ({meaning}), found {:?}",
                        record.first_as_i64()
                    ),
                });
            }
        }
    }
    for (name, record) in vars.iter() {
        let known = r.used.contains(name)
            || name == "decoder/projection/weight"
            || record.shape().is_empty()
            || record.numel() <= 1;
        if !known {
            return Err(Ct2Error::Mapping {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                reason: "not a variable of a Whisper model".into(),
            });
        }
    }
    Ok(r.out)
}
