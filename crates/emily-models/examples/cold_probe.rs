//! Probe: the first transcription of JFK in a process against the next ones
//! (default options: beam 5, `auto`): wall time, encoder and decoder time,
//! minor page faults, and with `EMILY_PROFILE=1` the largest kernels.
//! `cargo run --release -p emily-models --example cold_probe -- [model] [calls]`

use std::path::Path;
use std::time::Instant;

use emily::Kernels;
use emily_models::whisper::{ComputeType, TranscribeOptions, Whisper};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or("models/whisper-tiny.en".into());
    let w = Whisper::load_with(Path::new(&model), Kernels::Fused, ComputeType::Auto)?;
    let samples = emily_models::audio::load_audio(Path::new("samples/jfk.wav"))?;
    let opts = TranscribeOptions::default();
    // `COLD_PROBE_PAUSE_MS`: a pause after loading (for `perf record -D`).
    if let Some(ms) = std::env::var("COLD_PROBE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let calls: usize = std::env::args().nth(2).map_or(Ok(3), |s| s.parse())?;
    for call in 0..calls {
        emily::telemetry::take_op_profile();
        let faults0 = minor_faults();
        let t = Instant::now();
        let tr = w.transcribe(&samples, &opts)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let p = emily::telemetry::take_op_profile();
        let k: f64 = p.iter().map(|x| x.1).sum::<f64>() * 1e3;
        println!(
            "call {call}: {ms:.1} ms (encoder {:.1}, decoder {:.1}), kernels {k:.1} ms, {} minor faults",
            tr.timings.encoder.as_secs_f64() * 1e3,
            tr.timings.decoder.as_secs_f64() * 1e3,
            minor_faults() - faults0
        );
        for (o, s, n) in p.iter().take(8) {
            println!("   {o:<44} {:7.2} ms {n:5} runs", s * 1e3);
        }
    }
    Ok(())
}

fn minor_faults() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    after
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
