//! Whisper's log-mel spectrogram, matching Hugging Face's `WhisperFeatureExtractor`.
//!
//! For 16 kHz mono samples:
//! 1. zero-pad on the right to 30 s (480000 samples);
//! 2. centred STFT: n_fft 400, hop 160, periodic Hann window, reflect padding of
//!    200 samples at both ends, giving 3001 frames; the last one is dropped;
//! 3. power `|X|^2` of the 201 bins, projected on the Slaney mel filterbank
//!    ([`mel_filters`], 80 or 128 bins);
//! 4. `L = log10(max(mel, 1e-10))`, `L = max(L, max(L) - 8)`, `(L + 4) / 4`.
//!
//! The FFT comes from `realfft`; frames are computed in parallel with rayon, and
//! frames that lie wholly in the zero padding skip the FFT (their power is zero).
//!
//! Long audio need not be held whole: [`LogMelFeaturizer::loudness_scan`] and
//! [`LogMelFeaturizer::long_windows`] give [`compute_long`](LogMelFeaturizer::compute_long)'s
//! windows, bit for bit, from two streamed passes in bounded memory.

mod filters;
mod stft;
mod windows;

pub use filters::mel_filters;
pub use windows::{Loudness, LoudnessScan, MelWindows};

use filters::SparseFilters;
use stft::MelStft;

/// Sample rate the features expect.
pub const SAMPLE_RATE: usize = 16_000;
/// FFT size (25 ms).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30 s window.
pub const CHUNK_SAMPLES: usize = 480_000;
/// Frames in one 30 s window.
pub const CHUNK_FRAMES: usize = CHUNK_SAMPLES / HOP_LENGTH;

/// Errors computing features.
#[derive(Debug, thiserror::Error)]
pub enum LogMelError {
    /// The mel bin count is not usable (Whisper uses 80 or 128).
    #[error("log-mel: {n_mels} mel bins requested; expected between 1 and {max}")]
    BadMelCount {
        /// Requested count.
        n_mels: usize,
        /// Largest sensible count (the number of FFT bins).
        max: usize,
    },
    /// More audio than one 30 s window was given to [`LogMelFeaturizer::compute`].
    #[error("log-mel: {samples} samples exceed one 30 s window ({max}); use compute_long or split the audio")]
    TooLong {
        /// Samples given.
        samples: usize,
        /// Samples in a window.
        max: usize,
    },
    /// A window was asked for out of order, before its samples, or into a
    /// buffer of the wrong size ([`MelWindows::window`]).
    #[error("log-mel: window at frame {seek}: {reason}")]
    Window {
        /// The window's first frame.
        seek: usize,
        /// What was wrong.
        reason: String,
    },
    /// A sample is NaN or infinite.
    #[error("log-mel: sample {index} is {value} (audio must be finite)")]
    NonFinite {
        /// Position of the first bad sample.
        index: usize,
        /// Its value.
        value: f32,
    },
}

/// Log-mel features, row-major `(n_mels, n_frames)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogMel {
    /// The values: `data[m * n_frames + t]` is mel bin `m` of frame `t`.
    pub data: Vec<f32>,
    /// Mel bins (rows).
    pub n_mels: usize,
    /// Frames (columns), 100 per second.
    pub n_frames: usize,
}

/// A reusable featurizer for a fixed number of mel bins (cheap to share across threads).
pub struct LogMelFeaturizer {
    n_mels: usize,
    stft: MelStft,
}

