//! Audio decoding, mixing and resampling: the JFK clip, WAVs synthesised here, small
//! FLAC/OGG/MP3 fixtures (tests/data, see its README), and broken inputs.

mod common;

use std::f32::consts::PI;
use std::path::{Path, PathBuf};

use common::{jfk_samples_reference, jfk_wav, scratch};
use emily_models::audio::{decode_bytes, decode_file, load_audio, prepare_samples, AudioError};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Magnitude of the DFT of `x` at `freq` Hz (Goertzel), normalised so a sine of
/// amplitude `a` gives about `a`.
fn tone_amplitude(x: &[f32], rate: f32, freq: f32) -> f32 {
    let w = 2.0 * PI * freq / rate;
    let (mut re, mut im) = (0f64, 0f64);
    for (n, &s) in x.iter().enumerate() {
        re += (s * (w * n as f32).cos()) as f64;
        im -= (s * (w * n as f32).sin()) as f64;
    }
    (2.0 * (re * re + im * im).sqrt() / x.len() as f64) as f32
}

/// The middle half of a signal (away from resampler edge effects).
fn middle(x: &[f32]) -> &[f32] {
    &x[x.len() / 4..3 * x.len() / 4]
}

#[test]
fn jfk_decodes_to_the_golden_samples_bitwise() {
    let decoded = decode_file(&jfk_wav()).unwrap();
    assert_eq!(
        (decoded.sample_rate, decoded.channels, decoded.frames()),
        (16000, 1, 176_000)
    );
    let reference = jfk_samples_reference();
    assert!(decoded.samples == reference, "i16 / 32768 convention");
    assert!(
        load_audio(&jfk_wav()).unwrap() == reference,
        "16 kHz mono passes through"
    );
}

