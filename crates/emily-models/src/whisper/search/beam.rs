//! Beam search as CTranslate2 runs it: each step takes the `2 × beam` best
//! continuations of all beams (cumulative log-probabilities); a candidate
//! among the first `beam` that ends (end-of-text, or the last step) is set
//! aside as a finished hypothesis and its place goes to the next unfinished
//! candidate; the search stops once `round(beam × patience)` hypotheses have
//! finished. The first step expands the prompt's single row.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::super::decoding::{log_prob, max_logit};
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

/// Logits scanned per bound check in [`top_k`].
const CHUNK: usize = 64;

/// The `k` best `(beam, token)` continuations over all beams' scores
/// (`beam_scores[b] + log_prob(logits[b][token], norms[b])`, `logits` one
/// row of `vocab` per beam, `norms` their log-normalisers), best first; ties
/// keep the lower flat index first. Once `k` are held, a chunk of logits
/// whose largest cannot beat the `k`-th is passed over (the log-probability
/// rises with the logit, and a later equal score never wins a tie): the
/// same candidates as scoring every token.
fn top_k(
    logits: &[f32],
    vocab: usize,
    norms: &[f64],
    beam_scores: &[f64],
    k: usize,
) -> Vec<Candidate> {
    let mut best: Vec<Candidate> = Vec::with_capacity(k + 1);
    let worse = |a: &Candidate, b: &Candidate| -> bool {
        match a.score.total_cmp(&b.score) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => (a.beam, a.token) > (b.beam, b.token),
        }
    };
    let rows = logits.chunks(vocab).zip(norms).zip(beam_scores);
    for (beam, ((row, &norm), &base)) in rows.enumerate() {
        if norm == f64::NEG_INFINITY {
            // Every token of the row is suppressed.
            continue;
        }
        for (c0, chunk) in row.chunks(CHUNK).enumerate() {
            if best.len() == k {
                let top = max_logit(chunk);
                let bound = base + log_prob(top, norm) as f64;
                if top == f32::NEG_INFINITY || bound <= best[k - 1].score {
                    continue;
                }
            }
            for (i, &l) in chunk.iter().enumerate() {
                if l == f32::NEG_INFINITY {
                    continue;
                }
                let c = Candidate {
                    beam,
                    token: (c0 * CHUNK + i) as u32,
                    score: base + log_prob(l, norm) as f64,
                };
                if best.len() == k && !worse(best.last().expect("k > 0"), &c) {
                    continue;
                }
                let at = best.partition_point(|b| !worse(b, &c));
                best.insert(at, c);
                best.truncate(k);
            }
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
    // Each row stays logits with its log-normaliser beside it: top-k turns
    // only the candidates it looks at into log-probabilities.
    let mut norms = vec![search.filter.apply_normaliser(&mut first, &[])];
    let vocab = first.len();
    let mut logits = first;
    // Tokens and cumulative scores of the live beams (one before the first step).
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new()];
    let mut scores: Vec<f64> = vec![0.0];
    for step in 0..search.max_steps {
        let last_step = step + 1 == search.max_steps;
        let candidates = top_k(&logits, vocab, &norms, &scores, 2 * beam_size);
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
        logits = rows.step(&tokens)?.data;
        // Each row's rules and log-normaliser (a pass or three over the
        // vocabulary) on the pool's threads, a row per task.
        norms = emily_kernels::parallel::pool().install(|| {
            logits
                .par_chunks_mut(vocab)
                .zip(seqs.par_iter())
                .map(|(row, seq)| search.filter.apply_normaliser(row, seq))
                .collect()
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::whisper::decoding::log_normaliser;

    /// Every token scored and sorted (score down, flat index up), the first `k`.
    fn every_token(
        logits: &[f32],
        vocab: usize,
        scores: &[f64],
        k: usize,
    ) -> Vec<(usize, u32, f64)> {
        let mut all = Vec::new();
        for (b, (row, &base)) in logits.chunks(vocab).zip(scores).enumerate() {
            let norm = log_normaliser(row);
            for (t, &l) in row.iter().enumerate() {
                if l != f32::NEG_INFINITY {
                    all.push((b, t as u32, base + log_prob(l, norm) as f64));
                }
            }
        }
        all.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        all.truncate(k);
        all
    }

    /// The chunk bound passes over nothing that scoring every token keeps:
    /// odd vocabularies, coarse logits (many equal scores), equal and
    /// unequal beam scores, suppressed tokens and a fully suppressed row.
    #[test]
    fn top_k_equals_scoring_every_token() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for vocab in [1, 7, 77, 1000, 4099] {
            for beams in [1, 2, 5] {
                for coarse in [false, true] {
                    let mut logits: Vec<f32> = (0..vocab * beams)
                        .map(|_| {
                            let v: f32 = rng.gen_range(-8.0..8.0);
                            if coarse {
                                v.round() / 2.0
                            } else {
                                v
                            }
                        })
                        .collect();
                    for i in (0..logits.len()).step_by(5) {
                        logits[i] = f32::NEG_INFINITY;
                    }
                    if beams > 2 {
                        logits[vocab..2 * vocab].fill(f32::NEG_INFINITY);
                    }
                    let scores: Vec<f64> = (0..beams)
                        .map(|b| if coarse { -1.0 } else { -(b as f64) * 0.3 })
                        .collect();
                    let norms: Vec<f64> = logits.chunks(vocab).map(log_normaliser).collect();
                    for k in [1, 2, 10] {
                        let got: Vec<(usize, u32, f64)> = top_k(&logits, vocab, &norms, &scores, k)
                            .iter()
                            .map(|c| (c.beam, c.token, c.score))
                            .collect();
                        let want = every_token(&logits, vocab, &scores, k);
                        assert_eq!(
                            got, want,
                            "vocab {vocab} beams {beams} coarse {coarse} k {k}"
                        );
                    }
                }
            }
        }
    }
}
