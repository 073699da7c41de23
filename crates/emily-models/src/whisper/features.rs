//! The transcriber's input: 30 s log-mel windows from any [`AudioSource`], in
//! memory bounded by a window whatever the duration.
//!
//! Audio of at most 30 s is one window padded to 30 s
//! ([`LogMelFeaturizer::compute`]). Longer audio is read twice: a loudness scan,
//! then windows computed as the samples arrive ([`MelWindows`]), equal bit for
//! bit to slices of [`LogMelFeaturizer::compute_long`] of the whole audio.
//!
//! A window holds the frames of real audio from its start (at most 3000) and
//! zeros after them, as OpenAI's and faster-whisper's `pad_or_trim` of the
//! sliced log-mel: the model was trained on windows padded that way, and the
//! padded region's value (0.0, not the log-mel floor of silent audio) changes
//! the decoded text (see `testdata/goldens/README.md`). The audio holds
//! `samples / 160` frames (rounded down, as both references count them).

use crate::audio::{AudioError, AudioSource, SampleChunks};
use crate::log_mel::{
    LogMel, LogMelError, LogMelFeaturizer, MelWindows, CHUNK_FRAMES, CHUNK_SAMPLES, HOP_LENGTH,
};

use super::WhisperError;

/// 30 s feature windows of one input.
pub(crate) enum Features<'s> {
    /// At most 30 s of audio: one padded window.
    Short { mel: LogMel, samples: usize },
    /// Longer audio in memory, featurised at once (`compute_long`).
    Whole { mel: LogMel, content: usize },
    /// Longer audio, featurised window by window.
    Long {
        windows: MelWindows<'s>,
        chunks: Box<dyn SampleChunks + 's>,
        /// Samples pushed into `windows` so far, and how many the scan counted.
        pushed: usize,
        expected: usize,
    },
}

/// A log-mel error on `name`'s samples, naming the input.
fn named(err: LogMelError, name: &str) -> WhisperError {
    match err {
        LogMelError::NonFinite { index, value } => AudioError::InvalidSamples {
            file: name.to_string(),
            reason: format!("sample {index} is {value}"),
        }
        .into(),
        other => other.into(),
    }
}

impl Features<'static> {
    /// The windows of 16 kHz mono `samples` in memory, all computed now (the
    /// same features as [`Features::open`] on them); `name` labels errors.
    pub(crate) fn from_samples(
        featurizer: &LogMelFeaturizer,
        samples: &[f32],
        name: &str,
    ) -> Result<Features<'static>, WhisperError> {
        if samples.is_empty() {
            return Err(WhisperError::Empty(name.to_string()));
        }
        if samples.len() <= CHUNK_SAMPLES {
            let mel = featurizer.compute(samples).map_err(|e| named(e, name))?;
            return Ok(Features::Short {
                mel,
                samples: samples.len(),
            });
        }
        let mel = featurizer
            .compute_long(samples)
            .map_err(|e| named(e, name))?;
        let content = mel.n_frames - CHUNK_FRAMES;
        Ok(Features::Whole { mel, content })
    }
}

impl<'s> Features<'s> {
    /// Read `source` once to size and scan it; long audio is then streamed again
    /// window by window.
    pub(crate) fn open(
        featurizer: &'s LogMelFeaturizer,
        source: &'s mut AudioSource<'_>,
    ) -> Result<Features<'s>, WhisperError> {
        let name = source.name().to_string();
        let mut head: Vec<f32> = Vec::new();
        let mut scan = featurizer.loudness_scan();
        let mut long = false;
        {
            let mut chunks = source.stream()?;
            while let Some(chunk) = chunks.next_chunk()? {
                if long {
                    scan.push(chunk).map_err(|e| named(e, &name))?;
                    continue;
                }
                head.extend_from_slice(chunk);
                if head.len() > CHUNK_SAMPLES {
                    long = true;
                    scan.push(&head).map_err(|e| named(e, &name))?;
                    head = Vec::new();
                }
            }
        }
        if !long {
            if head.is_empty() {
                return Err(WhisperError::Empty(name));
            }
            let mel = featurizer.compute(&head).map_err(|e| named(e, &name))?;
            return Ok(Features::Short {
                mel,
                samples: head.len(),
            });
        }
        let loudness = scan.finish();
        Ok(Features::Long {
            windows: featurizer.long_windows(&loudness),
            chunks: source.stream()?,
            pushed: 0,
            expected: loudness.samples,
        })
    }

    /// Frames (100 per second) that hold audio: windows start before this.
    pub(crate) fn content_frames(&self) -> usize {
        match self {
            Features::Short { samples, .. } => samples / HOP_LENGTH,
            Features::Whole { content, .. } => *content,
            Features::Long { windows, .. } => windows.content_frames(),
        }
    }

    /// The `(n_mels, 3000)` window starting at frame `seek` (non-decreasing
    /// from call to call, below [`Features::content_frames`]) into `out`:
    /// the audio's frames, then zeros.
    pub(crate) fn window(&mut self, seek: usize, out: &mut [f32]) -> Result<(), WhisperError> {
        let content = self.content_frames();
        if seek >= content {
            return Err(LogMelError::Window {
                seek,
                reason: format!("the audio has {content} frames"),
            }
            .into());
        }
        match self {
            Features::Short { mel, .. } => {
                if out.len() != mel.data.len() {
                    return Err(LogMelError::Window {
                        seek,
                        reason: format!(
                            "a buffer of {} values for {} mel rows of {CHUNK_FRAMES} frames",
                            out.len(),
                            mel.n_mels
                        ),
                    }
                    .into());
                }
                debug_assert_eq!(mel.n_frames, CHUNK_FRAMES);
                for (src, dst) in mel
                    .data
                    .chunks_exact(CHUNK_FRAMES)
                    .zip(out.chunks_exact_mut(CHUNK_FRAMES))
                {
                    dst[..content - seek].copy_from_slice(&src[seek..content]);
                }
            }
            Features::Whole { mel, content } => {
                let (n_frames, n_mels) = (mel.n_frames, mel.n_mels);
                // 30 s of padding frames follow `content`: a window starting
                // before it is whole.
                if out.len() != n_mels * CHUNK_FRAMES {
                    return Err(LogMelError::Window {
                        seek,
                        reason: format!("the audio has {content} frames"),
                    }
                    .into());
                }
                for m in 0..n_mels {
                    let row = &mel.data[m * n_frames..(m + 1) * n_frames];
                    out[m * CHUNK_FRAMES..(m + 1) * CHUNK_FRAMES]
                        .copy_from_slice(&row[seek..seek + CHUNK_FRAMES]);
                }
            }
            Features::Long {
                windows,
                chunks,
                pushed,
                expected,
            } => {
                let name = chunks.name().to_string();
                let changed = |reason: String| AudioError::Changed { file: name, reason };
                while !windows.ready(seek) {
                    match chunks.next_chunk()? {
                        Some(chunk) => {
                            *pushed += chunk.len();
                            if *pushed > *expected {
                                return Err(changed(format!(
                                    "more than the {expected} samples of the first read"
                                ))
                                .into());
                            }
                            windows.push(chunk)?;
                        }
                        None if *pushed < *expected => {
                            return Err(changed(format!(
                                "{pushed} samples, {expected} in the first read"
                            ))
                            .into())
                        }
                        None => windows.end(),
                    }
                }
                windows.window(seek, out)?;
            }
        }
        let n = (content - seek).min(CHUNK_FRAMES);
        for row in out.chunks_exact_mut(CHUNK_FRAMES) {
            row[n..].fill(0.0);
        }
        Ok(())
    }
}