fn write_wav(path: &Path, spec: hound::WavSpec, frames: usize, sample: impl Fn(usize, u16) -> f64) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for t in 0..frames {
        for c in 0..spec.channels {
            let v = sample(t, c);
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                (_, 8) => w.write_sample(v as i8).unwrap(),
                (_, 16) => w.write_sample(v as i16).unwrap(),
                _ => w.write_sample(v as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn wav_bit_depths_map_to_unit_range() {
    let dir = scratch("wav-depths");
    let cases = [
        (
            8,
            hound::SampleFormat::Int,
            vec![0.0, 1.0, -1.0, 127.0, -128.0],
            128.0,
        ),
        (
            16,
            hound::SampleFormat::Int,
            vec![0.0, 1.0, -1.0, 32767.0, -32768.0, 12345.0],
            32768.0,
        ),
        (
            24,
            hound::SampleFormat::Int,
            vec![0.0, 1.0, -8388608.0, 8388607.0, 4242.0],
            8388608.0,
        ),
        (
            32,
            hound::SampleFormat::Int,
            vec![0.0, 65536.0, -2147483648.0, 1e9],
            2147483648.0,
        ),
        (
            32,
            hound::SampleFormat::Float,
            vec![0.0, 0.5, -0.25, 1.0],
            1.0,
        ),
    ];
    for (bits, format, values, scale) in cases {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: bits,
            sample_format: format,
        };
        let path = dir.join(format!("{bits}-{format:?}.wav"));
        write_wav(&path, spec, values.len(), |t, _| values[t]);
        let decoded = decode_file(&path).unwrap();
        assert_eq!(decoded.samples.len(), values.len(), "{bits}-bit");
        for (got, v) in decoded.samples.iter().zip(&values) {
            let want = (v / scale) as f32;
            assert!(
                (got - want).abs() <= 1e-7,
                "{bits}-bit {format:?}: {v} -> {got}, want {want}"
            );
        }
    }
}

#[test]
fn stereo_44k1_is_mixed_and_band_limited_to_16k() {
    let path = scratch("stereo").join("tone.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    // Left: 440 Hz at 0.5; right: 440 Hz at 0.25 plus 12 kHz at 0.25, which a
    // resampler without an anti-aliasing filter would fold to 4 kHz.
    write_wav(&path, spec, 44100, |t, c| {
        let s = |f: f32, a: f32| a * (2.0 * PI * f * t as f32 / 44100.0).sin();
        let v = if c == 0 {
            s(440.0, 0.5)
        } else {
            s(440.0, 0.25) + s(12000.0, 0.25)
        };
        (v * 32767.0).round() as f64
    });
    let decoded = decode_file(&path).unwrap();
    assert_eq!(
        (decoded.sample_rate, decoded.channels, decoded.frames()),
        (44100, 2, 44100)
    );
    let mono = load_audio(&path).unwrap();
    assert_eq!(mono.len(), 16000);
    let mid = middle(&mono);
    let a440 = tone_amplitude(mid, 16000.0, 440.0);
    assert!((a440 - 0.375).abs() < 0.005, "440 Hz amplitude {a440}");
    let alias = tone_amplitude(mid, 16000.0, 4000.0);
    assert!(
        alias < 1e-3,
        "12 kHz aliased to 4 kHz with amplitude {alias}"
    );
    assert!(tone_amplitude(mid, 16000.0, 1000.0) < 1e-3);
}

#[test]
fn raw_samples_resample_to_16k() {
    let rate = 48000;
    let x: Vec<f32> = (0..rate)
        .map(|t| 0.5 * (2.0 * PI * 1000.0 * t as f32 / rate as f32).sin())
        .collect();
    let y = prepare_samples(&x, rate as u32, 1, "raw").unwrap();
    assert_eq!(y.len(), 16000);
    assert!((tone_amplitude(middle(&y), 16000.0, 1000.0) - 0.5).abs() < 0.005);
}

#[test]
fn compressed_fixtures_decode() {
    // (file, rate, channels, tone frequency, amplitude)
    let cases = [
        ("tone_440hz_44k1_stereo.flac", 44100, 2, 440.0, 0.5),
        ("tone_1khz_22k05_mono.ogg", 22050, 1, 1000.0, 0.5),
        ("tone_440hz_44k1_stereo.mp3", 44100, 2, 440.0, 0.5),
    ];
    for (name, rate, channels, freq, amp) in cases {
        let path = fixture(name);
        let decoded = decode_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (decoded.sample_rate, decoded.channels),
            (rate, channels),
            "{name}"
        );
        // MP3 adds the encoder's delay and padding (up to two 1152-sample frames).
        let secs = decoded.duration_seconds();
        assert!((0.5..0.56).contains(&secs), "{name}: {secs} s");
        let mono = load_audio(&path).unwrap();
        let mid = middle(&mono);
        let a = tone_amplitude(mid, 16000.0, freq);
        assert!((a - amp).abs() < 0.03, "{name}: amplitude {a} at {freq} Hz");
        assert!(
            tone_amplitude(mid, 16000.0, freq * 1.5) < 0.02,
            "{name}: energy off the tone"
        );
        // The same bytes decode from memory.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(decode_bytes(bytes, name).unwrap(), decoded, "{name}");
    }
}

fn assert_err_names<T>(result: Result<T, AudioError>, name: &str, what: &str) -> AudioError {
    let Err(err) = result else {
        panic!("{what}: decoded without an error");
    };
    let msg = err.to_string();
    eprintln!("{what}: {msg}");
    assert!(msg.contains(name), "{what}: `{msg}` does not name {name}");
    err
}

#[test]
fn broken_inputs_are_errors_naming_the_file() {
    let dir = scratch("broken-audio");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let missing = dir.join("missing.wav");
    assert_err_names(decode_file(&missing), "missing.wav", "missing file");

    let empty = write("empty.wav", b"");
    let err = assert_err_names(decode_file(&empty), "empty.wav", "empty file");
    assert!(matches!(err, AudioError::Empty { .. }));

    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let g = write("garbage.mp3", &garbage);
    assert_err_names(decode_file(&g), "garbage.mp3", "garbage");
    let text = write("notes.wav", b"just some text, not audio at all\n");
    assert_err_names(decode_file(&text), "notes.wav", "text file");

    // A WAV header announcing data that is not there.
    let jfk = std::fs::read(jfk_wav()).unwrap();
    let cut = write("cut.wav", &jfk[..jfk.len() / 2]);
    let err = assert_err_names(decode_file(&cut), "cut.wav", "truncated wav");
    assert!(matches!(err, AudioError::Truncated { .. }), "{err:?}");
    let header_only = write("header.wav", &jfk[..30]);
    assert_err_names(decode_file(&header_only), "header.wav", "truncated header");

    for name in ["tone_440hz_44k1_stereo.flac", "tone_1khz_22k05_mono.ogg"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut_at in [bytes.len() / 2, bytes.len() - 1] {
            let cut = write(&format!("cut-{name}"), &bytes[..cut_at]);
            let err = assert_err_names(
                decode_file(&cut),
                &format!("cut-{name}"),
                &format!("{name} cut at {cut_at}"),
            );
            assert!(matches!(err, AudioError::Truncated { .. }), "{err:?}");
        }
        let stub = write(&format!("stub-{name}"), &bytes[..100]);
        assert_err_names(
            decode_file(&stub),
            &format!("stub-{name}"),
            &format!("{name} header only"),
        );
    }
    // A bare MPEG stream has no declared length: cut at a frame boundary it decodes
    // to the frames present (documented on `decode_file`), never to garbage.
    let mp3 = std::fs::read(fixture("tone_440hz_44k1_stereo.mp3")).unwrap();
    let full = decode_file(&fixture("tone_440hz_44k1_stereo.mp3"))
        .unwrap()
        .frames();
    let half = decode_file(&write("half.mp3", &mp3[..mp3.len() / 2]))
        .unwrap()
        .frames();
    assert!(
        half > full / 3 && half < 2 * full / 3,
        "{half} of {full} frames"
    );
    assert_err_names(
        decode_file(&write("stub.mp3", &mp3[..100])),
        "stub.mp3",
        "mp3 header only",
    );
    assert_err_names(
        decode_bytes(Vec::new(), "upload #3"),
        "upload #3",
        "empty bytes",
    );

    // Damaged bytes inside a FLAC stream fail its frame checks.
    let mut flac = std::fs::read(fixture("tone_440hz_44k1_stereo.flac")).unwrap();
    let mid = flac.len() / 2;
    flac[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0x5a);
    let damaged = write("damaged.flac", &flac);
    assert_err_names(decode_file(&damaged), "damaged.flac", "damaged flac");

    // A well-formed WAV with no samples.
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let silent = dir.join("no-samples.wav");
    write_wav(&silent, spec, 0, |_, _| 0.0);
    let err = assert_err_names(
        decode_file(&silent),
        "no-samples.wav",
        "wav without samples",
    );
    assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");
}
