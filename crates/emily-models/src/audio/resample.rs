//! Sample-rate conversion with `rubato`'s synchronous FFT resampler (band-limited:
//! a windowed-sinc anti-aliasing filter applied in the frequency domain).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::AudioError;

/// Frames per resampler chunk.
const CHUNK_FRAMES: usize = 1024;

/// Resample mono `samples` from `from_rate` to `to_rate` Hz. The result has
/// `ceil(len * to_rate / from_rate)` samples, aligned with the input (the filter
/// delay is removed). Equal rates return a copy. `file` labels errors.
pub fn resample(
    samples: &[f32],
    from_rate: u32,
    to_rate: u32,
    file: &str,
) -> Result<Vec<f32>, AudioError> {
    if from_rate == to_rate {
        return Ok(samples.to_vec());
    }
    let err = |reason: String| AudioError::Resample {
        file: file.to_string(),
        from_rate,
        to_rate,
        reason,
    };
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let mut resampler = Fft::<f32>::new(
        from_rate as usize,
        to_rate as usize,
        CHUNK_FRAMES,
        1,
        FixedSync::Input,
    )
    .map_err(|e| err(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(output.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_ratio() {
        let x = vec![0.1f32; 44100];
        assert_eq!(resample(&x, 44100, 16000, "t").unwrap().len(), 16000);
        assert_eq!(resample(&x[..1000], 8000, 16000, "t").unwrap().len(), 2000);
        assert_eq!(
            resample(&x[..7], 16000, 16000, "t").unwrap(),
            x[..7].to_vec()
        );
        assert!(resample(&[], 44100, 16000, "t").unwrap().is_empty());
    }
}
