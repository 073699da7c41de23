//! The single-client latency target of `emily bench serve` (p99 at C = 1
//! within 10 % of the in-process time), measured in pairs: one
//! transcription in this process, then the same clip through the server,
//! alternating. This host's speed drifts by 10–20 % over a minute, so the
//! in-process median taken before the server starts and a p99 taken a
//! minute later compare two machine states; pairs see the same one.

use std::time::Instant;

use anyhow::{ensure, Result};
use emily_models::whisper::Whisper;

use super::serve::{quantile, trace, transcribe, Clip};

/// Pairs measured (one untimed pair first).
const PAIRS: usize = 12;

/// Alternates in-process transcriptions of `clip` (on `w`, the server's
/// model and options) with requests to the server at `url`, one at a time,
/// and prints both medians and p99s and the server's p99 over the
/// in-process median (the target) and over the in-process p99 (tail
/// against tail: with a dozen pairs a p99 is the slowest, and this host's
/// slow spells reach both sides).
pub(super) fn run(rt: &tokio::runtime::Runtime, url: &str, w: &Whisper, clip: &Clip) -> Result<()> {
    let client = reqwest::Client::new();
    let (mut local, mut served) = (Vec::new(), Vec::new());
    for i in 0..=PAIRS {
        let t = Instant::now();
        let tr = w.transcribe(&clip.samples, &clip.opts)?;
        let text = tr.text;
        let local_s = t.elapsed().as_secs_f64();
        if trace() {
            eprintln!(
                "in process: {:?}, total {:.1} ms",
                tr.timings,
                local_s * 1e3
            );
        }
        ensure!(text.trim() == clip.text, "in process: wrong text {text:?}");
        let o = rt.block_on(transcribe(&client, url, &clip.wav, clip.fields))?;
        o.check(&clip.text)?;
        if i > 0 {
            local.push(local_s * 1e3);
            served.push(o.seconds * 1e3);
        }
    }
    local.sort_by(f64::total_cmp);
    served.sort_by(f64::total_cmp);
    let local_p50 = quantile(&local, 0.5);
    let (local_p99, p99) = (quantile(&local, 0.99), quantile(&served, 0.99));
    println!(
        "{}, C=1 in {PAIRS} pairs (in process, then the server; alternating): in process p50 {:.0}, \
         p99 {:.0} ms; server p50 {:.0}, p99 {:.0} ms; server p99 / in-process p50 {:.2} \
         (target <= 1.10), / in-process p99 {:.2}; p50 / p50 {:.2}",
        clip.label,
        local_p50,
        local_p99,
        quantile(&served, 0.5),
        p99,
        p99 / local_p50,
        p99 / local_p99,
        quantile(&served, 0.5) / local_p50
    );
    Ok(())
}
