//! One transcription as a state machine over 30-second windows, so that a
//! caller can drive it window by window ([`super::Whisper::transcribe`] runs
//! one to the end; a server runs several at once, encoding their windows
//! together and stepping their decoders in one batch).
//!
//! Audio of at most 30 s is one window padded to 30 s before the log-mel (the
//! reference implementations' behaviour). Longer audio is featurised as if
//! whole with 30 s of trailing padding ([`super::features`]: streamed window
//! by window from an [`AudioSource`], or at once from samples in memory) and
//! decoded window by window as faster-whisper's `generate_segments` does it:
//! each window starts where the last complete segment of the previous one
//! ended (the seek; a short clip whose first pass stops early is decoded on
//! to its end), after a prompt of the earlier windows' tokens (timestamps
//! kept), is skipped when it looks like silence, and gets word timings when
//! asked for. A window is decoded either by the search with temperature
//! fallback ([`Session::decode_window`]) or step by step by the caller
//! ([`Session::window_decoder`], greedy or sampled, no fallback).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use emily::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::decoding::{self, LogitFilter, RawSegment};
use super::fallback::{
    compression_ratio, improbable, too_repetitive, FallbackDecoder, WindowResult,
};
use super::features::Features;
use super::transcriber::{check_finite, Segment, Timings, Transcript, Whisper, WhisperError};
use super::words::{add_word_timestamps, WindowWords};
use super::TranscribeOptions;
use crate::audio::AudioSource;
use crate::log_mel::{CHUNK_FRAMES, HOP_LENGTH, SAMPLE_RATE};

/// A flag another thread sets to stop a transcription; checked between
/// windows and between decoder steps. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }

    /// Asks the transcription to stop ([`WhisperError::Cancelled`]).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

fn frames_to_seconds(frames: usize) -> f64 {
    frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64
}

/// A transcription in progress: its feature windows, the windows decoded so
/// far. `'s` is the borrow of a streamed input (`'static` for samples given
/// to [`Session::from_samples`]).
pub struct Session<'s> {
    /// The input's label in errors.
    input: String,
    opts: TranscribeOptions,
    features: Features<'s>,
    /// Frames of real audio (windows start before this).
    content: usize,
    seek: usize,
    /// The current window's frames (`n_mels × 3000`), valid after `next_window`.
    window: Vec<f32>,
    language: Option<String>,
    /// The detected language's probability (when it was detected).
    language_probability: Option<f32>,
    /// The initial prompt's tokens, then every kept segment's tokens
    /// (timestamps included).
    all_tokens: Vec<u32>,
    /// Prompts take `all_tokens` from here on (moved on when a window was
    /// sampled hot, or when not conditioning on earlier text).
    prompt_reset_since: usize,
    /// The hotwords' tokens, given to every window.
    hotwords: Vec<u32>,
    /// The most tokens of earlier text a prompt takes.
    keep_previous: usize,
    /// The rules every token choice of the search applies.
    filter: LogitFilter,
    /// End of the last word spoken (word timestamps), seconds.
    last_speech: f64,
    /// Windows finished so far.
    windows: u64,
    segments: Vec<Segment>,
    timings: Timings,
    done: bool,
}

impl Session<'static> {
    /// A transcription of 16 kHz mono `samples` in memory, featurised at once
    /// (the session does not borrow them).
    pub fn from_samples(
        w: &Whisper,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Session<'static>, WhisperError> {
        let t0 = Instant::now();
        let features = Features::from_samples(w.featurizer(), samples, "samples")?;
        Session::start(w, "samples", features, t0, opts)
    }
}

