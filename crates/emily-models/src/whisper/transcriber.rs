//! The speech-to-text pipeline: audio → log-mel → encoder → greedy decoding
//! (suppression, timestamp rules) → segments, over 30-second windows.
//!
//! Audio of at most 30 s is one window padded to 30 s before the log-mel (the
//! reference implementations' behaviour). Longer audio is featurised as if
//! whole with 30 s of trailing padding, but streamed: each window's features
//! are computed when it is decoded ([`super::features`]), so memory does not
//! grow with the duration. Windows start where the last complete timestamped
//! segment ended (OpenAI's seek), with the previous window's text as the prompt.

use std::path::Path;
use std::time::{Duration, Instant};

use emily::{DType, Tensor};

use super::consistency::check_tokenizer;
use super::decoding::{self, RawSegment};
use super::features::Features;
use super::graph::{GraphDecoderState, GraphError, WhisperGraph};
use super::ComputeType;
use super::{load_whisper, GenerationSettings, LoadError, WhisperCheckpoint, WhisperDims};
use crate::audio::{AudioError, AudioSource};
use crate::log_mel::{LogMelError, LogMelFeaturizer, CHUNK_FRAMES, HOP_LENGTH, SAMPLE_RATE};
use crate::tokenizer::{SpecialTokens, Task, TokenizerError, WhisperTokenizer};
use emily::Kernels;

/// Everything that can fail while transcribing; each names its input.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// Loading the model directory.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Reading audio.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// Computing features.
    #[error(transparent)]
    LogMel(#[from] LogMelError),
    /// The tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The network graphs.
    #[error(transparent)]
    Model(#[from] GraphError),
    /// The empty input.
    #[error("{0}: no audio samples")]
    Empty(String),
    /// The decoder produced a NaN or infinite logit: the weights (or the
    /// arithmetic) are broken, and its argmax would be garbage text.
    #[error("{input}: the decoder produced a non-finite logit ({value} for token {token}) in the window at {window_start:.2} s; the model's weights may be corrupt")]
    NonFiniteLogits {
        /// The input being transcribed.
        input: String,
        /// Start of the window, in seconds.
        window_start: f64,
        /// The first token id whose logit is not finite.
        token: usize,
        /// Its value.
        value: f32,
    },
}

impl From<emily::Error> for WhisperError {
    fn from(e: emily::Error) -> Self {
        WhisperError::Model(GraphError::Tensor(e))
    }
}

/// Decoding options.
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    /// Emit timestamped segments (else one segment per window).
    pub timestamps: bool,
    /// Language code for multilingual models (`None` = detect).
    pub language: Option<String>,
    /// Transcribe or translate (multilingual models).
    pub task: Task,
    /// Tokens generated per window at most.
    pub max_tokens_per_window: usize,
    /// Prompt each window with the previous window's text.
    pub condition_on_previous_text: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            timestamps: false,
            language: None,
            task: Task::Transcribe,
            max_tokens_per_window: 224,
            condition_on_previous_text: true,
        }
    }
}

/// A transcribed span.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start in seconds.
    pub start: f64,
    /// End in seconds.
    pub end: f64,
    /// The text.
    pub text: String,
    /// Token ids (text only).
    pub tokens: Vec<u32>,
}

/// Per-stage wall times of one transcription.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Log-mel features.
    pub features: Duration,
    /// Encoder forward passes.
    pub encoder: Duration,
    /// Decoder steps.
    pub decoder: Duration,
    /// Decoder steps run.
    pub decoder_steps: usize,
}

/// The result of a transcription.
#[derive(Clone, Debug)]
pub struct Transcript {
    /// Segments in time order.
    pub segments: Vec<Segment>,
    /// All segment texts joined.
    pub text: String,
    /// The language used (multilingual models).
    pub language: Option<String>,
    /// Where the time went.
    pub timings: Timings,
}

/// A loaded Whisper model ready to transcribe; share it with `Arc` across threads.
///
/// The network is the `emily-nn` graphs of [`WhisperGraph`]: composed for
/// [`Kernels::Composed`], rewritten by `fast_kernels::apply` for
/// [`Kernels::Fused`] (same nodes, same parameters).
pub struct Whisper {
    graph: WhisperGraph,
    tokenizer: WhisperTokenizer,
    featurizer: LogMelFeaturizer,
    generation: GenerationSettings,
    kernels: Kernels,
    multilingual: bool,
}

impl Whisper {
    /// Loads a model directory (CTranslate2 or Hugging Face layout), f32 compute.
    pub fn load(dir: &Path, kernels: Kernels) -> Result<Whisper, WhisperError> {
        Self::load_with(dir, kernels, ComputeType::F32)
    }

    /// [`Whisper::load`] with the encoder in `compute` (see [`ComputeType`]).
    pub fn load_with(
        dir: &Path,
        kernels: Kernels,
        compute: ComputeType,
    ) -> Result<Whisper, WhisperError> {
        Self::from_checkpoint_with(&load_whisper(dir)?, kernels, compute)
    }

