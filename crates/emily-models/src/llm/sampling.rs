//! Choosing the next token from logits: greedy, or sampling with
//! temperature, top-k, top-p and min-p, after a repetition penalty; seeded.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use crate::argmax::argmax;

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingOptions {
    /// Softmax temperature; `0` (or less) picks the most likely token.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches
    /// `p` (1 = all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = none).
    pub min_p: f32,
    /// Penalty on tokens already in the context (1 = none): positive logits
    /// are divided by it, negative ones multiplied.
    pub repetition_penalty: f32,
    /// How many of the latest tokens the penalty looks at (0 = all).
    pub repetition_window: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for SamplingOptions {
    /// Greedy.
    fn default() -> Self {
        SamplingOptions {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_window: 64,
            seed: 0,
        }
    }
}

impl SamplingOptions {
    /// Greedy decoding.
    pub fn greedy() -> SamplingOptions {
        SamplingOptions::default()
    }

    /// Checks the options; `Err` says which one is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() {
            return Err(format!("temperature {} is not finite", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p {} is not in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p {} is not in [0, 1]", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!(
                "repetition_penalty {} must be positive",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// A sampler: options plus the random state of one generation.
#[derive(Clone, Debug)]
pub struct Sampler {
    opts: SamplingOptions,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `opts.seed`.
    pub fn new(opts: SamplingOptions) -> Sampler {
        let rng = StdRng::seed_from_u64(opts.seed);
        Sampler { opts, rng }
    }

    /// The options.
    pub fn options(&self) -> &SamplingOptions {
        &self.opts
    }

    /// The next token for `logits`, given the `context` so far (for the
    /// repetition penalty). Ties in greedy mode go to the lowest id.
    pub fn sample(&mut self, logits: &[f32], context: &[u32]) -> u32 {
        let o = &self.opts;
        // A copy only when the penalty changes it (a vocabulary row is
        // 1 MB for Gemma's 262,144 tokens, read once per token).
        let penalised;
        let logits = if o.repetition_penalty != 1.0 {
            let mut logits = logits.to_vec();
            let start = match o.repetition_window {
                0 => 0,
                w => context.len().saturating_sub(w),
            };
            let mut seen: Vec<u32> = context[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / o.repetition_penalty
                    } else {
                        *l * o.repetition_penalty
                    };
                }
            }
            penalised = logits;
            &penalised[..]
        } else {
            logits
        };
        if o.temperature <= 0.0 {
            return argmax(logits);
        }
        // Candidates, most likely first (NaN logits never win).
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if o.top_k > 0 {
            cand.truncate(o.top_k);
        }
        if cand.is_empty() {
            return argmax(logits);
        }
        let max = cand[0].1 / o.temperature;
        let mut probs: Vec<f64> = cand
            .iter()
            .map(|&(_, l)| ((l / o.temperature - max) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if o.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs
                .iter()
                .position(|&p| {
                    acc += p;
                    acc >= o.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
        }
        if o.min_p > 0.0 {
            let floor = probs[0] * o.min_p as f64;
            let keep = probs.iter().take_while(|&&p| p >= floor).count().max(1);
            probs.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.rng.gen::<f64>() * total;
        for (i, p) in probs.iter().enumerate() {
            if r < *p {
                return cand[i].0;
            }
            r -= p;
        }
        cand[probs.len() - 1].0
    }
}