impl<'s> Session<'s> {
    /// A transcription of `source` (a file, standard input, a pipe, samples),
    /// read once to size it; long input is then featurised as windows are
    /// decoded, in memory bounded by one window.
    pub fn from_source(
        w: &'s Whisper,
        source: &'s mut AudioSource<'_>,
        opts: &TranscribeOptions,
    ) -> Result<Session<'s>, WhisperError> {
        let t0 = Instant::now();
        let input = source.name().to_string();
        let features = Features::open(w.featurizer(), source)?;
        Session::start(w, &input, features, t0, opts)
    }

    fn start(
        w: &Whisper,
        input: &str,
        features: Features<'s>,
        t0: Instant,
        opts: &TranscribeOptions,
    ) -> Result<Session<'s>, WhisperError> {
        let keep_previous = (w.dims().n_text_ctx / 2).saturating_sub(1);
        let tok = w.tokenizer();
        let encode = |text: &Option<String>| -> Result<Vec<u32>, WhisperError> {
            match text.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() => Ok(tok.encode(&format!(" {t}"))?),
                _ => Ok(Vec::new()),
            }
        };
        let all_tokens = encode(&opts.initial_prompt)?;
        let mut hotwords = encode(&opts.hotwords)?;
        hotwords.truncate(keep_previous);
        let filter = LogitFilter {
            suppress: w.suppressed_tokens(&opts.suppress_tokens),
            suppress_begin: if opts.suppress_blank {
                w.generation().begin_suppress_tokens.clone()
            } else {
                Vec::new()
            },
            timestamps: opts.timestamps,
            max_initial_timestamp_steps: (opts.max_initial_timestamp / decoding::SECONDS_PER_TOKEN)
                .round()
                .clamp(0.0, u32::MAX as f64) as u32,
            special: tok.special().clone(),
        };
        let timings = Timings {
            features: t0.elapsed(),
            ..Timings::default()
        };
        Ok(Session {
            input: input.to_string(),
            opts: opts.clone(),
            window: vec![0f32; w.featurizer().n_mels() * CHUNK_FRAMES],
            content: features.content_frames(),
            features,
            seek: 0,
            language: opts.language.clone(),
            language_probability: None,
            all_tokens,
            prompt_reset_since: 0,
            hotwords,
            keep_previous,
            filter,
            last_speech: 0.0,
            windows: 0,
            segments: Vec::new(),
            timings,
            done: false,
        })
    }

    /// The options this session decodes with.
    pub fn options(&self) -> &TranscribeOptions {
        &self.opts
    }

    /// Fails with [`WhisperError::Cancelled`] once the options' flag is set.
    pub fn check_cancelled(&self) -> Result<(), WhisperError> {
        match &self.opts.cancel {
            Some(c) if c.is_cancelled() => Err(WhisperError::Cancelled),
            _ => Ok(()),
        }
    }

    /// Whether every window is decoded (the next [`Session::next_window`]
    /// is `None`).
    pub fn is_done(&self) -> bool {
        self.done || self.seek >= self.content
    }

    /// The next window's log-mel frames (`n_mels × 3000`, row-major), or
    /// `None` when the audio is done.
    pub fn next_window(&mut self) -> Result<Option<&[f32]>, WhisperError> {
        if self.done || self.seek >= self.content {
            self.done = true;
            return Ok(None);
        }
        let t0 = Instant::now();
        self.features.window(self.seek, &mut self.window)?;
        self.timings.features += t0.elapsed();
        Ok(Some(&self.window))
    }

    /// Start of the current window, in seconds.
    fn window_start(&self) -> f64 {
        frames_to_seconds(self.seek)
    }

    /// The decoder prompt of the current window whose encoder output is
    /// `enc` (detects the language first on a multilingual model without one).
    pub fn prompt(&mut self, w: &Whisper, enc: &Tensor) -> Result<Vec<u32>, WhisperError> {
        if w.is_multilingual() && self.language.is_none() {
            let start = self.window_start();
            let best = w
                .language_probabilities(enc, &self.input, start)?
                .swap_remove(0);
            self.language = Some(best.code);
            self.language_probability = Some(best.probability);
        }
        let sp = w.tokenizer().special();
        let mut prompt = Vec::new();
        let previous = &self.all_tokens[self.prompt_reset_since..];
        if !previous.is_empty() || !self.hotwords.is_empty() {
            prompt.push(sp.sot_prev);
            prompt.extend_from_slice(&self.hotwords);
            let keep = previous.len().min(self.keep_previous);
            prompt.extend_from_slice(&previous[previous.len() - keep..]);
        }
        prompt.extend(w.tokenizer().sot_sequence(
            w.is_multilingual(),
            self.language.as_deref(),
            self.opts.task,
            self.opts.timestamps,
        )?);
        Ok(prompt)
    }

    /// Starts the greedy decoding of the current window after `prompt`.
    pub fn window_decoder(&self, w: &Whisper, prompt: &[u32]) -> WindowDecoder {
        let temperature = self.opts.temperatures.first().copied().unwrap_or(0.0);
        let sampler = (temperature > 0.0).then(|| Sampler {
            temperature,
            rng: StdRng::seed_from_u64(self.opts.seed.wrapping_add(self.windows)),
        });
        WindowDecoder {
            input: self.input.clone(),
            window_start: self.window_start(),
            filter: self.filter.clone(),
            sampler,
            max_tokens: self
                .opts
                .max_tokens_per_window
                .min(w.dims().n_text_ctx.saturating_sub(prompt.len())),
            generated: Vec::new(),
            sum_logprob: 0.0,
        }
    }

    /// Whether the window `picker` decoded step by step must be decoded
    /// again by [`Session::decode_window_with_fallback`] to get what the
    /// transcriber gives: when it fails the fallback checks (compression
    /// ratio, average log-probability) and there is another temperature to
    /// try, or when it is improbable and may be silence (the no-speech
    /// check needs the search's no-speech probability). A window kept is
    /// what the search's first temperature keeps, and is not silence.
    pub fn needs_fallback(
        &self,
        w: &Whisper,
        picker: &WindowDecoder,
    ) -> Result<bool, WhisperError> {
        let o = &self.opts;
        if o.no_speech_threshold.is_some() && o.log_prob_threshold.is_none() {
            return Ok(true);
        }
        let improbable = improbable(picker.avg_logprob(), o);
        if improbable && o.no_speech_threshold.is_some() {
            return Ok(true);
        }
        if o.temperatures.len() < 2 {
            return Ok(false);
        }
        let text = w.tokenizer().decode(&picker.generated)?;
        Ok(improbable || too_repetitive(compression_ratio(text.trim()), o))
    }

    /// Decodes the current window (encoder output `enc`, after `prompt`) as
    /// the transcriber does — the search with temperature fallback and the
    /// no-speech skip — records it and seeks on.
    pub fn decode_window_with_fallback(
        &mut self,
        w: &Whisper,
        enc: &Tensor,
        prompt: &[u32],
    ) -> Result<(), WhisperError> {
        let (result, steps) = self.decode_window(w, enc, prompt)?;
        self.finish_decoded(w, enc, result, steps)
    }

    /// Adds time spent in the encoder and decoder (for [`Transcript::timings`]).
    pub fn add_timings(&mut self, encoder: std::time::Duration, decoder: std::time::Duration) {
        self.timings.encoder += encoder;
        self.timings.decoder += decoder;
    }

    /// Decodes the current window, whose encoder output is `enc`, after
    /// `prompt` by the search with temperature fallback; returns the result
    /// and the decoder calls made.
    pub(crate) fn decode_window(
        &self,
        w: &Whisper,
        enc: &Tensor,
        prompt: &[u32],
    ) -> Result<(WindowResult, usize), WhisperError> {
        let sot = w.tokenizer().special().sot;
        let sot_index = prompt.iter().position(|&t| t == sot).unwrap_or(0);
        let decoder = FallbackDecoder {
            whisper: w,
            opts: &self.opts,
            filter: self.filter.clone(),
            seed: self.opts.seed ^ self.windows.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        decoder
            .decode(enc, prompt, sot_index)
            .map_err(|e| e.in_window(&self.input, self.window_start()))
    }

    /// Records the current window decoded step by step by `picker` (its
    /// tokens and average log-probability; [`Session::window_decoder`]) and
    /// `steps` decoder steps, and seeks to the next window.
    pub fn finish_window(
        &mut self,
        w: &Whisper,
        picker: &WindowDecoder,
        steps: usize,
    ) -> Result<(), WhisperError> {
        let tokens = picker.generated();
        let text = w.tokenizer().decode(tokens)?;
        let result = WindowResult {
            tokens: tokens.to_vec(),
            avg_logprob: picker.avg_logprob(),
            no_speech_prob: 0.0,
            temperature: self.opts.temperatures.first().copied().unwrap_or(0.0),
            compression_ratio: compression_ratio(text.trim()),
        };
        self.finish_result(w, None, result, steps)
    }

    /// Records the current window's result of [`Session::decode_window`]
    /// (word timings aligned on `enc` when asked for) and seeks on.
    pub(crate) fn finish_decoded(
        &mut self,
        w: &Whisper,
        enc: &Tensor,
        result: WindowResult,
        steps: usize,
    ) -> Result<(), WhisperError> {
        self.finish_result(w, Some(enc), result, steps)
    }

    fn finish_result(
        &mut self,
        w: &Whisper,
        enc: Option<&Tensor>,
        result: WindowResult,
        steps: usize,
    ) -> Result<(), WhisperError> {
        let sp = w.tokenizer().special();
        self.timings.decoder_steps += steps;
        let size = (self.content - self.seek).min(CHUNK_FRAMES);
        let time_offset = self.window_start();
        let window_s = frames_to_seconds(size);
        self.windows += 1;
        if is_silence(&result, &self.opts) {
            self.seek += size;
            return Ok(());
        }
        let (mut raw, advance) = if self.opts.timestamps {
            decoding::split_segments(&result.tokens, sp, window_s)
        } else {
            let text: Vec<u32> = result
                .tokens
                .iter()
                .copied()
                .filter(|&t| t < sp.eot)
                .collect();
            let seg = RawSegment {
                start: 0.0,
                end: window_s,
                tokens: text,
                timed: result.tokens.clone(),
            };
            (vec![seg], None)
        };
        // Absolute times; like faster-whisper, a timestamp past the audio's
        // end is kept as decoded.
        for r in raw.iter_mut() {
            r.start += time_offset;
            r.end += time_offset;
        }
        let single_ending = advance.is_none();
        let mut next_seek = self.seek
            + advance
                .map(|a| a as usize * 2)
                .filter(|&f| f > 0)
                .unwrap_or(size);
        let mut words = Vec::new();
        if let (true, Some(enc)) = (self.opts.word_timestamps, enc) {
            let tw = Instant::now();
            let ww = WindowWords {
                time_offset,
                num_frames: size,
                language: self.language.as_deref(),
            };
            let (per_segment, speech) =
                add_word_timestamps(w, enc, &mut raw, &ww, &self.opts, self.last_speech)
                    .map_err(|e| e.in_window(&self.input, time_offset))?;
            self.last_speech = speech;
            words = per_segment;
            self.timings.decoder += tw.elapsed();
            if !single_ending {
                // Restart after the last word that was aligned.
                let last_end = words.iter().rev().find_map(|ws| ws.last()).map(|w| w.end);
                if let Some(end) = last_end.filter(|&e| e > time_offset) {
                    next_seek = ((end * 100.0).round() as usize).max(self.seek + 1);
                }
            }
        }
        words.resize_with(raw.len(), Vec::new);
        for (r, ws) in raw.into_iter().zip(words) {
            let text = w.tokenizer().decode(&r.tokens)?;
            if r.start == r.end || text.trim().is_empty() {
                continue;
            }
            self.all_tokens.extend_from_slice(&r.timed);
            self.segments.push(Segment {
                start: r.start,
                end: r.end,
                text,
                tokens: r.tokens,
                words: ws,
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
                compression_ratio: result.compression_ratio,
                temperature: result.temperature,
            });
        }
        if !self.opts.condition_on_previous_text
            || result.temperature > self.opts.prompt_reset_on_temperature
        {
            self.prompt_reset_since = self.all_tokens.len();
        }
        self.seek = next_seek;
        Ok(())
    }

    /// `(seconds done, seconds in all)`.
    pub fn progress(&self) -> (f64, f64) {
        (
            frames_to_seconds(self.seek.min(self.content)),
            frames_to_seconds(self.content),
        )
    }

    /// Seconds of audio (without padding).
    pub fn duration_seconds(&self) -> f64 {
        frames_to_seconds(self.content)
    }

    /// The transcript of the windows decoded so far.
    pub fn finish(self) -> Transcript {
        let text = self
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>();
        Transcript {
            segments: self.segments,
            text,
            language: self.language,
            language_probability: self.language_probability,
            timings: self.timings,
        }
    }
}

