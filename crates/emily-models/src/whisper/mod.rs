//! Whisper checkpoints as the model builder sees them: dimensions, HF-named
//! weights, decoding settings and the tokenizer path, whatever the file format.

mod checkpoint;
mod compute;
mod consistency;
mod dims;
mod features;

pub use checkpoint::{
    load_whisper, CheckpointFormat, GenerationSettings, LoadError, WhisperCheckpoint,
};
pub use compute::ComputeType;
pub use dims::WhisperDims;

pub mod decoding;
pub mod fallback;
pub mod graph;
mod language;
mod options;
pub mod render;
mod search;
mod session;
pub mod subtitles;
mod transcriber;
pub mod words;

pub use session::{CancelFlag, Session, WindowDecoder};

pub use language::LanguageProbability;
pub use options::TranscribeOptions;
pub use transcriber::{Segment, Timings, Transcript, Whisper, WhisperError};
pub use words::Word;
