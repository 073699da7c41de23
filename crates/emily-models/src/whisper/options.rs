//! What a transcription may be asked to do, with faster-whisper's defaults.

use crate::tokenizer::Task;

use super::session::CancelFlag;

use super::words::{APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS};

/// Decoding options. [`super::Whisper::transcribe`] follows all of them; a
/// window decoded step by step outside the search ([`super::Session::window_decoder`],
/// the server's batched decoding) samples at the first temperature (greedy
/// at 0) with no beams and no fallback. The defaults are faster-whisper's `transcribe()`
/// defaults: beam search of 5, temperature fallback 0, 0.2, …, 1.0 (best of 5
/// samples) on a compression ratio above 2.4 or an average log-probability
/// below −1, windows skipped as silence when the no-speech probability is
/// above 0.6 and the log-probability below −1, the previous windows' text as
/// the prompt — except for timestamps, which are off unless asked for.
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    /// Decode timestamp tokens and emit timestamped segments (else one segment
    /// per window, decoded after `<|notimestamps|>`).
    pub timestamps: bool,
    /// Language code for multilingual models (`None` = detect).
    pub language: Option<String>,
    /// Transcribe or translate (multilingual models).
    pub task: Task,
    /// Tokens generated per window at most (the model allows 224).
    pub max_tokens_per_window: usize,
    /// Prompt each window with the text (and timestamps) decoded so far.
    pub condition_on_previous_text: bool,
    /// Stop prompting with earlier text after a window decoded at a
    /// temperature above this.
    pub prompt_reset_on_temperature: f32,
    /// Beams of the search at temperature 0 (1 = greedy).
    pub beam_size: usize,
    /// Beam search patience: stop after `round(beam_size × patience)` finished candidates.
    pub patience: f32,
    /// Candidates are ranked by `sum log p / length^length_penalty`.
    pub length_penalty: f32,
    /// Candidates sampled at each temperature above 0.
    pub best_of: usize,
    /// Temperatures tried in order until a window's result passes the
    /// compression-ratio and log-probability checks.
    pub temperatures: Vec<f32>,
    /// A window whose text compresses (zlib) better than this is repetitive:
    /// try the next temperature (`None` = no check).
    pub compression_ratio_threshold: Option<f64>,
    /// A window whose average log-probability is below this failed: try the
    /// next temperature (`None` = no check).
    pub log_prob_threshold: Option<f64>,
    /// A window whose no-speech probability is above this, and whose
    /// log-probability is below `log_prob_threshold`, is silence: skipped
    /// (`None` = never).
    pub no_speech_threshold: Option<f64>,
    /// Text given to the first window as if it preceded the audio (names,
    /// spelling, style).
    pub initial_prompt: Option<String>,
    /// Words or phrases given to every window before the previous text.
    pub hotwords: Option<String>,
    /// Token ids never generated; `-1` stands for the model's set of
    /// non-speech symbols. Control tokens are added whenever the list is not
    /// empty (faster-whisper's rule).
    pub suppress_tokens: Vec<i64>,
    /// Suppress a blank or end-of-text as the first token.
    pub suppress_blank: bool,
    /// The first timestamp of a window is at most this many seconds in.
    pub max_initial_timestamp: f64,
    /// Word-level timestamps (cross-attention alignment).
    pub word_timestamps: bool,
    /// Punctuation merged into the following word.
    pub prepend_punctuations: String,
    /// Punctuation merged into the preceding word.
    pub append_punctuations: String,
    /// Seed of the sampler (temperatures above 0).
    pub seed: u64,
    /// Stops the transcription when set (checked between windows and steps).
    pub cancel: Option<CancelFlag>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            timestamps: false,
            language: None,
            task: Task::Transcribe,
            max_tokens_per_window: 224,
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            beam_size: 5,
            patience: 1.0,
            length_penalty: 1.0,
            best_of: 5,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            initial_prompt: None,
            hotwords: None,
            suppress_tokens: vec![-1],
            suppress_blank: true,
            max_initial_timestamp: 1.0,
            word_timestamps: false,
            prepend_punctuations: PREPEND_PUNCTUATIONS.into(),
            append_punctuations: APPEND_PUNCTUATIONS.into(),
            seed: 0,
            cancel: None,
        }
    }
}

impl TranscribeOptions {
    /// Greedy decoding with no fallback, no silence skipping: the raw model
    /// (what the JFK goldens of `testdata/goldens` were made with).
    pub fn greedy() -> Self {
        TranscribeOptions {
            beam_size: 1,
            temperatures: vec![0.0],
            compression_ratio_threshold: None,
            log_prob_threshold: None,
            no_speech_threshold: None,
            ..TranscribeOptions::default()
        }
    }
}
