//! The 8×8 handwritten digits (1797 images of 64 pixels in 0..=16, labels
//! 0..=9; UCI's optical recognition set as scikit-learn bundles it) and a
//! two-layer classifier trained on them.

use std::path::Path;

use emily::{DType, Tensor};
use emily_nn::train::{
    accuracy, cross_entropy, Adam, Precision, StepReport, Trainer, WarmupCosine,
};
use emily_nn::{DenseOptions, Mode, Model, ModelBuilder, ParamStore};

use super::rng::Shuffler;
use super::{Error, Result};

/// Pixels per image.
pub const PIXELS: usize = 64;
/// Classes.
pub const CLASSES: usize = 10;
/// The classifier's input node.
pub const INPUT: &str = "pixels";
/// The classifier's output node (logits).
pub const LOGITS: &str = "logits";

/// Images (scaled to `[0, 1]`) and labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Digits {
    /// `len × 64` pixels, row-major.
    pub pixels: Vec<f32>,
    /// One label per image.
    pub labels: Vec<i64>,
}

impl Digits {
    /// Reads the CSV: one image per line, 64 integer pixels in `0..=16` then
    /// the label in `0..=9`. Every malformed line is an error naming it.
    pub fn load(path: impl AsRef<Path>) -> Result<Digits> {
        let path = path.as_ref();
        let err = |msg: String| Error::Data {
            path: path.display().to_string(),
            msg,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("{e} (run `scripts/fetch-data.sh digits`)")))?;
        let mut d = Digits::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let fields: Vec<&str> = line.trim().split(',').collect();
            if fields.len() != PIXELS + 1 {
                return Err(err(format!(
                    "line {}: {} fields, expected {} pixels and a label",
                    n + 1,
                    fields.len(),
                    PIXELS
                )));
            }
            for (i, f) in fields.iter().enumerate() {
                let v: u8 = f.parse().map_err(|_| {
                    err(format!(
                        "line {}: field {} `{f}` is not a number",
                        n + 1,
                        i + 1
                    ))
                })?;
                let max = if i < PIXELS { 16 } else { CLASSES as u8 - 1 };
                if v > max {
                    return Err(err(format!(
                        "line {}: field {} is {v}, above {max}",
                        n + 1,
                        i + 1
                    )));
                }
                if i < PIXELS {
                    d.pixels.push(v as f32 / 16.0);
                } else {
                    d.labels.push(v as i64);
                }
            }
        }
        if d.labels.is_empty() {
            return Err(err("no images".into()));
        }
        Ok(d)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Digits {
        let mut d = Digits::default();
        for &i in idx {
            d.pixels
                .extend_from_slice(&self.pixels[i * PIXELS..(i + 1) * PIXELS]);
            d.labels.push(self.labels[i]);
        }
        d
    }

    /// A seeded shuffle split into `(train, held_out)` with `held_out` images
    /// held out.
    pub fn split(&self, held_out: usize, seed: u64) -> (Digits, Digits) {
        let order = Shuffler::new(seed).permutation(self.len());
        let cut = self.len().saturating_sub(held_out);
        (self.select(&order[..cut]), self.select(&order[cut..]))
    }

    /// Pixels `(len, 64)` f32 and labels `(len,)` i64.
    pub fn tensors(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_slice(&self.pixels, &[self.len(), PIXELS])?,
            Tensor::from_slice(&self.labels, &[self.len()])?,
        ))
    }
}

/// A two-layer classifier: `64 → hidden` dense, GELU, dropout, `hidden → 10`.
pub fn classifier(hidden: usize, dropout: f32) -> emily_nn::Result<Model> {
    let mut b = ModelBuilder::new();
    let x = b.input(INPUT, &[None, Some(PIXELS)], DType::F32)?;
    let h = b.dense("fc1", &x, DenseOptions::new(PIXELS, hidden))?;
    let h = b.gelu("act", &h)?;
    let h = b.dropout("dropout", &h, dropout)?;
    let y = b.dense(LOGITS, &h, DenseOptions::new(hidden, CLASSES))?;
    b.output(&y)?;
    b.build()
}

/// How to train the classifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// Optimizer steps.
    pub steps: u64,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate (AdamW, warmup then cosine).
    pub lr: f64,
    /// Hidden units.
    pub hidden: usize,
    /// Dropout after the hidden layer.
    pub dropout: f32,
    /// Seed of the parameters, the batches and the dropout noise.
    pub seed: u64,
    /// Compute precision.
    pub precision: Precision,
}

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe {
            steps: 300,
            batch: 64,
            lr: 1e-2,
            hidden: 128,
            dropout: 0.1,
            seed: 0,
            precision: Precision::Full,
        }
    }
}

/// Trains a classifier on `train`; `on_step(step, report)` sees every step.
pub fn train(
    train: &Digits,
    recipe: &Recipe,
    mut on_step: impl FnMut(u64, &StepReport),
) -> Result<(Model, ParamStore)> {
    let model = classifier(recipe.hidden, recipe.dropout)?;
    let mut params = ParamStore::random(&model, recipe.seed, DType::F32)?;
    let step = model.build(&params, Mode::Train)?.train_step(
        |out, t| cross_entropy(&out[LOGITS], &t[0]),
        recipe.precision,
    )?;
    step.set_seed(recipe.seed);
    let schedule = WarmupCosine::new(recipe.lr, recipe.steps / 20 + 1, recipe.steps);
    let mut trainer = Trainer::new(step, Adam::adamw(1e-4), schedule).clip_grad_norm(5.0);
    let mut order = Shuffler::new(recipe.seed ^ 0xD1_6175);
    let mut queue: Vec<usize> = Vec::new();
    for s in 0..recipe.steps {
        if queue.len() < recipe.batch {
            queue.extend(order.permutation(train.len()));
        }
        let idx: Vec<usize> = queue.drain(..recipe.batch.min(queue.len())).collect();
        let (x, y) = train.select(&idx).tensors()?;
        let report = trainer.step(&mut params, &[(INPUT, &x)], &[&y])?;
        on_step(s, &report);
    }
    Ok((model, params))
}

/// Held-out loss and accuracy of `params` (inference mode: no dropout).
pub fn evaluate(model: &Model, params: &ParamStore, data: &Digits) -> Result<(f64, f64)> {
    let forward = model.build(params, Mode::Inference)?;
    let (x, y) = data.tensors()?;
    let logits = forward.call(&[(INPUT, &x)])?[LOGITS].clone();
    let loss = cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64;
    Ok((loss, accuracy(&logits, &y)?))
}
