//! The speech-to-text pipeline: audio → log-mel → encoder → decoding (beam
//! search or sampling with temperature fallback, [`super::fallback`]) →
//! segments and words, over 30-second windows. The
//! window loop is [`super::Session`]; its features come from
//! [`super::features`], streamed window by window for long input so that
//! memory does not grow with the duration.

use std::path::Path;
use std::time::{Duration, Instant};

use emily::{DType, Tensor};

use super::consistency::check_tokenizer;
use super::decoding;
use super::graph::{GraphDecoderState, GraphError, WhisperGraph};
use super::session::Session;
use super::words::Word;
use super::ComputeType;
use super::TranscribeOptions;
use super::{load_whisper, GenerationSettings, LoadError, WhisperCheckpoint, WhisperDims};
use crate::audio::{AudioError, AudioSource};
use crate::log_mel::{LogMelError, LogMelFeaturizer, CHUNK_FRAMES};
use crate::tokenizer::{TokenizerError, WhisperTokenizer};
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
    /// The options' [`CancelFlag`](super::CancelFlag) was set.
    #[error("transcription cancelled")]
    Cancelled,
    /// Something this model cannot do (language detection on an
    /// English-only model).
    #[error("{0}")]
    Unsupported(String),
}

impl WhisperError {
    /// Names the input and window of a non-finite logit (raised deep in
    /// the decoder, where neither is known).
    pub(crate) fn in_window(self, input: &str, window_start: f64) -> WhisperError {
        match self {
            WhisperError::NonFiniteLogits { token, value, .. } => WhisperError::NonFiniteLogits {
                input: input.to_string(),
                window_start,
                token,
                value,
            },
            other => other,
        }
    }
}