/// faster-whisper's skip rule: a no-speech probability above the threshold,
/// unless the text is probable enough.
fn is_silence(result: &WindowResult, opts: &TranscribeOptions) -> bool {
    let Some(threshold) = opts.no_speech_threshold else {
        return false;
    };
    let probable = opts
        .log_prob_threshold
        .is_some_and(|min| result.avg_logprob > min);
    result.no_speech_prob > threshold && !probable
}

/// Temperature sampling state of one window.
struct Sampler {
    temperature: f32,
    rng: StdRng,
}

impl Sampler {
    /// Draws an index from `softmax(logits / temperature)` (`-inf` never).
    fn sample(&mut self, logits: &[f32]) -> u32 {
        let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| (((l - m) / self.temperature) as f64).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        if !total.is_finite() || total <= 0.0 {
            return decoding::argmax(logits);
        }
        let mut u = self.rng.gen::<f64>() * total;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i as u32;
            }
            u -= w;
        }
        decoding::argmax(logits)
    }
}

/// Token choice for one window: suppression, timestamp rules, argmax (or
/// temperature sampling) and the stop conditions.
pub struct WindowDecoder {
    /// The input and window start, for errors.
    input: String,
    window_start: f64,
    /// The session's rules (suppressed tokens, suppress-blank, timestamp
    /// rules), as the transcriber's search applies them.
    filter: LogitFilter,
    sampler: Option<Sampler>,
    max_tokens: usize,
    generated: Vec<u32>,
    /// Log-probabilities of the chosen tokens (EOT included) after the rules.
    sum_logprob: f64,
}

