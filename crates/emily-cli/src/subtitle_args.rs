//! The subtitle layout flags of `emily transcribe` (openai-whisper's
//! `--max_line_width`, `--max_line_count`, `--max_words_per_line`,
//! `--highlight_words`); like there, each needs `--word-timestamps`.

use emily_models::whisper::subtitles::SubtitleLayout;

/// Word-level subtitle layout (SRT and VTT).
#[derive(clap::Args, Clone, Debug)]
pub struct SubtitleArgs {
    /// Subtitles: at most this many characters per line (needs --word-timestamps).
    #[arg(long, requires = "word_timestamps", value_parser = clap::value_parser!(u32).range(1..))]
    max_line_width: Option<u32>,
    /// Subtitles: at most this many lines per cue (needs --max-line-width;
    /// segments then no longer force a new cue, and a pause over 3 s does).
    #[arg(long, requires = "max_line_width", value_parser = clap::value_parser!(u32).range(1..))]
    max_line_count: Option<u32>,
    /// Subtitles: at most this many words of a segment per cue (needs
    /// --word-timestamps; no effect when both line limits are given).
    #[arg(long, requires = "word_timestamps", value_parser = clap::value_parser!(u32).range(1..))]
    max_words_per_line: Option<u32>,
    /// Subtitles: one cue per word, the word underlined (needs --word-timestamps).
    #[arg(long, requires = "word_timestamps")]
    highlight_words: bool,
}

impl SubtitleArgs {
    /// The layout the flags ask for.
    pub fn layout(&self) -> SubtitleLayout {
        SubtitleLayout {
            max_line_width: self.max_line_width.map(|n| n as usize),
            max_line_count: self.max_line_count.map(|n| n as usize),
            max_words_per_line: self.max_words_per_line.map(|n| n as usize),
            highlight_words: self.highlight_words,
        }
    }
}
