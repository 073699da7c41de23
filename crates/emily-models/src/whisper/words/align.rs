//! Aligning a window's text tokens to its audio frames: the decoder is run
//! once over `start sequence, <|notimestamps|>, text, <|endoftext|>`, the
//! alignment heads' cross-attention weights are computed from the queries it
//! returns (plain matmul and softmax, whatever kernels the graphs use), and
//! [`super::dtw`] finds the path; each text token also gets its probability.

use emily::{DType, Tensor};

use super::dtw::{median_filter, negative_dtw, standardize_over_tokens};
use super::{words_from_path, TimedWord, MEDIAN_FILTER_WIDTH};
use crate::tokenizer::Task;
use crate::whisper::decoding::first_non_finite;
use crate::whisper::graph::GraphError;
use crate::whisper::transcriber::{Whisper, WhisperError};

/// The timed words (window-relative seconds) of `text_tokens` decoded from the
/// window whose encoder output is `enc` and which holds `num_frames` frames of
/// audio (100 per second).
pub(crate) fn align_words(
    w: &Whisper,
    enc: &Tensor,
    text_tokens: &[u32],
    num_frames: usize,
    language: Option<&str>,
    task: Task,
) -> Result<Vec<TimedWord>, WhisperError> {
    let frames = (num_frames / 2).min(w.dims().n_audio_ctx);
    if text_tokens.is_empty() || frames == 0 {
        return Ok(Vec::new());
    }
    let tok = w.tokenizer();
    let sp = tok.special();
    let start = tok.sot_sequence(w.is_multilingual(), language, task, true)?;
    let mut input = start.clone();
    input.push(sp.no_timestamps);
    input.extend_from_slice(text_tokens);
    input.push(sp.eot);
    let n_ctx = w.dims().n_text_ctx;
    if input.len() > n_ctx {
        return Err(GraphError::Input(format!(
            "{} tokens to align exceed the decoder's {n_ctx} positions",
            input.len()
        ))
        .into());
    }
    let graph = w.graph();
    let mut state = graph.start(enc)?;
    let ids: Vec<i64> = input.iter().map(|&t| t as i64).collect();
    let ids = Tensor::from_slice(&ids, &[1, ids.len()])?;
    let (logits, queries) = graph.align_forward(&ids, &mut state)?;
    let logits = logits.cast(DType::F32)?.to_vec::<f32>()?;
    let vocab = w.dims().n_vocab;
    if let Some(i) = first_non_finite(&logits) {
        return Err(WhisperError::NonFiniteLogits {
            input: "decoder".into(),
            window_start: 0.0,
            token: i % vocab,
            value: logits[i],
        });
    }
    // Probability of each text token among the text tokens, from the logits
    // of the position before it.
    let eot = sp.eot as usize;
    let first = start.len();
    let token_probs: Vec<f32> = text_tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let row = &logits[(first + i) * vocab..(first + i) * vocab + eot];
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            ((row[t as usize] as f64 - m).exp() / sum) as f32
        })
        .collect();
    // The alignment heads' attention over the first `frames` audio positions.
    let heads = &w.generation().alignment_heads;
    let t = input.len();
    let mut weights = Vec::with_capacity(heads.len() * t * frames);
    let mut used = 0;
    for &(layer, head) in heads {
        let (Some(q), Some(k)) = (queries.get(layer), graph.cross_keys(&state, layer)) else {
            continue;
        };
        if head >= q.shape()[1] {
            continue;
        }
        let q = q.narrow(1, head, 1)?;
        let k = k
            .narrow(1, head, 1)?
            .narrow(2, 0, frames)?
            .cast(q.dtype())?;
        let scale = 1.0 / (q.shape()[3] as f64).sqrt();
        // CTranslate2: softmax over the positions that hold audio only.
        let probs = q
            .matmul(&k.t()?)?
            .mul_scalar(scale)?
            .cast(DType::F32)?
            .softmax(-1)?;
        weights.extend(probs.to_vec::<f32>()?);
        used += 1;
    }
    if used == 0 {
        return Ok(Vec::new());
    }
    standardize_over_tokens(&mut weights, used, t, frames);
    median_filter(&mut weights, frames, MEDIAN_FILTER_WIDTH);
    // Mean over heads of the rows of the text tokens and the end-of-text.
    let rows = text_tokens.len() + 1;
    let mut matrix = vec![0f32; rows * frames];
    for h in 0..used {
        let base = h * t * frames + first * frames;
        for (m, &v) in matrix.iter_mut().zip(&weights[base..base + rows * frames]) {
            *m += v / used as f32;
        }
    }
    let path = negative_dtw(&matrix, rows, frames);
    Ok(words_from_path(
        tok,
        text_tokens,
        &token_probs,
        &path,
        language,
    )?)
}