impl WindowDecoder {
    /// Applies the rules to the logits after the last fed token and returns
    /// the next token to feed, or `None` when the window is done; a NaN or
    /// infinite logit is [`WhisperError::NonFiniteLogits`].
    pub fn next_token(&mut self, logits: &mut [f32]) -> Result<Option<u32>, WhisperError> {
        check_finite(logits, &self.input, self.window_start)?;
        // The row's log-normaliser comes with the rules (the timestamp rules
        // compute it anyway): no second pass for the chosen token's
        // log-probability.
        let norm = self.filter.apply_normaliser(logits, &self.generated);
        let next = match &mut self.sampler {
            Some(s) => s.sample(logits),
            None => decoding::argmax(logits),
        };
        // As `log_softmax_at` (f64, -inf past the row), from the normaliser.
        self.sum_logprob += logits
            .get(next as usize)
            .map_or(f64::NEG_INFINITY, |&v| v as f64 - norm);
        let sp = &self.filter.special;
        if next == sp.eot {
            return Ok(None);
        }
        self.generated.push(next);
        Ok((self.generated.len() < self.max_tokens).then_some(next))
    }

    /// [`WindowDecoder::next_token`] for several windows at once, each with
    /// its row of logits, on the kernels' pool: a row's rules cost ~70 µs
    /// (a finiteness check, an exp per logit for the normaliser, the
    /// maxima), which a batched step would otherwise pay row after row.
    pub fn next_tokens(
        rows: Vec<(&mut WindowDecoder, &mut [f32])>,
    ) -> Vec<Result<Option<u32>, WhisperError>> {
        use rayon::prelude::*;
        emily_kernels::parallel::pool().install(|| {
            rows.into_par_iter()
                .map(|(picker, logits)| picker.next_token(logits))
                .collect()
        })
    }

    /// The most tokens this window may generate.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The tokens generated so far (no prompt, no EOT).
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// The chosen tokens' mean log-probability after the rules, EOT counted
    /// (the search's measure: the sum over `generated().len() + 1`).
    pub fn avg_logprob(&self) -> f64 {
        self.sum_logprob / (self.generated.len() + 1) as f64
    }
}
