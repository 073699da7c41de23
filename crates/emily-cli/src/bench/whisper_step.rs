//! The decoder step against its bandwidth floor (`emily bench whisper`).
//!
//! One decoder step of one row reads every decoder weight it multiplies by
//! (the layers' projections and the tied embedding as the logits' matrix;
//! not the cross-attention K/V projections, which run once per window, nor
//! the embedding and position rows it only looks up), the window's cross
//! keys and values, and the self-attention cache up to its position. At the
//! machine's read bandwidth those bytes take the floor time; the step is
//! measured on its own (single-token steps after a one-token prompt,
//! positions 1 to [`STEPS`]) so the window's cross-K/V projection and the
//! token choice are not counted.

use std::time::Instant;

use anyhow::Result;
use emily::Tensor;
use emily_models::whisper::graph::{TIED_OUTPUT, TOKEN_EMBEDDING};
use emily_models::whisper::Whisper;
use serde_json::json;

/// Single-token steps timed (positions 1..=STEPS).
const STEPS: usize = 48;

/// Bytes of a tensor as held (a weight held as int8 rows: its packed
/// panels, not the `Q8_0` size its dtype states).
fn bytes_of(t: &Tensor) -> f64 {
    if let Some(rows) = t.int8_rows() {
        return rows.bytes() as f64;
    }
    t.dtype()
        .storage_bytes(t.shape())
        .map_or(f64::NAN, |b| b as f64)
}

/// Whether the step reads the whole parameter `key` (see the module doc;
/// the token embedding is only gathered from, never a parameter now).
fn read_per_step(key: &str) -> bool {
    let cross_kv_projection =
        key.contains(".encoder_attn.k_proj.") || key.contains(".encoder_attn.v_proj.");
    key == TIED_OUTPUT
        || (key.starts_with("model.decoder.")
            && key != TOKEN_EMBEDDING
            && !key.starts_with("model.decoder.embed_positions")
            && !cross_kv_projection)
}

/// The 1-row step on `w`: `{"step_ms", "step_cpu_ms", "step_mb", "read_gbs",
/// "read_gbs_min", "read_gbs_max"}` — the median step time, the process CPU
/// time per step (every thread's: under load the wall time counts waits for
/// a core, this does not; with several threads it counts the workers'
/// spinning between kernels too), the bytes one
/// step reads at the mean position of the timed steps, and the measured read
/// bandwidth (all the pool's threads): the median of its samples, which sets
/// the floor, and their range.
pub fn measure(w: &Whisper) -> Result<serde_json::Value> {
    let graph = w.graph();
    let dims = *graph.dims();
    let mel = vec![-0.5f32; dims.n_mels * 2 * dims.n_audio_ctx];
    let enc = w.encode(&mel)?;
    let mut state = graph.start(&enc)?;
    let sot = w.tokenizer().special().sot;
    let token = |id: u32| Tensor::from_slice(&[id as i64], &[1, 1]);
    let offset = |p: usize| Tensor::from_slice(&[p as i64], &[1]);
    graph.step(&token(sot)?, &offset(0)?, &mut state)?;
    // With `EMILY_PROFILE=1`: where the timed steps spend (kernel time per
    // op kind, per step), printed to stderr.
    emily::telemetry::take_op_profile();
    let cpu0 = emily_kernels::parallel::thread_cpu_nanos();
    let process0 = super::serve_batch::process_cpu_secs();
    let mut times = Vec::with_capacity(STEPS);
    for p in 1..=STEPS {
        // Any text token: the step's cost does not depend on which.
        let (t, o) = (token(p as u32 * 7)?, offset(p)?);
        let start = Instant::now();
        let logits = graph.step(&t, &o, &mut state)?;
        logits.eval()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let step_cpu_ms = (super::serve_batch::process_cpu_secs() - process0) * 1e3 / STEPS as f64;
    if emily::telemetry::profiling() {
        let total: f64 = times.iter().sum();
        // The calling thread's CPU time (all of the step's at one thread).
        let cpu = match (cpu0, emily_kernels::parallel::thread_cpu_nanos()) {
            (Some(a), Some(b)) => format!("{:.3}", (b - a) as f64 * 1e-6 / STEPS as f64),
            _ => "?".into(),
        };
        eprintln!(
            "decoder step op profile ({STEPS} steps, {:.3} ms wall, {cpu} ms CPU of this thread, {process:.3} ms CPU of the process per step):",
            total / STEPS as f64,
            process = step_cpu_ms
        );
        for (op, secs, runs) in emily::telemetry::take_op_profile() {
            eprintln!(
                "  {op:<32} {:>8.3} ms/step {:>6} runs/step",
                secs * 1e3 / STEPS as f64,
                runs as f64 / STEPS as f64
            );
        }
    }
    times.sort_by(f64::total_cmp);
    // The logits' matrix is a parameter (`proj_out.weight`) or, under the
    // int8 logits, the packed int8 rows outside the store.
    let int8_logits = graph.int8_logits().map_or(0.0, |r| r.bytes() as f64);
    let weights: f64 = int8_logits
        + graph
            .params()
            .iter()
            .filter(|(k, _)| read_per_step(k))
            .map(|(_, t)| bytes_of(t))
            .sum::<f64>();
    let cross: f64 = state.cross.iter().map(|(_, t)| bytes_of(t)).sum();
    // Keys and values of every layer up to the mean position, f32.
    let mean_position = (STEPS + 1) as f64 / 2.0;
    let self_kv = (dims.n_text_layers * 2 * dims.d_model * 4) as f64 * mean_position;
    let read = super::floor::read_bandwidth();
    Ok(json!({
        "step_ms": times[times.len() / 2],
        "step_cpu_ms": step_cpu_ms,
        "step_mb": (weights + cross + self_kv) / 1e6,
        "read_gbs": read.median,
        "read_gbs_min": read.min,
        "read_gbs_max": read.max,
    }))
}

/// The printed line for one configuration's step measurement.
pub fn describe(who: &str, step: &serde_json::Value) -> Option<String> {
    let (ms, mb, gbs) = (
        step["step_ms"].as_f64()?,
        step["step_mb"].as_f64()?,
        step["read_gbs"].as_f64()?,
    );
    let floor_ms = mb / gbs;
    // The samples' range (older result lines have none).
    let range = match (step["read_gbs_min"].as_f64(), step["read_gbs_max"].as_f64()) {
        (Some(lo), Some(hi)) => format!(" (median of samples {lo:.1}–{hi:.1})"),
        _ => String::new(),
    };
    Some(format!(
        "{who}: decoder step (1 row) {ms:.2} ms, reads {mb:.1} MB, floor {floor_ms:.2} ms at {gbs:.1} GB/s read{range}: {:.2}× the floor (target ≤ 1.30×)",
        ms / floor_ms
    ))
}
