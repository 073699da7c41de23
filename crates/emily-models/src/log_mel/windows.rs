//! Long audio featurised in bounded memory, window by window, with exactly the
//! values of [`LogMelFeaturizer::compute_long`]: a first pass
//! ([`LoudnessScan`]) finds the global maximum the normalisation needs, a second
//! ([`MelWindows`]) computes each 30 s window's frames as the samples arrive and
//! forgets samples and frames behind the window.

use super::stft::{log_floor, MelStft};
use super::{LogMelError, LogMelFeaturizer, CHUNK_FRAMES};

/// Samples the scan collects before computing their frames in one parallel batch.
const SCAN_BATCH_SAMPLES: usize = 1 << 18;

/// The part of a sample stream the next frames need, and the frame cursor.
struct FrameFeed {
    /// Samples from absolute index `origin` on.
    samples: Vec<f32>,
    origin: usize,
    /// Samples pushed so far (`origin + samples.len()`).
    received: usize,
    /// No more samples follow (everything after `received` is zero).
    ended: bool,
    /// The next frame to compute.
    next_frame: usize,
}

impl FrameFeed {
    fn new() -> Self {
        FrameFeed {
            samples: Vec::new(),
            origin: 0,
            received: 0,
            ended: false,
            next_frame: 0,
        }
    }

    fn push(&mut self, chunk: &[f32]) -> Result<(), LogMelError> {
        if let Some(i) = chunk.iter().position(|s| !s.is_finite()) {
            return Err(LogMelError::NonFinite {
                index: self.received + i,
                value: chunk[i],
            });
        }
        self.samples.extend_from_slice(chunk);
        self.received += chunk.len();
        Ok(())
    }

    /// One past the last frame whose samples have all arrived.
    fn ready_until(&self, stft: &MelStft) -> usize {
        let half = stft.half_window();
        if self.ended {
            usize::MAX
        } else if self.received <= half {
            0
        } else {
            // Frame t reads samples up to t * hop + half (and, reflected, sample `half`).
            (self.received - half - 1) / stft.hop() + 1
        }
    }

    /// Skip to frame `frame` (if ahead) without computing the frames between.
    fn skip_to(&mut self, frame: usize, stft: &MelStft) {
        if frame > self.next_frame {
            self.next_frame = frame;
            self.forget(stft);
        }
    }

    /// Compute frames `next_frame .. upto` (all ready), appending them
    /// frame-major to `out`, then forget the samples no later frame needs.
    fn compute(&mut self, upto: usize, stft: &MelStft, out: &mut Vec<f32>) {
        if upto <= self.next_frame {
            return;
        }
        let start = out.len();
        out.resize(start + (upto - self.next_frame) * stft.n_mels(), 0.0);
        // Nothing is reflected at the end: past the audio everything is zero.
        stft.log_mel_frames_at(
            &self.samples,
            self.origin,
            isize::MAX as usize,
            self.next_frame,
            &mut out[start..],
        );
        self.next_frame = upto;
        self.forget(stft);
    }

    fn forget(&mut self, stft: &MelStft) {
        let keep_from = (self.next_frame * stft.hop()).saturating_sub(stft.half_window());
        let drop = keep_from
            .saturating_sub(self.origin)
            .min(self.samples.len());
        self.samples.drain(..drop);
        self.origin += drop;
    }
}

/// The first pass over long audio: counts the samples and finds the largest
/// log-mel value, which [`LogMelFeaturizer::compute_long`]'s normalisation
/// (clamp to 8 below the maximum) needs before any window can be finished.
pub struct LoudnessScan<'f> {
    stft: &'f MelStft,
    feed: FrameFeed,
    frames: Vec<f32>,
    max: f32,
}

/// What [`LoudnessScan`] found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loudness {
    /// Samples in the audio.
    pub samples: usize,
    /// The largest `log10` mel power over every frame of the audio padded with
    /// 30 s of silence.
    pub max_log10: f32,
}

impl LoudnessScan<'_> {
    /// Feed the next samples.
    pub fn push(&mut self, chunk: &[f32]) -> Result<(), LogMelError> {
        self.feed.push(chunk)?;
        if self.feed.samples.len() >= SCAN_BATCH_SAMPLES {
            let ready = self.feed.ready_until(self.stft);
            self.take_max(ready);
        }
        Ok(())
    }

    fn take_max(&mut self, upto: usize) {
        self.frames.clear();
        self.feed.compute(upto, self.stft, &mut self.frames);
        self.max = self.frames.iter().copied().fold(self.max, f32::max);
    }

    /// The audio has ended: the sample count and the maximum.
    pub fn finish(mut self) -> Loudness {
        self.feed.ended = true;
        // Frames from here on lie wholly in the zero padding (they hold the floor,
        // which `max` starts from).
        let touched = (self.feed.received + self.stft.half_window()) / self.stft.hop() + 1;
        self.take_max(touched);
        Loudness {
            samples: self.feed.received,
            max_log10: self.max,
        }
    }
}

