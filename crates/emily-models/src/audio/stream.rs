//! Streaming audio: decode → mono mix → resample to 16 kHz, a packet at a time.

use std::io::Read;
use std::path::Path;

use symphonia::core::formats::probe::Hint;

use super::decode::PacketReader;
use super::resample::StreamResampler;
use super::{mix_into, AudioError, WHISPER_SAMPLE_RATE};

/// 16 kHz mono f32 samples delivered a chunk at a time.
pub trait SampleChunks {
    /// The next chunk (never empty), or `None` after the last one.
    fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError>;

    /// The input's label in errors (a path, `-` for standard input, ...).
    fn name(&self) -> &str;
}

/// An audio file or stream decoded, mixed to mono and resampled to 16 kHz a packet
/// at a time: memory stays bounded (a packet, a resampler chunk) whatever the
/// duration. The concatenated chunks equal [`load_audio`](super::load_audio) of
/// the same file, bit for bit.
///
/// ```no_run
/// use emily_models::audio::{AudioStream, SampleChunks};
/// let mut stream = AudioStream::open_path("talk.flac".as_ref())?;
/// let mut n = 0;
/// while let Some(chunk) = stream.next_chunk()? {
///     n += chunk.len();
/// }
/// println!("{} s", n as f64 / 16000.0);
/// # Ok::<(), emily_models::audio::AudioError>(())
/// ```
pub struct AudioStream {
    reader: PacketReader,
    resampler: Option<StreamResampler>,
    mono: Vec<f32>,
    out: Vec<f32>,
    /// Source frames decoded so far (for error positions).
    frames: u64,
    done: bool,
}

impl AudioStream {
    /// Stream the file at `path` (a regular file, or a pipe or device read once).
    pub fn open_path(path: &Path) -> Result<Self, AudioError> {
        Ok(Self::new(PacketReader::open_path(path)?))
    }

    /// Stream an in-memory file; `name` labels it in errors.
    pub fn open_bytes(bytes: Vec<u8>, name: &str) -> Result<Self, AudioError> {
        Ok(Self::new(PacketReader::open_bytes(bytes, name)?))
    }

    /// Stream audio read once from `reader` (standard input, a pipe, a socket);
    /// `name` labels it in errors. A length declared in the header is not
    /// enforced: writers that cannot seek leave a placeholder there (WAV from
    /// `ffmpeg ... -f wav -` declares 0xFFFFFFFF bytes).
    pub fn from_reader(
        reader: Box<dyn Read + Send + Sync>,
        name: &str,
    ) -> Result<Self, AudioError> {
        Ok(Self::new(PacketReader::open_reader(
            reader,
            &Hint::new(),
            name,
        )?))
    }

    fn new(reader: PacketReader) -> Self {
        AudioStream {
            reader,
            resampler: None,
            mono: Vec::new(),
            out: Vec::new(),
            frames: 0,
            done: false,
        }
    }

    /// `(sample rate, channels)` of the source, once the first chunk is read.
    pub fn source_spec(&self) -> Option<(u32, usize)> {
        self.reader.spec()
    }
}

impl SampleChunks for AudioStream {
    fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        self.out.clear();
        while self.out.is_empty() {
            if self.done {
                return Ok(None);
            }
            let Some(packet) = self.reader.next_packet()? else {
                self.done = true;
                if let Some(resampler) = &mut self.resampler {
                    resampler.finish(&mut self.out)?;
                }
                continue;
            };
            let (samples, channels) = (packet.samples, packet.channels);
            if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
                return Err(AudioError::InvalidSamples {
                    file: packet.name.to_string(),
                    reason: format!(
                        "frame {} holds {}",
                        self.frames + (i / channels) as u64,
                        samples[i]
                    ),
                });
            }
            self.frames += (samples.len() / channels) as u64;
            self.mono.clear();
            mix_into(samples, channels, &mut self.mono);
            let resampler = match &mut self.resampler {
                Some(r) => r,
                None => self.resampler.insert(StreamResampler::new(
                    packet.rate,
                    WHISPER_SAMPLE_RATE,
                    packet.name,
                )?),
            };
            resampler.push(&self.mono, &mut self.out)?;
        }
        Ok(Some(&self.out))
    }

    fn name(&self) -> &str {
        self.reader.name()
    }
}

/// 16 kHz mono samples already in memory, served as [`SampleChunks`].
pub struct SliceChunks<'a> {
    samples: &'a [f32],
    chunk: usize,
    name: String,
}

impl<'a> SliceChunks<'a> {
    /// Serve `samples` in chunks of `chunk` samples (at least 1); `name` labels errors.
    pub fn new(samples: &'a [f32], chunk: usize, name: &str) -> Self {
        SliceChunks {
            samples,
            chunk: chunk.max(1),
            name: name.to_string(),
        }
    }
}

impl SampleChunks for SliceChunks<'_> {
    fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        if self.samples.is_empty() {
            return Ok(None);
        }
        let (head, rest) = self.samples.split_at(self.chunk.min(self.samples.len()));
        self.samples = rest;
        Ok(Some(head))
    }

    fn name(&self) -> &str {
        &self.name
    }
}
