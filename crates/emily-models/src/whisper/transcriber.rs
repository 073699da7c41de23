//! The speech-to-text pipeline: audio → log-mel → encoder → greedy decoding
//! (suppression, timestamp rules) → segments, over 30-second windows.
//!
//! Audio of at most 30 s is one window padded to 30 s before the log-mel (the
//! reference implementations' behaviour). Longer audio is featurised once with
//! 30 s of trailing padding and decoded window by window, each window starting
//! where the last complete timestamped segment ended (OpenAI's seek), with the
//! previous window's text as the prompt.

use std::path::Path;
use std::time::{Duration, Instant};

use emily::{DType, Tensor};

use super::decoding::{self, RawSegment};
use super::graph::{GraphDecoderState, GraphError, WhisperGraph};
use super::{load_whisper, GenerationSettings, LoadError, WhisperDims};
use crate::audio::{load_audio, AudioError};
use crate::log_mel::{
    LogMelError, LogMelFeaturizer, CHUNK_FRAMES, CHUNK_SAMPLES, HOP_LENGTH, SAMPLE_RATE,
};
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
    /// Loads a model directory (CTranslate2 or Hugging Face layout).
    pub fn load(dir: &Path, kernels: Kernels) -> Result<Whisper, WhisperError> {
        let ck = load_whisper(dir)?;
        let tokenizer = WhisperTokenizer::from_file(&ck.tokenizer_path)?;
        let featurizer = LogMelFeaturizer::new(ck.dims.n_mels)?;
        let base = WhisperGraph::new(&ck)?;
        let graph = match kernels {
            Kernels::Composed => base,
            Kernels::Fused => base.with_fast_kernels()?,
        };
        Ok(Whisper {
            graph,
            tokenizer,
            featurizer,
            generation: ck.generation,
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

    /// Transcribes an audio file (any supported format, rate and channel count).
    pub fn transcribe_file(
        &self,
        path: &Path,
        opts: &TranscribeOptions,
    ) -> Result<Transcript, WhisperError> {
        let samples = load_audio(path)?;
        if samples.is_empty() {
            return Err(WhisperError::Empty(path.display().to_string()));
        }
        self.transcribe(&samples, opts)
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
        if samples.is_empty() {
            return Err(WhisperError::Empty("samples".into()));
        }
        let mut timings = Timings::default();
        let t0 = Instant::now();
        let long = samples.len() > CHUNK_SAMPLES;
        let mel = if long {
            self.featurizer.compute_long(samples)?
        } else {
            self.featurizer.compute(samples)?
        };
        timings.features = t0.elapsed();
        let content = if long {
            mel.n_frames - CHUNK_FRAMES
        } else {
            samples.len().div_ceil(HOP_LENGTH)
        };
        let sp = self.tokenizer.special().clone();
        let mut language = opts.language.clone();
        let mut segments = Vec::new();
        let mut previous: Vec<u32> = Vec::new();
        let mut seek = 0usize;
        let mut window = vec![0f32; mel.n_mels * CHUNK_FRAMES];
        while seek < content {
            for m in 0..mel.n_mels {
                let row = &mel.data[m * mel.n_frames..(m + 1) * mel.n_frames];
                let dst = &mut window[m * CHUNK_FRAMES..(m + 1) * CHUNK_FRAMES];
                // Always a full window: short audio has exactly CHUNK_FRAMES
                // frames and one window; long audio carries 30 s of padding
                // frames past `content`, and `seek < content`.
                dst.copy_from_slice(&row[seek..seek + CHUNK_FRAMES]);
            }
            let size = (content - seek).min(CHUNK_FRAMES);
            let offset_s = seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let te = Instant::now();
            let enc = self.encode(&window)?;
            timings.encoder += te.elapsed();
            if self.multilingual && language.is_none() {
                language = Some(self.detect_language(&enc)?);
            }
            let mut prompt = Vec::new();
            if opts.condition_on_previous_text && !previous.is_empty() {
                let keep = (self.dims().n_text_ctx / 2 - 1).min(previous.len());
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
            let (tokens, steps) = self.decode_window(&enc, &prompt, opts, &sp)?;
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
            let adv = advance
                .map(|a| a as usize * 2)
                .filter(|&f| f > 0)
                .unwrap_or(size);
            seek += adv;
            let secs = |frames: usize| frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            progress(secs(seek.min(content)), secs(content));
            if !long {
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

    /// Feeds tokens, returns the logits after the last one.
    fn feed(&mut self, w: &Whisper, tokens: &[u32]) -> Result<Vec<f32>, WhisperError> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids = Tensor::from_slice(&ids, &[1, ids.len()])?;
        let offset = Tensor::from_slice(&[self.offset as i64], &[1])?;
        let logits = w.graph.step(&ids, &offset, &mut self.state)?;
        self.offset += tokens.len();
        Ok(logits.cast(DType::F32)?.to_vec::<f32>()?)
    }
}
