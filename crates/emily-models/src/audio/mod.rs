//! Audio input for Whisper: any file, pipe or sample buffer to 16 kHz mono f32.
//!
//! - [`decode_file`] / [`decode_bytes`] decode WAV (8/16/24/32-bit integer PCM,
//!   32-bit float), FLAC, MP3 and OGG/Vorbis with `symphonia` into interleaved f32
//!   ([`DecodedAudio`]). Integer PCM maps to `[-1, 1)` by dividing by `2^(bits-1)`
//!   (16-bit: `i16 / 32768.0` exactly, the golden convention).
//! - [`mix_to_mono`] averages any number of channels.
//! - [`resample`] converts any rate with `rubato`'s band-limited FFT resampler.
//! - [`AudioStream`] does all three packet by packet, yielding 16 kHz mono chunks
//!   in bounded memory whatever the duration; [`AudioSource`] names an input (a
//!   file, standard input, a pipe) that can be streamed more than once.
//! - [`load_audio`] collects a whole file's stream; [`prepare_samples`] converts
//!   raw samples.
//!
//! Empty, truncated, corrupt and non-audio inputs, and sample rates outside
//! [`MIN_SAMPLE_RATE`] ..= [`MAX_SAMPLE_RATE`], are errors naming the input;
//! nothing here panics on bad input.

mod decode;
mod resample;
mod source;
mod stream;

pub use decode::{decode_bytes, decode_file, DecodedAudio};
pub use resample::resample;
pub use source::AudioSource;
pub use stream::{AudioStream, SampleChunks, SliceChunks};

use std::path::Path;

/// The sample rate Whisper expects.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
/// The lowest input sample rate accepted (Hz); below it a header is taken as hostile
/// or broken (1 Hz would make the resampler produce 16000 samples per input sample).
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// The highest input sample rate accepted (Hz).
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// `Ok` if `rate` lies in [`MIN_SAMPLE_RATE`] ..= [`MAX_SAMPLE_RATE`], else an
/// [`AudioError::SampleRate`] naming `file`.
pub fn check_sample_rate(rate: u32, file: &str) -> Result<(), AudioError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::SampleRate {
            file: file.to_string(),
            rate,
        })
    }
}

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
    /// The sample rate is outside [`MIN_SAMPLE_RATE`] ..= [`MAX_SAMPLE_RATE`].
    #[error("{file}: sample rate {rate} Hz is outside the supported {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz (a broken or hostile header?)")]
    SampleRate {
        /// The input.
        file: String,
        /// The rate claimed.
        rate: u32,
    },
    /// The input changed between two reads (a file rewritten while being transcribed).
    #[error("{file}: the audio changed while it was being read ({reason})")]
    Changed {
        /// The input.
        file: String,
        /// What differed.
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
    let mut mono = Vec::new();
    mix_into(interleaved, channels, &mut mono);
    mono
}

/// [`mix_to_mono`], appending to `out`.
fn mix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    match channels {
        0 => {}
        1 => out.extend_from_slice(interleaved),
        n => {
            let scale = 1.0 / n as f32;
            out.extend(
                interleaved
                    .chunks_exact(n)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            )
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
    if channels == 0 {
        return Err(invalid(format!("{channels} channels at {sample_rate} Hz")));
    }
    check_sample_rate(sample_rate, file)?;
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

/// Decode the audio file at `path` and convert it to 16 kHz mono f32, all in
/// memory (about 64 KB per second of audio): for short inputs. Long inputs are
/// better streamed with [`AudioStream`]; this collects the same stream.
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let mut stream = AudioStream::open_path(path)?;
    let mut samples = Vec::new();
    while let Some(chunk) = stream.next_chunk()? {
        samples.extend_from_slice(chunk);
    }
    Ok(samples)
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
        for rate in [0, 1, 999, 384_001, u32::MAX] {
            let err = prepare_samples(&[0.0; 4], rate, 1, "buf").unwrap_err();
            assert!(matches!(err, AudioError::SampleRate { .. }), "{err}");
            assert!(err
                .to_string()
                .contains(&format!("buf: sample rate {rate} Hz")));
        }
        let err = prepare_samples(&[0.0, f32::NAN], 16000, 1, "buf").unwrap_err();
        assert!(err.to_string().starts_with("buf:"), "{err}");
        assert_eq!(
            prepare_samples(&[0.5; 8], 16000, 2, "buf").unwrap(),
            vec![0.5; 4]
        );
    }
}