impl LogMelFeaturizer {
    /// A featurizer with `n_mels` bins (80 for most Whisper models, 128 for large-v3).
    pub fn new(n_mels: usize) -> Result<Self, LogMelError> {
        let n_freq = N_FFT / 2 + 1;
        if n_mels == 0 || n_mels > n_freq {
            return Err(LogMelError::BadMelCount {
                n_mels,
                max: n_freq,
            });
        }
        let dense = mel_filters(n_mels, N_FFT, SAMPLE_RATE);
        let filters = SparseFilters::from_dense(&dense, n_freq, n_mels);
        Ok(LogMelFeaturizer {
            n_mels,
            stft: MelStft::new(N_FFT, HOP_LENGTH, n_mels, filters),
        })
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Features of one 30 s window (Hugging Face's `WhisperFeatureExtractor`):
    /// `samples` (16 kHz mono, at most [`CHUNK_SAMPLES`]) are zero-padded to 30 s;
    /// the result has [`CHUNK_FRAMES`] frames.
    pub fn compute(&self, samples: &[f32]) -> Result<LogMel, LogMelError> {
        if samples.len() > CHUNK_SAMPLES {
            return Err(LogMelError::TooLong {
                samples: samples.len(),
                max: CHUNK_SAMPLES,
            });
        }
        self.compute_padded(samples, CHUNK_SAMPLES)
    }

    /// Features of audio of any length, as OpenAI's `log_mel_spectrogram(audio,
    /// padding=N_SAMPLES)`: 30 s of zeros are appended, giving
    /// `(len + 480000) / 160` frames normalised together (one global maximum), so
    /// 30 s windows can be sliced from it at any frame offset. For audio up to 30 s
    /// the first [`CHUNK_FRAMES`] frames equal [`compute`](Self::compute)'s except
    /// when the audio reaches the last 200 samples of the window.
    pub fn compute_long(&self, samples: &[f32]) -> Result<LogMel, LogMelError> {
        self.compute_padded(samples, samples.len() + CHUNK_SAMPLES)
    }

    /// `samples` zero-padded to `padded_len` (>= len, > 200), then centred STFT
    /// frames `0 .. padded_len / hop` (the final centred frame is dropped).
    fn compute_padded(&self, samples: &[f32], padded_len: usize) -> Result<LogMel, LogMelError> {
        if let Some(index) = samples.iter().position(|s| !s.is_finite()) {
            return Err(LogMelError::NonFinite {
                index,
                value: samples[index],
            });
        }
        let n_frames = padded_len / HOP_LENGTH;
        let log = self.stft.log_mel_frames(samples, padded_len, n_frames);
        Ok(LogMel {
            data: normalize_transposed(&log, n_frames, self.n_mels),
            n_mels: self.n_mels,
            n_frames,
        })
    }
}

/// Frame-major `log10` mel power to row-major `(n_mels, n_frames)`, clamped to
/// 8 below the maximum and scaled as `(x + 4) / 4`.
fn normalize_transposed(log: &[f32], n_frames: usize, n_mels: usize) -> Vec<f32> {
    let floor = log.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
    let mut out = vec![0f32; n_mels * n_frames];
    for (t, frame) in log.chunks_exact(n_mels).enumerate() {
        for (m, &l) in frame.iter().enumerate() {
            out[m * n_frames + t] = (l.max(floor) + 4.0) / 4.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_flat_and_sine_peaks_at_its_mel_bin() {
        let fe = LogMelFeaturizer::new(80).unwrap();
        let silent = fe.compute(&[]).unwrap();
        assert_eq!((silent.n_mels, silent.n_frames), (80, 3000));
        assert!(silent.data.iter().all(|&v| v == -1.5));

        let tone: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin())
            .collect();
        let mel = fe.compute(&tone).unwrap();
        let frame = 50;
        let column: Vec<f32> = (0..80).map(|m| mel.data[m * 3000 + frame]).collect();
        let peak = column
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        // 1 kHz is 15 Slaney mels; bins are ~0.565 mel apart: bin 25 or 26.
        assert!((25..=26).contains(&peak), "peak at mel bin {peak}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(LogMelFeaturizer::new(0).is_err());
        let fe = LogMelFeaturizer::new(80).unwrap();
        assert!(matches!(
            fe.compute(&vec![0.0; CHUNK_SAMPLES + 1]),
            Err(LogMelError::TooLong { .. })
        ));
        assert!(matches!(
            fe.compute(&[0.0, f32::NAN]),
            Err(LogMelError::NonFinite { index: 1, .. })
        ));
        assert_eq!(fe.compute_long(&vec![0.0; 16000]).unwrap().n_frames, 3100);
    }
}
