//! Decoding audio with `symphonia` (WAV, FLAC, MP3, OGG/Vorbis), packet by packet.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use super::{check_sample_rate, AudioError};

/// Decoded audio at its original rate and channel count.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedAudio {
    /// Interleaved samples in `[-1, 1]`: frame `t`, channel `c` is `samples[t * channels + c]`.
    pub samples: Vec<f32>,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: usize,
}

impl DecodedAudio {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1)
    }

    /// Duration in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.frames() as f64 / self.sample_rate as f64
    }
}

/// Decode the audio file at `path`; its extension, if any, helps pick the format.
///
/// A file cut short is an error when its container declares its length (WAV, FLAC,
/// OGG, MP3 with a Xing/VBRI header) or when it ends inside a packet. A bare MPEG
/// audio stream has no defined end, so an MP3 without such a header that is cut at
/// a frame boundary decodes to the audio that is present.
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    collect(PacketReader::open_path(path)?)
}

/// Decode an in-memory audio file; `name` labels it in errors.
pub fn decode_bytes(bytes: Vec<u8>, name: &str) -> Result<DecodedAudio, AudioError> {
    collect(PacketReader::open_bytes(bytes, name)?)
}

/// Every packet of `reader`, interleaved into one buffer.
fn collect(mut reader: PacketReader) -> Result<DecodedAudio, AudioError> {
    let mut samples = Vec::new();
    while let Some(packet) = reader.next_packet()? {
        samples.extend_from_slice(packet.samples);
    }
    let (sample_rate, channels) = reader.spec().expect("a stream that ended has a spec");
    Ok(DecodedAudio {
        samples,
        sample_rate,
        channels,
    })
}

/// An I/O error that means the data stopped early.
fn is_eof(err: &SymphoniaError) -> bool {
    matches!(err, SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof)
}

/// One decoded packet.
pub(crate) struct Packet<'r> {
    /// Interleaved samples.
    pub(crate) samples: &'r [f32],
    /// Sample rate (Hz).
    pub(crate) rate: u32,
    /// Channels.
    pub(crate) channels: usize,
    /// The input's label in errors.
    pub(crate) name: &'r str,
}

/// One audio track decoded packet by packet into interleaved f32.
///
/// Every packet has the same rate (checked to be in [`super::MIN_SAMPLE_RATE`] ..=
/// [`super::MAX_SAMPLE_RATE`]) and channel count. After the last packet the
/// stream's checksum (FLAC's MD5) and its declared length are verified; for a
/// stream read from a pipe a declared length is only a hint (writers that cannot
/// seek back leave a placeholder) and is not enforced.
pub(crate) struct PacketReader {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    declared_frames: Option<u64>,
    enforce_declared_length: bool,
    spec: Option<(u32, usize)>,
    frames: u64,
    index: usize,
    finished: bool,
    packet: Vec<f32>,
    name: String,
}

impl PacketReader {
    /// Open the file at `path`: a regular file, or a pipe or device read once.
    pub(crate) fn open_path(path: &Path) -> Result<Self, AudioError> {
        let name = path.display().to_string();
        let io_err = |source| AudioError::Io {
            file: name.clone(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        if meta.is_file() {
            if meta.len() == 0 {
                return Err(AudioError::Empty { file: name });
            }
            Self::open(Box::new(file), &hint, &name, true)
        } else {
            Self::open_reader(Box::new(file), &hint, &name)
        }
    }

    /// Open an in-memory file; `name` labels it in errors.
    pub(crate) fn open_bytes(bytes: Vec<u8>, name: &str) -> Result<Self, AudioError> {
        if bytes.is_empty() {
            return Err(AudioError::Empty {
                file: name.to_string(),
            });
        }
        let cursor = Box::new(std::io::Cursor::new(bytes));
        Self::open(cursor, &Hint::new(), name, true)
    }

    /// Open a stream read once from its start (standard input, a pipe).
    pub(crate) fn open_reader(
        reader: Box<dyn Read + Send + Sync>,
        hint: &Hint,
        name: &str,
    ) -> Result<Self, AudioError> {
        Self::open(Box::new(ReadOnlySource::new(reader)), hint, name, false)
    }

    fn open(
        source: Box<dyn MediaSource>,
        hint: &Hint,
        name: &str,
        enforce_declared_length: bool,
    ) -> Result<Self, AudioError> {
        let file = || name.to_string();
        let stream = MediaSourceStream::new(source, Default::default());
        let format = symphonia::default::get_probe()
            .probe(
                hint,
                stream,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| {
                if is_eof(&e) {
                    AudioError::Truncated {
                        file: file(),
                        reason: "the file ends inside its headers or before its last page".into(),
                    }
                } else {
                    AudioError::NotAudio {
                        file: file(),
                        reason: e.to_string(),
                    }
                }
            })?;
        let track =
            format
                .default_track(TrackType::Audio)
                .ok_or_else(|| AudioError::Unsupported {
                    file: file(),
                    reason: "no audio track".into(),
                })?;
        let (track_id, declared_frames) = (track.id, track.num_frames);
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| AudioError::Unsupported {
                file: file(),
                reason: "the audio track has no codec parameters".into(),
            })?;
        if let Some(rate) = params.sample_rate {
            check_sample_rate(rate, name)?;
        }
        let options = AudioDecoderOptions::default().verify(true);
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &options)
            .map_err(|e| AudioError::Unsupported {
                file: file(),
                reason: e.to_string(),
            })?;
        Ok(PacketReader {
            format,
            decoder,
            track_id,
            declared_frames,
            enforce_declared_length,
            spec: None,
            frames: 0,
            index: 0,
            finished: false,
            packet: Vec::new(),
            name: name.to_string(),
        })
    }