/// 30 s log-mel windows of long audio at any frame offset, equal to slices of
/// [`LogMelFeaturizer::compute_long`] of the whole audio, computed from samples
/// pushed as they are decoded. It holds at most about one window of samples and
/// of frames.
pub struct MelWindows<'f> {
    stft: &'f MelStft,
    feed: FrameFeed,
    /// The clamp: 8 below the scan's maximum.
    floor: f32,
    /// Frames `frame_base ..` (frame-major), not yet behind every later window.
    frames: Vec<f32>,
    frame_base: usize,
    /// Frames that hold audio (`samples / hop`): windows start before this.
    content_frames: usize,
}

impl MelWindows<'_> {
    /// Frames holding audio: a window is decoded from each `seek` below this.
    pub fn content_frames(&self) -> usize {
        self.content_frames
    }

    /// Feed the next samples.
    pub fn push(&mut self, chunk: &[f32]) -> Result<(), LogMelError> {
        self.feed.push(chunk)
    }

    /// The audio has ended (what follows is silence).
    pub fn end(&mut self) {
        self.feed.ended = true;
    }

    /// Whether the samples pushed so far suffice for the window at frame `seek`.
    pub fn ready(&self, seek: usize) -> bool {
        self.feed.ready_until(self.stft) >= seek + CHUNK_FRAMES
    }

    /// The `(n_mels, 3000)` window starting at frame `seek` into `out`, row-major.
    /// Windows must come in non-decreasing `seek` order, each [`ready`](Self::ready).
    pub fn window(&mut self, seek: usize, out: &mut [f32]) -> Result<(), LogMelError> {
        let n_mels = self.stft.n_mels();
        if out.len() != n_mels * CHUNK_FRAMES || seek < self.frame_base || !self.ready(seek) {
            return Err(LogMelError::Window {
                seek,
                reason: format!(
                    "needs {} outputs, seek >= {} and samples up to frame {}; got {} outputs, {} samples",
                    n_mels * CHUNK_FRAMES,
                    self.frame_base,
                    seek + CHUNK_FRAMES,
                    out.len(),
                    self.feed.received
                ),
            });
        }
        let behind = (seek - self.frame_base).min(self.frames.len() / n_mels);
        self.frames.drain(..behind * n_mels);
        self.frame_base = seek;
        self.feed.skip_to(seek, self.stft);
        self.feed
            .compute(seek + CHUNK_FRAMES, self.stft, &mut self.frames);
        for (t, frame) in self
            .frames
            .chunks_exact(n_mels)
            .take(CHUNK_FRAMES)
            .enumerate()
        {
            for (m, &l) in frame.iter().enumerate() {
                out[m * CHUNK_FRAMES + t] = (l.max(self.floor) + 4.0) / 4.0;
            }
        }
        Ok(())
    }
}

impl LogMelFeaturizer {
    /// The first pass of windowed featurisation: push every sample, then
    /// [`LoudnessScan::finish`].
    pub fn loudness_scan(&self) -> LoudnessScan<'_> {
        LoudnessScan {
            stft: &self.stft,
            feed: FrameFeed::new(),
            frames: Vec::new(),
            max: log_floor(),
        }
    }

    /// The second pass: windows of the audio `loudness` describes, whose samples
    /// are pushed again from the start.
    pub fn long_windows(&self, loudness: &Loudness) -> MelWindows<'_> {
        MelWindows {
            stft: &self.stft,
            feed: FrameFeed::new(),
            floor: loudness.max_log10 - 8.0,
            frames: Vec::new(),
            frame_base: 0,
            content_frames: loudness.samples / self.stft.hop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::CHUNK_SAMPLES;
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..len)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Loud and quiet stretches, so the clamp matters.
                let gain = if (i / 40_000) % 3 == 0 { 1e-5 } else { 0.3 };
                gain * ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            })
            .collect()
    }

    #[test]
    fn windows_equal_slices_of_compute_long_bitwise() {
        let fe = LogMelFeaturizer::new(80).unwrap();
        for (len, piece, seeks) in [
            (CHUNK_SAMPLES + 1, 999, vec![0, 1]),
            (1_234_567, 4096, vec![0, 2999, 3000, 5998, 7716]),
            (700_000, 700_000, vec![0, 1234, 4375]),
        ] {
            let x = noise(len, len as u64);
            let whole = fe.compute_long(&x).unwrap();
            let mut scan = fe.loudness_scan();
            for part in x.chunks(piece) {
                scan.push(part).unwrap();
            }
            let loudness = scan.finish();
            assert_eq!(loudness.samples, len);
            let mut windows = fe.long_windows(&loudness);
            assert_eq!(windows.content_frames(), whole.n_frames - CHUNK_FRAMES);
            let mut parts = x.chunks(piece);
            let mut out = vec![0f32; 80 * CHUNK_FRAMES];
            for &seek in &seeks {
                while !windows.ready(seek) {
                    match parts.next() {
                        Some(p) => windows.push(p).unwrap(),
                        None => windows.end(),
                    }
                }
                windows.window(seek, &mut out).unwrap();
                for m in 0..80 {
                    let row = &whole.data[m * whole.n_frames..(m + 1) * whole.n_frames];
                    assert!(
                        out[m * CHUNK_FRAMES..(m + 1) * CHUNK_FRAMES]
                            == row[seek..seek + CHUNK_FRAMES],
                        "len {len}, seek {seek}, mel {m}"
                    );
                }
            }
            assert!(windows.window(0, &mut out).is_err() || seeks == [0]);
        }
    }
}
