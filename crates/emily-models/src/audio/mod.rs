//! Audio input for Whisper: any file or sample buffer to 16 kHz mono f32.
//!
//! - [`decode_file`] / [`decode_bytes`] decode WAV (8/16/24/32-bit integer PCM,
//!   32-bit float), FLAC, MP3 and OGG/Vorbis with `symphonia` into interleaved f32
//!   ([`DecodedAudio`]). Integer PCM maps to `[-1, 1)` by dividing by `2^(bits-1)`
//!   (16-bit: `i16 / 32768.0` exactly, the golden convention).
//! - [`mix_to_mono`] averages any number of channels.
//! - [`resample`] converts any rate with `rubato`'s band-limited FFT resampler.
//! - [`load_audio`] does all three for a file; [`prepare_samples`] for raw samples.
//!
//! Empty, truncated, corrupt and non-audio inputs are errors naming the file;
//! nothing here panics on bad input.

mod decode;
mod resample;

pub use decode::{decode_bytes, decode_file, DecodedAudio};
pub use resample::resample;

use std::path::Path;

/// The sample rate Whisper expects.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// Errors reading or converting audio; `file` names the input (a path, or the label
/// given to [`decode_bytes`] / `"samples"` for raw buffers).
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The input.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input holds no audio (an empty file, or a stream with no samples).
    #[error("{file}: contains no audio")]
    Empty {
        /// The input.
        file: String,
    },
    /// The input is not in a recognised audio format.
    #[error("{file}: not a recognised audio file (WAV, FLAC, MP3, OGG/Vorbis): {reason}")]
    NotAudio {
        /// The input.
        file: String,
        /// The probe's message.
        reason: String,
    },
    /// The container has no track a decoder supports.
    #[error("{file}: unsupported audio: {reason}")]
    Unsupported {
        /// The input.
        file: String,
        /// What is unsupported.
        reason: String,
    },
    /// The stream is damaged.
    #[error("{file}: corrupt audio: {reason}")]
    Corrupt {
        /// The input.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The stream ends before its declared end.
    #[error("{file}: truncated audio: {reason}")]
    Truncated {
        /// The input.
        file: String,
        /// What is missing.
        reason: String,
    },
    /// A raw sample buffer or its description is invalid.
    #[error("{file}: invalid samples: {reason}")]
    InvalidSamples {
        /// The input.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The resampler rejected the rates or failed.
    #[error("{file}: cannot resample from {from_rate} Hz to {to_rate} Hz: {reason}")]
    Resample {
        /// The input.
        file: String,
        /// Source rate.
        from_rate: u32,
        /// Target rate.
        to_rate: u32,
        /// The resampler's message.
        reason: String,
    },
}

/// Average interleaved `channels`-channel samples into one channel. A trailing
/// partial frame is ignored; one channel is returned as is.
pub fn mix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    match channels {
        0 => Vec::new(),
        1 => interleaved.to_vec(),
        n => {
            let scale = 1.0 / n as f32;
            interleaved
                .chunks_exact(n)
                .map(|frame| frame.iter().sum::<f32>() * scale)
                .collect()
        }
    }
}

/// Raw interleaved samples at `sample_rate` with `channels` channels to 16 kHz mono.
/// `file` labels the buffer in errors. Samples must be finite.
pub fn prepare_samples(
    interleaved: &[f32],
    sample_rate: u32,
    channels: usize,
    file: &str,
) -> Result<Vec<f32>, AudioError> {
    let invalid = |reason: String| AudioError::InvalidSamples {
        file: file.to_string(),
        reason,
    };
    if channels == 0 || sample_rate == 0 {
        return Err(invalid(format!("{channels} channels at {sample_rate} Hz")));
    }
    if !interleaved.len().is_multiple_of(channels) {
        return Err(invalid(format!(
            "{} samples are not a whole number of {channels}-channel frames",
            interleaved.len()
        )));
    }
    if let Some(i) = interleaved.iter().position(|s| !s.is_finite()) {
        return Err(invalid(format!("sample {i} is {}", interleaved[i])));
    }
    let mono = mix_to_mono(interleaved, channels);
    resample(&mono, sample_rate, WHISPER_SAMPLE_RATE, file)
}

/// Decode the audio file at `path` and convert it to 16 kHz mono f32.
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let decoded = decode_file(path)?;
    let file = path.display().to_string();
    prepare_samples(
        &decoded.samples,
        decoded.sample_rate,
        decoded.channels,
        &file,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixing_averages_channels() {
        assert_eq!(mix_to_mono(&[1.0, 3.0, -1.0, 0.0], 2), vec![2.0, -0.5]);
        assert_eq!(mix_to_mono(&[0.25, 0.5], 1), vec![0.25, 0.5]);
    }

    #[test]
    fn raw_sample_errors() {
        assert!(prepare_samples(&[0.0; 3], 16000, 2, "buf").is_err());
        assert!(prepare_samples(&[0.0; 4], 0, 2, "buf").is_err());
        let err = prepare_samples(&[0.0, f32::NAN], 16000, 1, "buf").unwrap_err();
        assert!(err.to_string().starts_with("buf:"), "{err}");
        assert_eq!(
            prepare_samples(&[0.5; 8], 16000, 2, "buf").unwrap(),
            vec![0.5; 4]
        );
    }
}
