//! Sample-rate conversion with `rubato`'s synchronous FFT resampler (band-limited:
//! a windowed-sinc anti-aliasing filter applied in the frequency domain), fed a
//! chunk at a time so a long stream is converted in bounded memory.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

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
    let mut out = Vec::new();
    let mut resampler = StreamResampler::new(from_rate, to_rate, file)?;
    resampler.push(samples, &mut out)?;
    resampler.finish(&mut out)?;
    Ok(out)
}

/// A mono resampler fed in pieces of any size. The concatenated output of
/// [`push`](Self::push) and [`finish`](Self::finish) is exactly what resampling the
/// concatenated input in one call gives: `ceil(len * to / from)` samples, the
/// filter delay removed. Memory stays bounded by one resampler chunk.
pub(crate) struct StreamResampler {
    /// `None` when the rates are equal (samples pass through).
    fft: Option<Fft<f32>>,
    from_rate: u32,
    to_rate: u32,
    /// Input not yet processed (at most one chunk).
    pending: Vec<f32>,
    /// One chunk of output.
    scratch: Vec<f32>,
    /// Startup-delay frames still to drop from the output.
    to_trim: usize,
    input_len: u64,
    output_len: u64,
    file: String,
}

impl StreamResampler {
    /// A resampler from `from_rate` to `to_rate` Hz; `file` labels errors.
    pub(crate) fn new(from_rate: u32, to_rate: u32, file: &str) -> Result<Self, AudioError> {
        let mut this = StreamResampler {
            fft: None,
            from_rate,
            to_rate,
            pending: Vec::new(),
            scratch: Vec::new(),
            to_trim: 0,
            input_len: 0,
            output_len: 0,
            file: file.to_string(),
        };
        if from_rate != to_rate {
            let fft = Fft::<f32>::new(
                from_rate as usize,
                to_rate as usize,
                CHUNK_FRAMES,
                1,
                FixedSync::Input,
            )
            .map_err(|e| this.error(e.to_string()))?;
            this.to_trim = fft.output_delay();
            this.scratch = vec![0.0; fft.output_frames_max()];
            this.fft = Some(fft);
        }
        Ok(this)
    }

    fn error(&self, reason: String) -> AudioError {
        AudioError::Resample {
            file: self.file.clone(),
            from_rate: self.from_rate,
            to_rate: self.to_rate,
            reason,
        }
    }

    /// Feed `input`, appending the output that is ready to `out`.
    pub(crate) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.input_len += input.len() as u64;
        if self.fft.is_none() {
            out.extend_from_slice(input);
            self.output_len += input.len() as u64;
            return Ok(());
        }
        let mut input = input;
        loop {
            let next = self.fft.as_ref().map_or(0, |f| f.input_frames_next());
            // A chunk is processed in full only when more input follows it (the
            // one-call path treats the final chunk as partial even when complete).
            if self.pending.len() + input.len() <= next {
                self.pending.extend_from_slice(input);
                return Ok(());
            }
            let take = next - self.pending.len();
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            let chunk = std::mem::take(&mut self.pending);
            self.process(&chunk, None, out)?;
            self.pending = chunk;
            self.pending.clear();
        }
    }

    /// Flush the last partial chunk and the filter tail, appending to `out` so the
    /// whole output has `ceil(input_len * to / from)` samples.
    pub(crate) fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        if self.fft.is_none() || self.input_len == 0 {
            return Ok(());
        }
        let ratio = self.to_rate as f64 / self.from_rate as f64;
        let expected = (ratio * self.input_len as f64).ceil() as u64;
        let start = out.len();
        let before = self.output_len;
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.process(&pending, Some(pending.len()), out)?;
        }
        while self.output_len < expected {
            self.process(&[], Some(0), out)?;
        }
        if before > expected {
            return Err(
                self.error("the resampler produced more output than its input allows".into())
            );
        }
        out.truncate(start + (expected - before) as usize);
        self.output_len = expected;
        Ok(())
    }

    /// One resampler call on `chunk` (`partial`: how many of its frames are valid
    /// for the final call), dropping the startup delay from the output.
    fn process(
        &mut self,
        chunk: &[f32],
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), AudioError> {
        let fft = self.fft.as_mut().expect("only called when resampling");
        let frames_in = fft.input_frames_next();
        let padded;
        let chunk = if chunk.len() < frames_in {
            padded = [chunk, &vec![0.0; frames_in - chunk.len()]].concat();
            &padded[..]
        } else {
            chunk
        };
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let frames_out = self.scratch.len();
        let result = (|| {
            let input = InterleavedSlice::new(chunk, 1, frames_in).map_err(|e| e.to_string())?;
            let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, frames_out)
                .map_err(|e| e.to_string())?;
            fft.process_into_buffer(&input, &mut output, Some(&indexing))
                .map_err(|e| e.to_string())
        })();
        let (_, produced) = result.map_err(|reason| self.error(reason))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        out.extend_from_slice(&self.scratch[skip..produced]);
        self.output_len += (produced - skip) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rubato::audioadapter_buffers::direct::InterleavedSlice;

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

    /// `rubato`'s one-call path, the reference the streaming path must equal.
    fn process_all(x: &[f32], from: u32, to: u32) -> Vec<f32> {
        let mut r = Fft::<f32>::new(
            from as usize,
            to as usize,
            CHUNK_FRAMES,
            1,
            FixedSync::Input,
        )
        .unwrap();
        let input = InterleavedSlice::new(x, 1, x.len()).unwrap();
        r.process_all(&input, x.len(), None).unwrap().take_data()
    }

    #[test]
    fn streaming_equals_one_call_bitwise() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut noise = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for (from, len, piece) in [
            (44100, 1, 1),
            (44100, 1024, 1024),
            (44100, 1025, 7),
            (44100, 2048, 1024),
            (44100, 30_000, 4096),
            (48000, 20_000, 1000),
            (8000, 5000, 333),
            (22050, 77_777, 10_000),
            (11025, 4410, 4410),
        ] {
            let x: Vec<f32> = (0..len).map(|_| noise()).collect();
            let want = process_all(&x, from, 16000);
            let mut got = Vec::new();
            let mut r = StreamResampler::new(from, 16000, "t").unwrap();
            for part in x.chunks(piece) {
                r.push(part, &mut got).unwrap();
            }
            r.finish(&mut got).unwrap();
            assert!(got == want, "{from} Hz, {len} samples in pieces of {piece}");
        }
    }
}
