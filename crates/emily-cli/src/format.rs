//! Transcript output formats: plain text, SRT, WebVTT, JSON.

use emily_models::whisper::Transcript;

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

fn clock(seconds: f64, sep: char) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Renders a transcript.
pub fn render(t: &Transcript, format: Format, timestamps: bool) -> String {
    match format {
        Format::Txt if timestamps => t
            .segments
            .iter()
            .map(|s| {
                format!(
                    "[{} --> {}]{}\n",
                    clock(s.start, '.'),
                    clock(s.end, '.'),
                    s.text
                )
            })
            .collect(),
        Format::Txt => format!("{}\n", t.text.trim()),
        Format::Srt => t
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    clock(s.start, ','),
                    clock(s.end, ','),
                    s.text.trim()
                )
            })
            .collect(),
        Format::Vtt => {
            let body: String = t
                .segments
                .iter()
                .map(|s| {
                    format!(
                        "{} --> {}\n{}\n\n",
                        clock(s.start, '.'),
                        clock(s.end, '.'),
                        s.text.trim()
                    )
                })
                .collect();
            format!("WEBVTT\n\n{body}")
        }
        Format::Json => {
            let segs: Vec<serde_json::Value> = t
                .segments
                .iter()
                .map(|s| serde_json::json!({"start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens}))
                .collect();
            let v = serde_json::json!({"text": t.text, "language": t.language, "segments": segs});
            format!("{}\n", serde_json::to_string_pretty(&v).expect("json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_round_to_milliseconds() {
        assert_eq!(clock(3661.2345, ','), "01:01:01,235");
        assert_eq!(clock(0.0, '.'), "00:00:00.000");
    }
}