impl From<emily::Error> for WhisperError {
    fn from(e: emily::Error) -> Self {
        WhisperError::Model(GraphError::Tensor(e))
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
    /// Timed words (with [`TranscribeOptions::word_timestamps`], else empty).
    pub words: Vec<Word>,
    /// Average log-probability of the window's tokens (0 when the window was
    /// decoded step by step outside the search, as the server does).
    pub avg_logprob: f64,
    /// Probability of no speech in the window (0 when not measured).
    pub no_speech_prob: f64,
    /// zlib compression ratio of the window's text.
    pub compression_ratio: f64,
    /// Sampling temperature of the window's result (0 = beam search or greedy).
    pub temperature: f32,
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
    /// The detected language's probability (`None` when the language was
    /// given or the model is English-only).
    pub language_probability: Option<f32>,
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
    /// Set once the first window's encoder has run (and packed its weights).
    encoded_once: std::sync::atomic::AtomicBool,
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
        // The tokenizer (25–30 ms for Whisper's BPE tables, 50–70 before its
        // model was read directly) loads on its own thread while this one
        // prepares the weights; its error, if any, is reported first, as
        // when the two ran in turn.
        let (tokenizer, graph) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| {
                let tokenizer = WhisperTokenizer::from_file(&ck.tokenizer_path)?;
                check_tokenizer(ck, &tokenizer)?;
                Ok::<_, WhisperError>(tokenizer)
            });
            let graph = WhisperGraph::with_compute(ck, compute).and_then(|base| match kernels {
                Kernels::Composed => Ok(base),
                Kernels::Fused => base.with_fast_kernels(),
            });
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            Ok::<_, WhisperError>((tokenizer, graph?))
        })?;
        let featurizer = LogMelFeaturizer::new(ck.dims.n_mels)?;
        // Reading and converting the checkpoint freed many temporaries.
        crate::llm::heap::release_free_heap();
        // Encoder scratch, then decoder caches: keep only the larger phase resident.
        emily::memory::bound_footprint(true);
        Ok(Whisper {
            graph,
            tokenizer,
            featurizer,
            generation: ck.generation.clone(),
            kernels,
            multilingual: ck.dims.is_multilingual(),
            encoded_once: std::sync::atomic::AtomicBool::new(false),
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

    /// The log-mel featurizer.
    pub fn featurizer(&self) -> &LogMelFeaturizer {
        &self.featurizer
    }

    /// Decoding settings from the checkpoint (suppressed tokens).
    pub fn generation(&self) -> &GenerationSettings {
        &self.generation
    }

    /// Whether the model is multilingual (language tokens, translation).
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
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
        let enc = self.graph.encode(&x)?;
        if !self
            .encoded_once
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            // The first run packed the low-precision weights through
            // temporary copies that the C heap would keep resident.
            crate::llm::heap::release_free_heap();
        }
        Ok(enc)
    }

    /// Raw logits of the last prompt position for encoder output `enc`.
    pub fn prompt_logits(&self, enc: &Tensor, prompt: &[u32]) -> Result<Vec<f32>, WhisperError> {
        self.logits_after(enc, prompt, "prompt", 0.0)
    }

    /// [`Whisper::prompt_logits`], a non-finite logit reported on `input`'s
    /// window at `window_start` seconds.
    pub(crate) fn logits_after(
        &self,
        enc: &Tensor,
        prompt: &[u32],
        input: &str,
        window_start: f64,
    ) -> Result<Vec<f32>, WhisperError> {
        let mut state = Decoding::new(self, enc)?;
        let logits = state.feed(self, prompt)?;
        check_finite(&logits, input, window_start)?;
        Ok(logits)
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
        let mut session = Session::from_source(self, source, opts)?;
        loop {
            session.check_cancelled()?;
            let Some(window) = session.next_window()? else {
                break;
            };
            let te = Instant::now();
            let enc = self.encode(window)?;
            let encoder = te.elapsed();
            let prompt = session.prompt(self, &enc)?;
            let td = Instant::now();
            let (result, steps) = session.decode_window(self, &enc, &prompt)?;
            session.add_timings(encoder, td.elapsed());
            session.finish_decoded(self, &enc, result, steps)?;
            let (done, total) = session.progress();
            progress(done, total);
        }
        Ok(session.finish())
    }

    /// The tokens never generated for a `--suppress-tokens` list: `-1`
    /// stands for the model's own list; the control tokens (task, start of
    /// transcript, previous text, language model) are added whenever the list
    /// is not empty (faster-whisper's `get_suppressed_tokens`).
    pub fn suppressed_tokens(&self, list: &[i64]) -> Vec<u32> {
        if list.is_empty() {
            return Vec::new();
        }
        let sp = self.tokenizer.special();
        let vocab = self.dims().n_vocab as i64;
        let mut out: Vec<u32> = list
            .iter()
            .filter(|&&t| (0..vocab).contains(&t))
            .map(|&t| t as u32)
            .collect();
        if list.contains(&-1) {
            out.extend_from_slice(&self.generation.suppress_tokens);
        }
        out.extend([sp.transcribe, sp.translate, sp.sot, sp.sot_prev]);
        out.extend(sp.sot_lm);
        out.sort_unstable();
        out.dedup();
        out
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

    /// Feeds tokens, returns the logits after the last one (the token choice
    /// checks that they are finite).
    fn feed(&mut self, w: &Whisper, tokens: &[u32]) -> Result<Vec<f32>, WhisperError> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids = Tensor::from_slice(&ids, &[1, ids.len()])?;
        let offset = Tensor::from_slice(&[self.offset as i64], &[1])?;
        let logits = w.graph.step(&ids, &offset, &mut self.state)?;
        self.offset += tokens.len();
        Ok(logits.cast(DType::F32)?.to_vec::<f32>()?)
    }
}

/// [`WhisperError::NonFiniteLogits`] on `input`'s window at `window_start`
/// seconds if a logit is NaN or infinite (its argmax would be garbage text).
pub(crate) fn check_finite(
    logits: &[f32],
    input: &str,
    window_start: f64,
) -> Result<(), WhisperError> {
    match decoding::first_non_finite(logits) {
        Some(token) => Err(WhisperError::NonFiniteLogits {
            input: input.to_string(),
            window_start,
            token,
            value: logits[token],
        }),
        None => Ok(()),
    }
}
