//! Audio inputs that can be streamed more than once: a file is reopened; standard
//! input or a pipe is read once and its 16 kHz samples are spooled to an unlinked
//! temporary file (disk, not memory) for the later passes; samples in memory are
//! served in chunks.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::stream::{AudioStream, SampleChunks, SliceChunks};
use super::AudioError;

/// Samples per chunk read back from a spool.
const SPOOL_CHUNK: usize = 1 << 15;

/// Where audio comes from: a file, standard input (`-`), a pipe, or 16 kHz mono
/// samples in memory.
///
/// [`stream`](Self::stream) starts from the beginning every time, so a consumer
/// can make several passes (Whisper scans the audio once for its loudness, then
/// featurises it window by window). A regular file is simply reopened; standard
/// input and pipes cannot be rewound, so their first pass writes the decoded
/// 16 kHz samples to a temporary file (64 KB per second of audio) that later
/// passes read.
pub struct AudioSource<'a> {
    name: String,
    state: State<'a>,
}

enum State<'a> {
    /// 16 kHz mono samples in memory.
    Samples(&'a [f32]),
    /// A path not opened yet (a regular file, or a pipe read on the first pass).
    Path(PathBuf),
    /// Standard input, not read yet.
    Stdin,
    /// A stream being read for the first time (or whose first pass stopped early).
    Reading,
    /// A read-once stream, fully decoded into this spool file.
    Spooled(File),
}

impl<'a> AudioSource<'a> {
    /// The input named by a command-line argument: `-` is standard input, anything
    /// else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg.as_os_str() == "-" {
            Self::stdin()
        } else {
            Self::path(arg)
        }
    }

    /// A file (regular, or a named pipe / `/dev/fd/N`, read once).
    pub fn path(path: &Path) -> Self {
        AudioSource {
            name: path.display().to_string(),
            state: State::Path(path.to_path_buf()),
        }
    }

    /// Standard input (named `-` in errors).
    pub fn stdin() -> Self {
        AudioSource {
            name: "-".into(),
            state: State::Stdin,
        }
    }

    /// 16 kHz mono samples already in memory; `name` labels them in errors.
    pub fn from_samples(samples: &'a [f32], name: &str) -> Self {
        AudioSource {
            name: name.to_string(),
            state: State::Samples(samples),
        }
    }

    /// The input's label in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A stream of 16 kHz mono chunks from the start of the input.
    pub fn stream(&mut self) -> Result<Box<dyn SampleChunks + '_>, AudioError> {
        let io_err = |name: &str| {
            let file = name.to_string();
            move |source| AudioError::Io { file, source }
        };
        match &mut self.state {
            State::Samples(samples) => {
                Ok(Box::new(SliceChunks::new(samples, SPOOL_CHUNK, &self.name)))
            }
            State::Path(path) => {
                let file = File::open(&*path).map_err(io_err(&self.name))?;
                let regular = file.metadata().map_err(io_err(&self.name))?.is_file();
                if regular {
                    return Ok(Box::new(AudioStream::open_path(path)?));
                }
                let stream = AudioStream::from_reader(Box::new(file), &self.name)?;
                self.spool_first_pass(stream)
            }
            State::Stdin => {
                let stream = AudioStream::from_reader(Box::new(std::io::stdin()), &self.name)?;
                self.spool_first_pass(stream)
            }
            State::Reading => Err(AudioError::Io {
                file: self.name.clone(),
                source: std::io::Error::other(
                    "a stream can be read only once and its first read did not finish",
                ),
            }),
            State::Spooled(file) => {
                file.seek(SeekFrom::Start(0)).map_err(io_err(&self.name))?;
                let file = file.try_clone().map_err(io_err(&self.name))?;
                Ok(Box::new(SpoolReader {
                    reader: BufReader::new(file),
                    bytes: vec![0; SPOOL_CHUNK * 4],
                    samples: Vec::with_capacity(SPOOL_CHUNK),
                    name: self.name.clone(),
                }))
            }
        }
    }

    fn spool_first_pass(
        &mut self,
        stream: AudioStream,
    ) -> Result<Box<dyn SampleChunks + '_>, AudioError> {
        let spool = tempfile::tempfile().map_err(|source| AudioError::Io {
            file: self.name.clone(),
            source,
        })?;
        self.state = State::Reading;
        Ok(Box::new(SpoolWriter {
            stream,
            spool: Some(BufWriter::new(spool)),
            state: &mut self.state,
        }))
    }
}

/// The first pass over a read-once stream: chunks go to the caller and to the spool.
struct SpoolWriter<'s, 'a> {
    stream: AudioStream,
    spool: Option<BufWriter<File>>,
    state: &'s mut State<'a>,
}

impl SampleChunks for SpoolWriter<'_, '_> {
    fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        let name = self.stream.name().to_string();
        let io_err = |source| AudioError::Io {
            file: format!("{name} (spooling to a temporary file)"),
            source,
        };
        match self.stream.next_chunk()? {
            Some(chunk) => {
                if let Some(spool) = &mut self.spool {
                    let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
                    spool.write_all(&bytes).map_err(io_err)?;
                }
                Ok(Some(chunk))
            }
            None => {
                if let Some(spool) = self.spool.take() {
                    let file = spool.into_inner().map_err(|e| io_err(e.into_error()))?;
                    *self.state = State::Spooled(file);
                }
                Ok(None)
            }
        }
    }

    fn name(&self) -> &str {
        self.stream.name()
    }
}

/// A later pass over a spooled stream.
struct SpoolReader {
    reader: BufReader<File>,
    bytes: Vec<u8>,
    samples: Vec<f32>,
    name: String,
}

impl SampleChunks for SpoolReader {
    fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        let mut filled = 0;
        while filled < self.bytes.len() {
            let n = self
                .reader
                .read(&mut self.bytes[filled..])
                .map_err(|source| AudioError::Io {
                    file: self.name.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        self.samples.clear();
        self.samples.extend(
            self.bytes[..filled - filled % 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok((!self.samples.is_empty()).then_some(&self.samples[..]))
    }

    fn name(&self) -> &str {
        &self.name
    }
}
