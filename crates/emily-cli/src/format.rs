//! The `--format` flag: the transcript formats of `emily_models::whisper::render`.

use emily_models::whisper::render::TranscriptFormat;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text (one line per segment with --timestamps).
    Txt,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// JSON with segments and times.
    Json,
}

impl From<Format> for TranscriptFormat {
    fn from(f: Format) -> TranscriptFormat {
        match f {
            Format::Txt => TranscriptFormat::Text,
            Format::Srt => TranscriptFormat::Srt,
            Format::Vtt => TranscriptFormat::Vtt,
            Format::Json => TranscriptFormat::Json,
        }
    }
}
