//! Beam search as CTranslate2 runs it: each step takes the `2 × beam` best
//! continuations of all beams (cumulative log-probabilities); a candidate
//! among the first `beam` that ends (end-of-text, or the last step) is set
//! aside as a finished hypothesis and its place goes to the next unfinished
//! candidate; the search stops once `round(beam × patience)` hypotheses have
//! finished. The first step expands the prompt's single row.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::super::decoding::log_softmax;
use super::rows::Rows;
use super::{Hypothesis, Search};
use crate::whisper::transcriber::WhisperError;

/// A continuation: the beam it extends, the token, the cumulative score.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    beam: usize,
    token: u32,
    score: f64,
}

/// The `k` best `(beam, token)` continuations over all beams' scores
/// (`beam_scores[b] + log_probs[b][token]`, `log_probs` one row of `vocab`
/// per beam), best first; ties keep the lower flat index first.
fn top_k(log_probs: &[f32], vocab: usize, beam_scores: &[f64], k: usize) -> Vec<Candidate> {
    let mut best: Vec<Candidate> = Vec::with_capacity(k + 1);
    let worse = |a: &Candidate, b: &Candidate| -> bool {
        match a.score.total_cmp(&b.score) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => (a.beam, a.token) > (b.beam, b.token),
        }
    };
    for (beam, (lp, &base)) in log_probs.chunks(vocab).zip(beam_scores).enumerate() {
        for (token, &l) in lp.iter().enumerate() {
            if l == f32::NEG_INFINITY {
                continue;
            }
            let c = Candidate {
                beam,
                token: token as u32,
                score: base + l as f64,
            };
            if best.len() == k && !worse(best.last().expect("k > 0"), &c) {
                continue;
            }
            let at = best.partition_point(|b| !worse(b, &c));
            best.insert(at, c);
            best.truncate(k);
        }
    }
    best
}

/// Beam search from the prompt's logits `first`; returns the finished
/// hypotheses (at least one).
pub(super) fn beam_search(
    search: &Search<'_>,
    rows: &mut Rows<'_>,
    mut first: Vec<f32>,
    beam_size: usize,
    patience: f32,
) -> Result<Vec<Hypothesis>, WhisperError> {
    let eot = search.filter.special.eot;
    let max_finished = ((beam_size as f32 * patience).round() as usize).max(1);
    let mut finished: Vec<Hypothesis> = Vec::new();
    search.filter.apply(&mut first, &[]);
    log_softmax(&mut first);
    let vocab = first.len();
    let mut log_probs = first;
    // Tokens and cumulative scores of the live beams (one before the first step).
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new()];
    let mut scores: Vec<f64> = vec![0.0];
    for step in 0..search.max_steps {
        let last_step = step + 1 == search.max_steps;
        let candidates = top_k(&log_probs, vocab, &scores, 2 * beam_size);
        if candidates.is_empty() {
            break;
        }
        let mut next: Vec<Candidate> = Vec::with_capacity(beam_size);
        let mut spare = beam_size;
        for k in 0..beam_size.min(candidates.len()) {
            let c = candidates[k];
            let mut chosen = c;
            if c.token == eot || last_step {
                let mut tokens = seqs[c.beam].clone();
                if c.token != eot {
                    tokens.push(c.token);
                }
                finished.push(Hypothesis {
                    tokens,
                    sum_logprob: c.score,
                });
                // Its place goes to the next candidate that does not end.
                match candidates[spare.min(candidates.len())..]
                    .iter()
                    .position(|x| x.token != eot)
                {
                    Some(i) => {
                        chosen = candidates[spare + i];
                        spare += i + 1;
                    }
                    None => {
                        spare = candidates.len();
                        continue;
                    }
                }
            }
            next.push(chosen);
        }
        if last_step || finished.len() >= max_finished || next.is_empty() {
            break;
        }
        let origins: Vec<usize> = next.iter().map(|c| c.beam).collect();
        rows.select(&origins)?;
        seqs = next
            .iter()
            .map(|c| {
                let mut s = seqs[c.beam].clone();
                s.push(c.token);
                s
            })
            .collect();
        scores = next.iter().map(|c| c.score).collect();
        let tokens: Vec<u32> = next.iter().map(|c| c.token).collect();
        log_probs = rows.step(&tokens)?.data;
        // Each row's rules and log-softmax (a pass or three over the
        // vocabulary) on the pool's threads, a row per task.
        emily_kernels::parallel::pool().install(|| {
            log_probs
                .par_chunks_mut(vocab)
                .zip(seqs.par_iter())
                .for_each(|(row, seq)| {
                    search.filter.apply(row, seq);
                    log_softmax(row);
                })
        });
    }
    if finished.is_empty() {
        // No step ran to an end (no steps allowed): the empty hypothesis.
        finished.push(Hypothesis {
            tokens: seqs.swap_remove(0),
            sum_logprob: scores[0],
        });
    }
    Ok(finished)
}