    /// The input's label in errors.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `(sample rate, channels)` once the first packet is decoded.
    pub(crate) fn spec(&self) -> Option<(u32, usize)> {
        self.spec
    }

    /// The next packet's interleaved samples, or `None` after the last one (when
    /// the whole stream has been checked).
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet<'_>>, AudioError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let index = self.index;
            let packet = match self.format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) | Err(SymphoniaError::ResetRequired) => {
                    self.finish()?;
                    return Ok(None);
                }
                // A pipe ends where its writer stopped, whatever length the header
                // promised (nothing is lost: packet reads return what is there).
                Err(e) if is_eof(&e) && !self.enforce_declared_length => {
                    self.finish()?;
                    return Ok(None);
                }
                Err(e) if is_eof(&e) => {
                    return Err(self.truncated(format!("the stream ends inside packet {index}")))
                }
                Err(e) => return Err(self.corrupt(format!("packet {index}: {e}"))),
            };
            self.index += 1;
            if packet.track_id != self.track_id {
                continue;
            }
            let buffer = match self.decoder.decode(&packet) {
                Ok(buffer) => buffer,
                Err(e) if is_eof(&e) => {
                    return Err(self.truncated(format!("packet {index} is cut short")))
                }
                Err(e) => return Err(self.corrupt(format!("packet {index}: {e}"))),
            };
            let this_spec = (buffer.spec().rate(), buffer.spec().channels().count());
            buffer.copy_to_vec_interleaved(&mut self.packet);
            match self.spec {
                None => {
                    check_sample_rate(this_spec.0, &self.name)?;
                    if this_spec.1 == 0 {
                        return Err(AudioError::Unsupported {
                            file: self.name.clone(),
                            reason: "the stream has no channels".into(),
                        });
                    }
                    self.spec = Some(this_spec);
                }
                Some(first) if first != this_spec => {
                    return Err(AudioError::Unsupported {
                        file: self.name.clone(),
                        reason: format!(
                        "the stream changes from {} Hz x {} to {} Hz x {} channels at packet {index}",
                        first.0, first.1, this_spec.0, this_spec.1
                    ),
                    })
                }
                Some(_) => {}
            }
            if self.packet.is_empty() {
                continue;
            }
            self.frames += (self.packet.len() / this_spec.1) as u64;
            return Ok(Some(Packet {
                samples: &self.packet,
                rate: this_spec.0,
                channels: this_spec.1,
                name: &self.name,
            }));
        }
    }

    /// End-of-stream checks: checksum, presence of audio, declared length.
    fn finish(&mut self) -> Result<(), AudioError> {
        self.finished = true;
        if self.decoder.finalize().verify_ok == Some(false) {
            return Err(self.corrupt("the decoded audio fails the stream's checksum".into()));
        }
        if self.spec.is_none() || self.frames == 0 {
            return Err(AudioError::Empty {
                file: self.name.clone(),
            });
        }
        match self.declared_frames {
            Some(declared) if self.enforce_declared_length && self.frames < declared => Err(self
                .truncated(format!(
                    "{} of the {declared} declared frames are present",
                    self.frames
                ))),
            _ => Ok(()),
        }
    }

    fn corrupt(&self, reason: String) -> AudioError {
        AudioError::Corrupt {
            file: self.name.clone(),
            reason,
        }
    }

    fn truncated(&self, reason: String) -> AudioError {
        AudioError::Truncated {
            file: self.name.clone(),
            reason,
        }
    }
}
