//! Centred short-time power spectra, as `torch.stft(center=True, pad_mode="reflect")`
//! followed by `|X|^2`, with the mel projection and `log10(max(x, 1e-10))` applied
//! per frame (all inside the parallel loop).

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

use super::filters::SparseFilters;

/// Smallest mel power before the logarithm.
const LOG_FLOOR: f32 = 1e-10;

/// `log10` of [`LOG_FLOOR`]: the value of a silent frame, the smallest there is.
pub(crate) fn log_floor() -> f32 {
    LOG_FLOOR.log10()
}

/// Frames per rayon task: large enough to amortise the scratch buffers.
const FRAMES_PER_TASK: usize = 64;

/// A reusable plan: FFT, window and filters for one `(n_fft, hop, n_mels)`.
pub(crate) struct MelStft {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    filters: SparseFilters,
}

/// Periodic Hann window of length `n` (`torch.hann_window(n)`).
fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

impl MelStft {
    pub(crate) fn new(n_fft: usize, hop: usize, n_mels: usize, filters: SparseFilters) -> Self {
        MelStft {
            n_fft,
            hop,
            n_mels,
            window: hann_periodic(n_fft),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(n_fft),
            filters,
        }
    }

    /// `log10(max(mel power, 1e-10))` of the first `n_frames` centred frames of
    /// `samples` zero-padded to `padded_len`, frame-major: `out[t * n_mels + m]`.
    ///
    /// Frame `t` is centred on sample `t * hop`; samples before 0 and after
    /// `padded_len` are reflected (`x[-i] = x[i]`, `x[L - 1 + i] = x[L - 1 - i]`).
    /// Requires `padded_len > n_fft / 2` and `samples.len() <= padded_len`.
    pub(crate) fn log_mel_frames(
        &self,
        samples: &[f32],
        padded_len: usize,
        n_frames: usize,
    ) -> Vec<f32> {
        let mut out = vec![0f32; n_frames * self.n_mels];
        self.log_mel_frames_at(samples, 0, padded_len, 0, &mut out);
        out
    }

    /// Number of mel bins per frame.
    pub(crate) fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Hop between frames, in samples.
    pub(crate) fn hop(&self) -> usize {
        self.hop
    }

    /// Samples each side of a frame's centre (`n_fft / 2`).
    pub(crate) fn half_window(&self) -> usize {
        self.n_fft / 2
    }

    /// [`log_mel_frames`](Self::log_mel_frames) for frames `first_frame ..
    /// first_frame + out.len() / n_mels` of a signal of which `samples` holds the
    /// part starting at sample `origin` (everything before it that the frames
    /// need must be held; everything after it is zero).
    pub(crate) fn log_mel_frames_at(
        &self,
        samples: &[f32],
        origin: usize,
        padded_len: usize,
        first_frame: usize,
        out: &mut [f32],
    ) {
        let half = (self.n_fft / 2) as isize;
        let last = padded_len as isize - 1;
        let origin = origin as isize;
        let at = |i: isize| -> f32 {
            let j = if i < 0 {
                -i
            } else if i > last {
                2 * last - i
            } else {
                i
            };
            debug_assert!(j >= origin, "sample {j} was dropped (held from {origin})");
            usize::try_from(j - origin)
                .ok()
                .and_then(|k| samples.get(k))
                .copied()
                .unwrap_or(0.0)
        };
        out.fill(log_floor());
        out.par_chunks_mut(FRAMES_PER_TASK * self.n_mels)
            .enumerate()
            .for_each(|(task, chunk)| {
                let mut frame = self.fft.make_input_vec();
                let mut spectrum = self.fft.make_output_vec();
                let mut scratch = self.fft.make_scratch_vec();
                let mut power = vec![0f32; spectrum.len()];
                for (k, mel) in chunk.chunks_mut(self.n_mels).enumerate() {
                    let t = first_frame + task * FRAMES_PER_TASK + k;
                    let start = (t * self.hop) as isize - half;
                    let mut silent = true;
                    for (n, (x, w)) in frame.iter_mut().zip(&self.window).enumerate() {
                        let s = at(start + n as isize);
                        silent &= s == 0.0;
                        *x = s * w;
                    }
                    if silent {
                        // All-zero frame: zero power, so `mel` keeps the floor.
                        continue;
                    }
                    self.fft
                        .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                        .expect("buffer sizes come from the plan");
                    for (p, c) in power.iter_mut().zip(&spectrum) {
                        *p = c.re * c.re + c.im * c.im;
                    }
                    self.filters.apply(&power, mel);
                    for v in mel.iter_mut() {
                        *v = v.max(LOG_FLOOR).log10();
                    }
                }
            });
    }
}
