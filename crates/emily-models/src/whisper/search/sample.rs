//! Greedy decoding and temperature sampling: `n` independent rows stepped
//! together; a row leaves the batch when it emits end-of-text.

use rand::rngs::StdRng;
use rand::Rng;

use super::super::decoding::{argmax, log_softmax};
use super::rows::Rows;
use super::{Hypothesis, Search};
use crate::whisper::transcriber::WhisperError;

/// Decodes `n` rows from the prompt's logits `first`: argmax when
/// `temperature` is `None`, else a draw from `softmax(log_probs / t)`.
pub(super) fn sample(
    search: &Search<'_>,
    rows: &mut Rows<'_>,
    mut first: Vec<f32>,
    temperature: Option<f32>,
    n: usize,
    rng: &mut StdRng,
) -> Result<Vec<Hypothesis>, WhisperError> {
    let eot = search.filter.special.eot;
    let mut done: Vec<Option<Hypothesis>> = vec![None; n];
    // The rows still decoding: which candidate each is, and its tokens so far.
    let mut alive: Vec<usize> = (0..n).collect();
    let mut seqs: Vec<Hypothesis> = vec![
        Hypothesis {
            tokens: Vec::new(),
            sum_logprob: 0.0,
        };
        n
    ];
    search.filter.apply(&mut first, &[]);
    log_softmax(&mut first);
    let mut logits: Vec<Vec<f32>> = vec![first; n];
    if n > 1 {
        rows.select(&vec![0; n])?;
    }
    for step in 0..search.max_steps {
        let last_step = step + 1 == search.max_steps;
        let mut next = Vec::with_capacity(alive.len());
        let mut keep = Vec::with_capacity(alive.len());
        for (r, &c) in alive.iter().enumerate() {
            let lp = &logits[r];
            let token = match temperature {
                None => argmax(lp),
                Some(t) => draw(lp, t, rng),
            };
            let h = &mut seqs[c];
            h.sum_logprob += lp[token as usize] as f64;
            if token == eot || last_step {
                if token != eot {
                    h.tokens.push(token);
                }
                done[c] = Some(h.clone());
            } else {
                h.tokens.push(token);
                next.push(token);
                keep.push(r);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() != alive.len() {
            rows.select(&keep)?;
            alive = keep.iter().map(|&r| alive[r]).collect();
        }
        let mut step_logits = rows.step(&next)?;
        logits = Vec::with_capacity(alive.len());
        for (r, &c) in alive.iter().enumerate() {
            let row = step_logits.row_mut(r);
            search.filter.apply(row, &seqs[c].tokens);
            log_softmax(row);
            logits.push(row.to_vec());
        }
    }
    Ok(done
        .into_iter()
        .zip(seqs)
        .map(|(d, s)| d.unwrap_or(s))
        .collect())
}

/// An index drawn from `softmax(log_probs / temperature)` (`-inf` never).
fn draw(log_probs: &[f32], temperature: f32, rng: &mut StdRng) -> u32 {
    let m = log_probs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = log_probs
        .iter()
        .map(|&l| (((l - m) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    if !total.is_finite() || total <= 0.0 {
        return argmax(log_probs);
    }
    let mut u = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    argmax(log_probs)
}
