//! The decoding flags of `emily transcribe`, with faster-whisper's defaults.

use emily_models::whisper::TranscribeOptions;

/// Decoding flags (beam search, temperature fallback, silence skipping,
/// prompts, suppression, word timestamps).
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Beams of the search at temperature 0 (1 = greedy).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=64))]
    beam_size: u32,
    /// Beam search patience: stop after beam-size × patience finished candidates.
    #[arg(long, default_value_t = 1.0)]
    patience: f32,
    /// Exponent of the length normalisation of candidate scores.
    #[arg(long, default_value_t = 1.0)]
    length_penalty: f32,
    /// Candidates sampled at each temperature above 0.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=64))]
    best_of: u32,
    /// Temperatures tried in turn until a window passes the checks
    /// (comma-separated; `0` alone = no fallback).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.2,0.4,0.6,0.8,1.0",
        allow_hyphen_values = true
    )]
    temperature: Vec<f32>,
    /// Retry at the next temperature when the text's zlib compression ratio
    /// is above this (repetition); `none` disables the check.
    #[arg(long, default_value = "2.4", value_parser = optional_f64)]
    compression_ratio_threshold: Threshold,
    /// Retry at the next temperature when the average log-probability is
    /// below this; `none` disables the check.
    #[arg(long, default_value = "-1.0", value_parser = optional_f64, allow_hyphen_values = true)]
    log_prob_threshold: Threshold,
    /// Skip a window as silence when its no-speech probability is above this
    /// and its log-probability below the threshold; `none` never skips.
    #[arg(long, default_value = "0.6", value_parser = optional_f64)]
    no_speech_threshold: Threshold,
    /// Do not prompt each window with the text decoded before it.
    #[arg(long)]
    no_condition_on_previous_text: bool,
    /// Text given to the first window as if it preceded the audio (names, spelling, style).
    #[arg(long)]
    prompt: Option<String>,
    /// Words or phrases given to every window before the previous text.
    #[arg(long)]
    hotwords: Option<String>,
    /// Token ids never generated, comma-separated; -1 = the model's
    /// non-speech symbols; empty = none.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "-1",
        allow_hyphen_values = true
    )]
    suppress_tokens: Vec<i64>,
    /// Allow a blank or end-of-text as a window's first token.
    #[arg(long)]
    no_suppress_blank: bool,
    /// The first timestamp of a window is at most this many seconds in.
    #[arg(long, default_value_t = 1.0)]
    max_initial_timestamp: f64,
    /// Word-level timestamps (cross-attention alignment); implies timestamps.
    #[arg(long)]
    word_timestamps: bool,
    /// Seed of the sampler used at temperatures above 0.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A threshold: a number, or `none` (the check is off).
#[derive(Clone, Copy, Debug)]
struct Threshold(Option<f64>);

/// Parses a [`Threshold`].
fn optional_f64(s: &str) -> Result<Threshold, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Threshold(None));
    }
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() {
        return Err(format!("{s:?} is not a finite number"));
    }
    Ok(Threshold(Some(v)))
}

impl DecodeArgs {
    /// Options with these flags; the rest (timestamps, language, task) from `base`.
    pub fn options(&self, base: TranscribeOptions) -> anyhow::Result<TranscribeOptions> {
        anyhow::ensure!(
            !self.temperature.is_empty()
                && self.temperature.iter().all(|t| t.is_finite() && *t >= 0.0),
            "--temperature takes non-negative numbers, got {:?}",
            self.temperature
        );
        anyhow::ensure!(
            self.patience.is_finite() && self.patience > 0.0,
            "--patience must be positive, got {}",
            self.patience
        );
        anyhow::ensure!(
            self.length_penalty.is_finite(),
            "--length-penalty must be finite"
        );
        anyhow::ensure!(
            self.max_initial_timestamp.is_finite() && self.max_initial_timestamp >= 0.0,
            "--max-initial-timestamp must be a non-negative number of seconds"
        );
        Ok(TranscribeOptions {
            timestamps: base.timestamps || self.word_timestamps,
            beam_size: self.beam_size as usize,
            patience: self.patience,
            length_penalty: self.length_penalty,
            best_of: self.best_of as usize,
            temperatures: self.temperature.clone(),
            compression_ratio_threshold: self.compression_ratio_threshold.0,
            log_prob_threshold: self.log_prob_threshold.0,
            no_speech_threshold: self.no_speech_threshold.0,
            condition_on_previous_text: !self.no_condition_on_previous_text,
            initial_prompt: self.prompt.clone(),
            hotwords: self.hotwords.clone(),
            suppress_tokens: self.suppress_tokens.clone(),
            suppress_blank: !self.no_suppress_blank,
            max_initial_timestamp: self.max_initial_timestamp,
            word_timestamps: self.word_timestamps,
            seed: self.seed,
            ..base
        })
    }
}