    /// Builds a model from a loaded checkpoint (for example one whose weights
    /// were replaced in memory). The tokenizer at `ck.tokenizer_path` is checked
    /// against the model's vocabulary and sizes.
    pub fn from_checkpoint(
        ck: &WhisperCheckpoint,
        kernels: Kernels,
    ) -> Result<Whisper, WhisperError> {
        Self::from_checkpoint_with(ck, kernels, ComputeType::F32)
    }

    /// [`Whisper::from_checkpoint`] with the encoder in `compute`.
    pub fn from_checkpoint_with(
        ck: &WhisperCheckpoint,
        kernels: Kernels,
        compute: ComputeType,
    ) -> Result<Whisper, WhisperError> {
        let tokenizer = WhisperTokenizer::from_file(&ck.tokenizer_path)?;
        check_tokenizer(ck, &tokenizer)?;
        let featurizer = LogMelFeaturizer::new(ck.dims.n_mels)?;
        let base = WhisperGraph::with_compute(ck, compute)?;
        let graph = match kernels {
            Kernels::Composed => base,
            Kernels::Fused => base.with_fast_kernels()?,
        };
        Ok(Whisper {
            graph,
            tokenizer,
            featurizer,
            generation: ck.generation.clone(),
            kernels,
            multilingual: ck.dims.is_multilingual(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// The network graphs.
    pub fn graph(&self) -> &WhisperGraph {
        &self.graph
    }

    /// Model sizes.
    pub fn dims(&self) -> &WhisperDims {
        self.graph.dims()
    }

    /// Which kernels the graphs use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Transcribes an audio file (any supported format, rate and channel count;
    /// a regular file or a pipe), streaming it.
    pub fn transcribe_file(
        &self,
        path: &Path,
        opts: &TranscribeOptions,
    ) -> Result<Transcript, WhisperError> {
        self.transcribe_source(&mut AudioSource::path(path), opts, &mut |_, _| {})
    }

    /// Runs the encoder on a (n_mels, 3000) window.
    pub fn encode(&self, mel: &[f32]) -> Result<Tensor, WhisperError> {
        let n_mels = self.featurizer.n_mels();
        let x = Tensor::from_slice(mel, &[1, n_mels, CHUNK_FRAMES])?;
        Ok(self.graph.encode(&x)?)
    }

    /// Raw logits of the last prompt position for encoder output `enc`.
    pub fn prompt_logits(&self, enc: &Tensor, prompt: &[u32]) -> Result<Vec<f32>, WhisperError> {
        let mut state = Decoding::new(self, enc)?;
        state.feed(self, prompt)
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, WhisperError> {
        self.transcribe_with_progress(samples, opts, &mut |_, _| {})
    }

    /// [`Whisper::transcribe`], calling `progress(done_seconds, total_seconds)`
    /// after each 30-second window (for progress bars on long audio).
    pub fn transcribe_with_progress(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(f64, f64),
    ) -> Result<Transcript, WhisperError> {
        let mut source = AudioSource::from_samples(samples, "samples");
        self.transcribe_source(&mut source, opts, progress)
    }

    /// Transcribes any [`AudioSource`] (a file, standard input, a pipe, samples in
    /// memory) in memory bounded by one 30 s window whatever its duration,
    /// calling `progress(done_seconds, total_seconds)` after each window.
    pub fn transcribe_source(
        &self,
        source: &mut AudioSource<'_>,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(f64, f64),
    ) -> Result<Transcript, WhisperError> {
        let input = source.name().to_string();
        let mut timings = Timings::default();
        let t0 = Instant::now();
        let mut features = Features::open(&self.featurizer, source)?;
        timings.features = t0.elapsed();
        let content = features.content_frames();
        let sp = self.tokenizer.special().clone();
        let mut language = opts.language.clone();
        let mut segments = Vec::new();
        // The previous windows' text tokens; a prompt takes at most the last
        // n_text_ctx / 2 - 1 of them.
        let keep_previous = (self.dims().n_text_ctx / 2).saturating_sub(1);
        let mut previous: Vec<u32> = Vec::new();
        let mut seek = 0usize;
        let mut window = vec![0f32; self.featurizer.n_mels() * CHUNK_FRAMES];
        while seek < content {
            let tf = Instant::now();
            features.window(seek, &mut window)?;
            timings.features += tf.elapsed();
            let size = (content - seek).min(CHUNK_FRAMES);
            let offset_s = seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let te = Instant::now();
            let enc = self.encode(&window)?;
            timings.encoder += te.elapsed();
            let at = |e: WhisperError| match e {
                WhisperError::NonFiniteLogits { token, value, .. } => {
                    WhisperError::NonFiniteLogits {
                        input: input.clone(),
                        window_start: offset_s,
                        token,
                        value,
                    }
                }
                other => other,
            };
            if self.multilingual && language.is_none() {
                language = Some(self.detect_language(&enc).map_err(at)?);
            }
            let mut prompt = Vec::new();
            if opts.condition_on_previous_text && !previous.is_empty() {
                let keep = keep_previous.min(previous.len());
                prompt.push(sp.sot_prev);
                prompt.extend_from_slice(&previous[previous.len() - keep..]);
            }
            let sot = self.tokenizer.sot_sequence(
                self.multilingual,
                language.as_deref(),
                opts.task,
                opts.timestamps,
            )?;
            prompt.extend_from_slice(&sot);
            let td = Instant::now();
            let (tokens, steps) = self.decode_window(&enc, &prompt, opts, &sp).map_err(at)?;
            timings.decoder += td.elapsed();
            timings.decoder_steps += steps;
            let window_s = size as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let (raw, advance) = if opts.timestamps {
                decoding::split_segments(&tokens, &sp, window_s)
            } else {
                let text: Vec<u32> = tokens.iter().cloned().filter(|&t| t < sp.eot).collect();
                (
                    vec![RawSegment {
                        start: 0.0,
                        end: window_s,
                        tokens: text,
                    }],
                    None,
                )
            };
            for r in raw {
                let text = self.tokenizer.decode(&r.tokens)?;
                segments.push(Segment {
                    start: offset_s + r.start,
                    end: offset_s + r.end.min(window_s),
                    text,
                    tokens: r.tokens,
                });
            }
            previous.extend(tokens.iter().cloned().filter(|&t| t < sp.eot));
            let excess = previous.len().saturating_sub(keep_previous);
            previous.drain(..excess);
            let adv = advance
                .map(|a| a as usize * 2)
                .filter(|&f| f > 0)
                .unwrap_or(size);
            seek += adv;
            let secs = |frames: usize| frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            progress(secs(seek.min(content)), secs(content));
            if !features.is_long() {
                break;
            }
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
        Ok(Transcript {
            segments,
            text,
            language,
            timings,
        })
    }

    fn detect_language(&self, enc: &Tensor) -> Result<String, WhisperError> {
        let sp = self.tokenizer.special();
        let logits = self.prompt_logits(enc, &[sp.sot])?;
        let best = sp
            .languages
            .iter()
            .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))
            .map(|(code, _)| code.clone())
            .unwrap_or_else(|| "en".into());
        Ok(best)
    }

    /// Greedy decoding of one window; returns the generated tokens (no prompt,
    /// no EOT) and the number of decoder steps.
    fn decode_window(
        &self,
        enc: &Tensor,
        prompt: &[u32],
        opts: &TranscribeOptions,
        sp: &SpecialTokens,
    ) -> Result<(Vec<u32>, usize), WhisperError> {
        let mut state = Decoding::new(self, enc)?;
        let ctx = self.dims().n_text_ctx;
        let mut generated: Vec<u32> = Vec::new();
        let mut logits = state.feed(self, prompt)?;
        let mut steps = 1;
        loop {
            decoding::suppress(&mut logits, &self.generation.suppress_tokens);
            if generated.is_empty() {
                decoding::suppress(&mut logits, &self.generation.begin_suppress_tokens);
            }
            if opts.timestamps {
                decoding::apply_timestamp_rules(&mut logits, &generated, sp);
            }
            let next = decoding::argmax(&logits);
            if next == sp.eot {
                break;
            }
            generated.push(next);
            if generated.len() >= opts.max_tokens_per_window
                || prompt.len() + generated.len() >= ctx
            {
                break;
            }
            logits = state.feed(self, &[next])?;
            steps += 1;
        }
        Ok((generated, steps))
    }
}

/// The running decoder state of one window.
struct Decoding {
    state: GraphDecoderState,
    offset: usize,
}

impl Decoding {
    fn new(w: &Whisper, enc: &Tensor) -> Result<Decoding, WhisperError> {
        Ok(Decoding {
            state: w.graph.start(enc)?,
            offset: 0,
        })
    }

    /// Feeds tokens, returns the logits after the last one (all finite, else
    /// [`WhisperError::NonFiniteLogits`], whose input and window the caller fills).
    fn feed(&mut self, w: &Whisper, tokens: &[u32]) -> Result<Vec<f32>, WhisperError> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids = Tensor::from_slice(&ids, &[1, ids.len()])?;
        let offset = Tensor::from_slice(&[self.offset as i64], &[1])?;
        let logits = w.graph.step(&ids, &offset, &mut self.state)?;
        self.offset += tokens.len();
        let logits = logits.cast(DType::F32)?.to_vec::<f32>()?;
        if let Some(token) = decoding::first_non_finite(&logits) {
            return Err(WhisperError::NonFiniteLogits {
                input: "decoder".into(),
                window_start: 0.0,
                token,
                value: logits[token],
            });
        }
        Ok(logits)
    }
}
