//! Probe: Whisper's load (checkpoint index, then weights, graphs and
//! tokenizer under `auto`), `n` times in one process, with the resident set
//! after each: where a one-shot `emily transcribe` spends its start.
//! `cargo run --release -p emily-models --example load_probe -- [model dir] [n]`

use std::path::Path;
use std::time::Instant;

use emily::Kernels;
use emily_models::whisper::{ComputeType, Whisper};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or("models/whisper-tiny.en".into());
    let n: usize = std::env::args().nth(2).map_or(Ok(1), |s| s.parse())?;
    for _ in 0..n {
        let t = Instant::now();
        let ck = emily_models::whisper::load_whisper(Path::new(&model))?;
        eprintln!("checkpoint {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        let w = Whisper::from_checkpoint_with(&ck, Kernels::Fused, ComputeType::Auto)?;
        println!("load {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for l in st.lines().filter(|l| {
            l.starts_with("VmRSS")
                || l.starts_with("VmHWM")
                || l.starts_with("RssAnon")
                || l.starts_with("RssFile")
        }) {
            println!("  {l}");
        }
        drop(w);
    }
    Ok(())
}
