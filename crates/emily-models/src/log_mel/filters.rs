//! The Slaney-style mel filterbank Whisper uses (librosa's `mel(norm="slaney")`,
//! Hugging Face's `mel_filter_bank(norm="slaney", mel_scale="slaney")`).
//!
//! Computed in f64 exactly as the reference does (same `linspace`, same slopes) and
//! rounded to f32 once at the end.

/// Hertz to mel on the Slaney scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let (min_log_hz, min_log_mel, logstep) = (1000.0, 15.0, 27.0 / 6.4f64.ln());
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() * logstep
    } else {
        3.0 * hz / 200.0
    }
}

/// Mel to hertz on the Slaney scale (inverse of [`hz_to_mel`]).
fn mel_to_hz(mel: f64) -> f64 {
    let (min_log_hz, min_log_mel, logstep) = (1000.0, 15.0, 6.4f64.ln() / 27.0);
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// NumPy's `linspace(start, stop, num)` (endpoint included, last value exact).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// The mel filterbank for `n_mels` bins over `n_fft / 2 + 1` FFT bins at
/// `sample_rate`, covering 0 Hz to the Nyquist frequency, Slaney-normalised
/// (each triangle has unit area in Hz).
///
/// Layout `(n_freq, n_mels)` row-major, as Hugging Face stores `mel_filters`.
/// `n_mels` must be at least 1 and `n_fft` at least 2.
pub fn mel_filters(n_mels: usize, n_fft: usize, sample_rate: usize) -> Vec<f32> {
    let n_freq = n_fft / 2 + 1;
    let fft_freqs = linspace(0.0, (sample_rate / 2) as f64, n_freq);
    let mel_max = hz_to_mel((sample_rate / 2) as f64);
    let filter_freqs: Vec<f64> = linspace(hz_to_mel(0.0), mel_max, n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut out = vec![0f32; n_freq * n_mels];
    for (f, &freq) in fft_freqs.iter().enumerate() {
        for m in 0..n_mels {
            let down = -(filter_freqs[m] - freq) / diff[m];
            let up = (filter_freqs[m + 2] - freq) / diff[m + 1];
            let enorm = 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
            out[f * n_mels + m] = (0f64.max(down.min(up)) * enorm) as f32;
        }
    }
    out
}

/// The filterbank stored per mel bin as its run of non-zero weights: each triangle
/// touches only a few FFT bins, so applying it this way is ~40x cheaper than the
/// dense product.
#[derive(Clone, Debug)]
pub(crate) struct SparseFilters {
    /// For each mel bin: first FFT bin and the weights from there on.
    rows: Vec<(usize, Vec<f32>)>,
}

impl SparseFilters {
    /// Compress a dense `(n_freq, n_mels)` filterbank.
    pub(crate) fn from_dense(dense: &[f32], n_freq: usize, n_mels: usize) -> Self {
        let rows = (0..n_mels)
            .map(|m| {
                let column: Vec<f32> = (0..n_freq).map(|f| dense[f * n_mels + m]).collect();
                let first = column.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = column
                    .iter()
                    .rposition(|&w| w != 0.0)
                    .map_or(first, |l| l + 1);
                (first, column[first..last].to_vec())
            })
            .collect();
        SparseFilters { rows }
    }

    /// `out[m] = sum_f filters[f, m] * power[f]` for every mel bin `m`.
    pub(crate) fn apply(&self, power: &[f32], out: &mut [f32]) {
        for (o, (first, weights)) in out.iter_mut().zip(&self.rows) {
            *o = weights
                .iter()
                .zip(&power[*first..])
                .map(|(w, p)| w * p)
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 500.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert_eq!(hz_to_mel(1000.0), 15.0);
    }

    #[test]
    fn sparse_matches_dense() {
        let (n_freq, n_mels) = (201, 80);
        let dense = mel_filters(n_mels, 400, 16000);
        let sparse = SparseFilters::from_dense(&dense, n_freq, n_mels);
        let power: Vec<f32> = (0..n_freq).map(|i| (i as f32 * 0.37).sin().abs()).collect();
        let mut out = vec![0f32; n_mels];
        sparse.apply(&power, &mut out);
        for m in 0..n_mels {
            let want: f32 = (0..n_freq).map(|f| dense[f * n_mels + m] * power[f]).sum();
            assert!(
                (out[m] - want).abs() <= 1e-6 * want.abs().max(1.0),
                "mel {m}"
            );
        }
    }
}
