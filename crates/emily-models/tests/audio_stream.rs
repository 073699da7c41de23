//! Streaming audio: hostile sample rates, chunked decoding equal to whole-file
//! decoding, WAV streamed with unknown lengths, and read-once inputs (pipes)
//! streamed twice through a spool.

mod common;

use std::path::{Path, PathBuf};

use common::{jfk_samples_reference, jfk_wav, scratch};
use emily_models::audio::{
    decode_file, load_audio, prepare_samples, AudioError, AudioSource, AudioStream, SampleChunks,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn collect(chunks: &mut dyn SampleChunks) -> Result<Vec<f32>, AudioError> {
    let mut all = Vec::new();
    while let Some(chunk) = chunks.next_chunk()? {
        assert!(!chunk.is_empty(), "chunks are never empty");
        all.extend_from_slice(chunk);
    }
    Ok(all)
}

/// JFK's WAV bytes with the header's sample rate (and byte rate) replaced.
fn jfk_claiming_rate(rate: u32) -> Vec<u8> {
    let mut wav = std::fs::read(jfk_wav()).unwrap();
    wav[24..28].copy_from_slice(&rate.to_le_bytes());
    wav[28..32].copy_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    wav
}

#[test]
fn hostile_sample_rates_are_refused_before_resampling() {
    let dir = scratch("hostile-rates");
    // A 352 KB file claiming 1 Hz would resample to 176000 * 16000 samples (11 GB).
    for rate in [1, 999, 384_001, u32::MAX] {
        let path = dir.join(format!("rate-{rate}.wav"));
        std::fs::write(&path, jfk_claiming_rate(rate)).unwrap();
        let name = path.display().to_string();
        for (what, result) in [
            ("load_audio", load_audio(&path).map(|_| ())),
            ("decode_file", decode_file(&path).map(|_| ())),
            ("stream", AudioStream::open_path(&path).map(|_| ())),
        ] {
            let err = result.expect_err(what);
            assert!(
                matches!(err, AudioError::SampleRate { .. }),
                "{what} {rate}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&name) && msg.contains(&format!("{rate} Hz")),
                "{what}: {msg}"
            );
        }
    }
    // The edges of the range are accepted.
    for rate in [1000, 384_000] {
        let path = dir.join(format!("ok-{rate}.wav"));
        std::fs::write(&path, jfk_claiming_rate(rate)).unwrap();
        let n = load_audio(&path).unwrap().len();
        assert_eq!(n, (176_000u64 * 16_000).div_ceil(rate as u64) as usize);
    }
}

#[test]
fn streamed_chunks_equal_whole_file_conversion() {
    let files = [
        jfk_wav(),
        fixture("tone_440hz_44k1_stereo.flac"),
        fixture("tone_1khz_22k05_mono.ogg"),
        fixture("tone_440hz_44k1_stereo.mp3"),
    ];
    for path in files {
        let decoded = decode_file(&path).unwrap();
        let whole = prepare_samples(
            &decoded.samples,
            decoded.sample_rate,
            decoded.channels,
            "whole",
        )
        .unwrap();
        let mut stream = AudioStream::open_path(&path).unwrap();
        let streamed = collect(&mut stream).unwrap();
        assert!(streamed == whole, "{}", path.display());
        assert_eq!(
            stream.source_spec(),
            Some((decoded.sample_rate, decoded.channels))
        );
    }
}

/// JFK as a writer that cannot seek emits it: RIFF and data lengths 0xFFFFFFFF.
fn jfk_streamed_wav() -> Vec<u8> {
    let mut wav = std::fs::read(jfk_wav()).unwrap();
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let data = wav.windows(4).position(|w| w == b"data").unwrap();
    wav[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav
}

#[test]
fn wav_from_a_pipe_with_unknown_length_decodes() {
    let reader = Box::new(std::io::Cursor::new(jfk_streamed_wav()));
    let mut stream = AudioStream::from_reader(reader, "-").unwrap();
    assert!(collect(&mut stream).unwrap() == jfk_samples_reference());

    // A header declaring more data than follows: a placeholder on a pipe, but
    // an error in a file.
    let mut wav = std::fs::read(jfk_wav()).unwrap();
    let data = wav.windows(4).position(|w| w == b"data").unwrap();
    let placeholder = 0x7fff_f000u32;
    wav[data + 4..data + 8].copy_from_slice(&placeholder.to_le_bytes());
    wav[4..8].copy_from_slice(&(placeholder + data as u32).to_le_bytes());
    let reader = Box::new(std::io::Cursor::new(wav.clone()));
    let mut stream = AudioStream::from_reader(reader, "-").unwrap();
    assert_eq!(collect(&mut stream).unwrap().len(), 176_000);
    let path = scratch("placeholder-length").join("long-header.wav");
    std::fs::write(&path, &wav).unwrap();
    let err = load_audio(&path).expect_err("a file shorter than its header");
    assert!(err.to_string().contains("long-header.wav"), "{err}");
}

/// A named pipe at `path` fed `bytes` by a thread, once.
fn fifo(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // The reader may stop early (then the write fails with a broken pipe).
        let _ = std::fs::write(path, bytes);
    })
}

#[test]
fn a_pipe_is_read_once_and_replayed_from_the_spool() {
    let path = scratch("fifo").join("audio.wav");
    let writer = fifo(
        &path,
        std::fs::read(fixture("tone_440hz_44k1_stereo.flac")).unwrap(),
    );
    let want = load_audio(&fixture("tone_440hz_44k1_stereo.flac")).unwrap();
    let mut source = AudioSource::path(&path);
    let first = collect(&mut *source.stream().unwrap()).unwrap();
    writer.join().unwrap();
    assert!(first == want);
    // The pipe is drained; the second and third passes come from the spool.
    for _ in 0..2 {
        assert!(collect(&mut *source.stream().unwrap()).unwrap() == want);
    }
    // A first pass that stops early cannot be replayed.
    let path = scratch("fifo-early").join("audio.wav");
    let writer = fifo(&path, std::fs::read(jfk_wav()).unwrap());
    let mut source = AudioSource::path(&path);
    source.stream().unwrap().next_chunk().unwrap();
    let err = source
        .stream()
        .err()
        .expect("stream replayed after a partial read");
    assert!(err.to_string().contains("audio.wav"), "{err}");
    drop(source);
    writer.join().unwrap();
}

#[test]
fn samples_in_memory_are_a_source_too() {
    let x: Vec<f32> = (0..100_000).map(|i| (i as f32 * 0.01).sin()).collect();
    let mut source = AudioSource::from_samples(&x, "buffer");
    assert_eq!(source.name(), "buffer");
    assert!(collect(&mut *source.stream().unwrap()).unwrap() == x);
    assert!(collect(&mut *source.stream().unwrap()).unwrap() == x);
}
