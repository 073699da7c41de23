//! Processes and inputs of `emily bench whisper`: running a command as a
//! whole process (wall time and peak RSS from `wait4`), the peers' commands
//! (faster-whisper's Python script, whisper.cpp's CLI), and the 5-minute
//! long-form input built from the repository's sample.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// What one process run cost.
#[derive(Clone, Debug)]
pub struct ProcRun {
    /// Wall time from spawn to exit, ms.
    pub wall_ms: f64,
    /// The process's peak resident set size, MB.
    pub peak_rss_mb: f64,
    /// Its standard output.
    pub stdout: String,
}

/// Runs `cmd` to its end (stderr discarded); fails on a non-zero exit.
pub fn measure(cmd: &mut Command) -> Result<ProcRun> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is valid; `wait4` fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our un-waited child; the pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    if r != pid {
        bail!("waiting for {cmd:?}: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed (wait status {status})");
    }
    Ok(ProcRun {
        wall_ms,
        // Linux reports ru_maxrss in KiB.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        stdout,
    })
}

/// The Python of the peers: `bench/peers/.venv` when present, else `python3`.
pub fn peer_python() -> PathBuf {
    let venv = Path::new("bench/peers/.venv/bin/python");
    if venv.exists() {
        venv.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

/// True when faster-whisper imports in [`peer_python`].
pub fn faster_whisper_available() -> bool {
    Command::new(peer_python())
        .args(["-c", "import faster_whisper"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// faster-whisper's child (`bench/peers/faster_whisper.py`): `runs` warm
/// runs after one warm-up (0 = one cold transcription, as a whole process).
pub fn faster_whisper(
    model: &Path,
    audio: &Path,
    threads: usize,
    compute_type: &str,
    beam: usize,
    runs: usize,
) -> Command {
    let mut c = Command::new(peer_python());
    c.arg("bench/peers/faster_whisper.py")
        .arg("--model")
        .arg(model)
        .arg("--audio")
        .arg(audio)
        .args(["--threads", &threads.to_string()])
        .args(["--compute-type", compute_type])
        .args(["--beam-size", &beam.to_string()])
        .args(["--runs", &runs.to_string()]);
    c
}

/// whisper.cpp's CLI, when built (`bash bench/peers/whisper_cpp.sh build`).
pub fn whisper_cpp_cli() -> Option<PathBuf> {
    let p = Path::new("bench/peers/build/whisper.cpp/out/bin/whisper-cli");
    p.is_file().then(|| p.to_path_buf())
}

/// whisper.cpp's f16 and q8_0 model files for a CTranslate2 directory,
/// converted on first use (`bench/peers/whisper_cpp.sh model`).
pub fn whisper_cpp_models(model: &Path) -> Result<(PathBuf, PathBuf)> {
    let out = Command::new("bash")
        .arg("bench/peers/whisper_cpp.sh")
        .arg("model")
        .arg(model)
        .stderr(Stdio::inherit())
        .output()
        .context("running bench/peers/whisper_cpp.sh model")?;
    if !out.status.success() {
        bail!(
            "bench/peers/whisper_cpp.sh model {} failed",
            model.display()
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let mut lines = text.lines().map(PathBuf::from);
    match (lines.next(), lines.next()) {
        (Some(f16), Some(q8)) => Ok((f16, q8)),
        _ => bail!("bench/peers/whisper_cpp.sh model printed {text:?}"),
    }
}

/// whisper.cpp's CLI on `files` (each transcribed in turn by one process and
/// one loaded model): greedy or beam search, timestamps decoded, no
/// temperature fallback, English.
pub fn whisper_cpp(
    cli: &Path,
    ggml: &Path,
    threads: usize,
    beam: usize,
    files: &[&Path],
) -> Command {
    let mut c = Command::new(cli);
    c.arg("-m")
        .arg(ggml)
        .args(["-t", &threads.to_string()])
        .args([
            "-bs",
            &beam.to_string(),
            "-bo",
            "1",
            "-nf",
            "-np",
            "-l",
            "en",
        ]);
    for f in files {
        c.arg("-f").arg(f);
    }
    c
}

/// The text of whisper.cpp's output lines (`[start --> end]  text`).
pub fn whisper_cpp_text(stdout: &str) -> String {
    stdout
        .lines()
        .map(|l| l.rsplit_once(']').map_or(l, |(_, t)| t).trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds of silence between repetitions of the sample in the long-form
/// input, cycled (speech then pause, as a talk with breaks).
const PAUSES_S: [f64; 5] = [1.0, 2.5, 0.5, 4.0, 1.5];

/// The long-form input: `samples/jfk.wav` repeated with the pauses of
/// [`PAUSES_S`] until it lasts at least `minutes`, as a 16 kHz mono 16-bit WAV
/// under `target/bench-whisper/` (made once; the same bytes every time).
pub fn long_form_audio(minutes: f64) -> Result<PathBuf> {
    let dir = Path::new("target/bench-whisper");
    let path = dir.join(format!("jfk-long-{minutes}min.wav"));
    if path.is_file() {
        return Ok(path);
    }
    let jfk = emily_models::audio::load_audio(Path::new("samples/jfk.wav"))?;
    let rate = 16_000.0;
    let target = (minutes * 60.0 * rate) as usize;
    let mut audio: Vec<f32> = Vec::with_capacity(target + jfk.len());
    for pause in PAUSES_S.iter().cycle() {
        if audio.len() >= target {
            break;
        }
        audio.extend_from_slice(&jfk);
        audio.resize(audio.len() + (pause * rate) as usize, 0.0);
    }
    std::fs::create_dir_all(dir)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tmp = path.with_extension("partial");
    let mut w = hound::WavWriter::create(&tmp, spec)?;
    for s in audio {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
    }
    w.finalize()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
