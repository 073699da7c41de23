//! Decoding audio files with `symphonia` (WAV, FLAC, MP3, OGG/Vorbis).

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::AudioError;

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
    let name = path.display().to_string();
    let io_err = |source| AudioError::Io {
        file: name.clone(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    if file.metadata().map_err(io_err)?.len() == 0 {
        return Err(AudioError::Empty { file: name });
    }
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    decode_source(Box::new(file), &hint, &name)
}

/// Decode an in-memory audio file; `name` labels it in errors.
pub fn decode_bytes(bytes: Vec<u8>, name: &str) -> Result<DecodedAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty {
            file: name.to_string(),
        });
    }
    decode_source(Box::new(std::io::Cursor::new(bytes)), &Hint::new(), name)
}

/// An I/O error that means the data stopped early.
fn is_eof(err: &SymphoniaError) -> bool {
    matches!(err, SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof)
}

fn decode_source(
    source: Box<dyn MediaSource>,
    hint: &Hint,
    name: &str,
) -> Result<DecodedAudio, AudioError> {
    let file = || name.to_string();
    let stream = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
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
    let track = format
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
    let options = AudioDecoderOptions::default().verify(true);
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &options)
        .map_err(|e| AudioError::Unsupported {
            file: file(),
            reason: e.to_string(),
        })?;

    let corrupt = |reason: String| AudioError::Corrupt {
        file: file(),
        reason,
    };
    let truncated = |reason: String| AudioError::Truncated {
        file: file(),
        reason,
    };
    let mut samples: Vec<f32> = Vec::new();
    let mut packet_samples: Vec<f32> = Vec::new();
    let mut spec: Option<(u32, usize)> = None;
    for index in 0usize.. {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymphoniaError::ResetRequired) => break,
            Err(e) if is_eof(&e) => {
                return Err(truncated(format!("the stream ends inside packet {index}")))
            }
            Err(e) => return Err(corrupt(format!("packet {index}: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = decoder.decode(&packet).map_err(|e| {
            if is_eof(&e) {
                truncated(format!("packet {index} is cut short"))
            } else {
                corrupt(format!("packet {index}: {e}"))
            }
        })?;
        let this_spec = (buffer.spec().rate(), buffer.spec().channels().count());
        match spec {
            None => spec = Some(this_spec),
            Some(first) if first != this_spec => {
                return Err(AudioError::Unsupported {
                    file: file(),
                    reason: format!(
                    "the stream changes from {} Hz x {} to {} Hz x {} channels at packet {index}",
                    first.0, first.1, this_spec.0, this_spec.1
                ),
                })
            }
            Some(_) => {}
        }
        buffer.copy_to_vec_interleaved(&mut packet_samples);
        samples.extend_from_slice(&packet_samples);
    }
    if decoder.finalize().verify_ok == Some(false) {
        return Err(corrupt(
            "the decoded audio fails the stream's checksum".into(),
        ));
    }
    let Some((sample_rate, channels)) = spec.filter(|&(rate, ch)| rate > 0 && ch > 0) else {
        return Err(AudioError::Empty { file: file() });
    };
    if samples.is_empty() {
        return Err(AudioError::Empty { file: file() });
    }
    let decoded = DecodedAudio {
        samples,
        sample_rate,
        channels,
    };
    if let Some(declared) = declared_frames {
        if (decoded.frames() as u64) < declared {
            return Err(truncated(format!(
                "{} of the {declared} declared frames are present",
                decoded.frames()
            )));
        }
    }
    Ok(decoded)
}
