//! The server's batching, measured in process (`emily bench serve`'s first
//! rows): the encoder with 1 vs 4 windows per call, a decoder join (cross
//! keys/values + prompt) of 1 vs 4 rows, and one batched decoder step of 1,
//! 4 and 8 rows — wall time and CPU time (all threads) per window or row.
//! Batching pays where the per-row cost falls; the encoder's does not (it is
//! compute-bound), so the encoder's share of a request bounds what batching
//! can win: [`BatchRows::amdahl_bound`] turns these rows into that bound.

use std::time::Instant;

use anyhow::{ensure, Result};
use emily::Tensor;
use emily_models::log_mel::CHUNK_FRAMES;
use emily_models::whisper::graph::{BatchDecoderState, Joiner};
use emily_models::whisper::{Session, TranscribeOptions, Whisper};

/// CPU seconds this process has run, all threads (from /proc; NaN elsewhere).
pub fn process_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1e9
}

/// Wall and CPU milliseconds per unit of `f` (`units` units per call):
/// one warm-up call, then the median wall time of `reps` calls and their
/// mean CPU time.
fn per_unit(units: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?;
    let cpu0 = process_cpu_secs();
    let mut walls = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        walls.push(t.elapsed().as_secs_f64());
    }
    let cpu = (process_cpu_secs() - cpu0) / reps as f64;
    walls.sort_by(f64::total_cmp);
    let u = units as f64;
    Ok((walls[reps / 2] * 1e3 / u, cpu * 1e3 / u))
}

/// Timed decoder steps per row count.
const STEP_REPS: usize = 40;

/// With `EMILY_PROFILE=1`: where the `reps` (+ 1 warm-up) calls of `what`
/// just timed spent their kernel time (per call, per op kind), on stderr.
fn print_op_profile(what: &str, reps: usize) {
    if !emily::telemetry::profiling() {
        return;
    }
    // The warm-up call is in the profile too.
    let steps = (reps + 1) as f64;
    eprintln!("{what}, kernel time per call:");
    for (op, secs, runs) in emily::telemetry::take_op_profile() {
        eprintln!(
            "  {op:<32} {:>8.3} ms {:>6} runs",
            secs * 1e3 / steps,
            runs as f64 / steps
        );
    }
}

/// The measured batching rows: wall milliseconds per window or row, and
/// the CPU milliseconds (all threads) of the batched ones.
#[derive(Clone, Copy, Debug)]
pub struct BatchRows {
    /// Encoder, one window per call.
    pub encoder: f64,
    /// Join of 1 row, and per row of a 4-row join.
    pub join: [f64; 2],
    /// Decoder step of 1 row, and per row of a 4-row step.
    pub step: [f64; 2],
    /// CPU time of the encoder per window, of a 4-row join per row and of a
    /// 4-row step per row.
    pub cpu: [f64; 3],
}

impl BatchRows {
    /// The most a server can gain at C = 4 over C = 1 on a request of
    /// `windows` windows and `steps` decoder steps that takes `whole_ms` in
    /// process when only the join and the steps batch: the request's time
    /// alone over its share of a batch of 4. The encoder does not batch,
    /// and neither does the rest of `whole_ms` beyond the encoder, join and
    /// steps (features, tokens, the transcript), which is counted on both
    /// sides.
    pub fn amdahl_bound(&self, windows: usize, steps: usize, whole_ms: f64) -> f64 {
        let (w, n) = (windows as f64, steps as f64);
        let alone = w * (self.encoder + self.join[0]) + n * self.step[0];
        let batched = w * (self.encoder + self.join[1]) + n * self.step[1];
        let rest = (whole_ms - alone).max(0.0);
        (alone + rest) / (batched + rest)
    }

    /// The most a server can gain at C = 4 over C = 1 if, besides batching
    /// the join and the steps, it overlapped one request's encoder with the
    /// others' decoder steps so that `cores` cores never idled: the
    /// request's time alone (`whole_ms`, as [`BatchRows::amdahl_bound`])
    /// over its CPU time in a 4-row batch spread over the cores, the rest
    /// beyond the encoder, join and steps counted as one core busy. (A
    /// decoder step of one row keeps about one core busy — the CPU column —
    /// so this is what splitting the cores between an encoder lane and a
    /// decoder lane could reach at best.)
    pub fn overlap_bound(&self, windows: usize, steps: usize, cores: f64, whole_ms: f64) -> f64 {
        let (w, n) = (windows as f64, steps as f64);
        let alone = w * (self.encoder + self.join[0]) + n * self.step[0];
        let rest = (whole_ms - alone).max(0.0);
        let cpu = w * (self.cpu[0] + self.cpu[1]) + n * self.cpu[2] + rest;
        (alone + rest) / (cpu / cores)
    }

    /// The encoder's share of a request alone (`windows`, `steps`,
    /// `whole_ms` as [`BatchRows::amdahl_bound`]).
    pub fn encoder_share(&self, windows: usize, steps: usize, whole_ms: f64) -> f64 {
        let (w, n) = (windows as f64, steps as f64);
        let alone = w * (self.encoder + self.join[0]) + n * self.step[0];
        w * self.encoder / alone.max(whole_ms)
    }
}

/// Prints the batching rows for `w` on the first window of `samples`.
pub fn run(w: &Whisper, samples: &[f32]) -> Result<BatchRows> {
    let opts = TranscribeOptions::greedy();
    let mut session = Session::from_samples(w, samples, &opts)?;
    let Some(window) = session.next_window()? else {
        anyhow::bail!("the clip has no window");
    };
    let mel = window.to_vec();
    let enc = w.encode(&mel)?.eval()?;
    let prompt = session.prompt(w, &enc)?;
    let n_mels = w.dims().n_mels;
    println!(
        "batching, in process (ms per window or row; cpu = all threads' CPU time):\n{:<34} {:>9} {:>9}",
        "", "wall", "cpu"
    );
    let mut rows = BatchRows {
        encoder: 0.0,
        join: [0.0; 2],
        step: [0.0; 2],
        cpu: [0.0; 3],
    };
    for n in [1usize, 4] {
        let x: Vec<f32> = mel.iter().copied().cycle().take(n * mel.len()).collect();
        let x = Tensor::from_slice(&x, &[n, n_mels, CHUNK_FRAMES])?;
        let (wall, cpu) = per_unit(n, 3, || {
            w.graph().encode(&x)?.eval()?;
            Ok(())
        })?;
        if n == 1 {
            rows.encoder = wall;
            rows.cpu[0] = cpu;
        }
        println!(
            "{:<34} {wall:>9.1} {cpu:>9.1}",
            format!("encoder, {n} window(s) per call")
        );
    }
    for (i, n) in [1usize, 4].into_iter().enumerate() {
        let joiners: Vec<Joiner<'_>> = (0..n)
            .map(|_| Joiner {
                enc: &enc,
                prompt: &prompt,
                max_new: 64,
            })
            .collect();
        emily::telemetry::take_op_profile();
        let (wall, cpu) = per_unit(n, 3, || {
            let mut batch = BatchDecoderState::new();
            let joined = w.graph().batch_join_many(&mut batch, &joiners)?;
            ensure!(joined.iter().all(Option::is_some), "no room to join");
            Ok(())
        })?;
        print_op_profile(&format!("join {n} row(s)"), 3);
        rows.join[i] = wall;
        if n == 4 {
            rows.cpu[1] = cpu;
        }
        println!(
            "{:<34} {wall:>9.1} {cpu:>9.1}",
            format!("join {n} row(s) (cross K/V, prompt)")
        );
    }
    // A row leaving a batch of 4 and another joining the 3 left: what
    // continuous batching pays per request besides the steps (the rows'
    // buffers keep their room, so both are done in place).
    {
        let joiner = |max_new| Joiner {
            enc: &enc,
            prompt: &prompt,
            max_new,
        };
        let four = [joiner(200), joiner(200), joiner(200), joiner(200)];
        let mut batch = BatchDecoderState::with_max_rows(4);
        w.graph().batch_join_many(&mut batch, &four)?;
        let (wall, cpu) = per_unit(1, 5, || {
            let t = Instant::now();
            batch.retain(&[true, false, true, true])?;
            let retain = t.elapsed();
            let t = Instant::now();
            let joined = w.graph().batch_join_many(&mut batch, &[joiner(200)])?;
            ensure!(joined.iter().all(Option::is_some), "no room to join");
            let join = t.elapsed();
            if emily::telemetry::profiling() {
                eprintln!(
                    "retain 3 of 4: {:.1} ms; join 1 row to 3: {:.1} ms",
                    retain.as_secs_f64() * 1e3,
                    join.as_secs_f64() * 1e3
                );
            }
            Ok(())
        })?;
        println!(
            "{:<34} {wall:>9.1} {cpu:>9.1}",
            "drop 1 row of 4, join 1 row to 3"
        );
    }
    let mut base = None;
    for n in [1usize, 4, 8] {
        let joiners: Vec<Joiner<'_>> = (0..n)
            .map(|_| Joiner {
                enc: &enc,
                prompt: &prompt,
                max_new: 200,
            })
            .collect();
        let mut batch = BatchDecoderState::new();
        w.graph().batch_join_many(&mut batch, &joiners)?;
        let tokens = vec![prompt[prompt.len() - 1]; n];
        emily::telemetry::take_op_profile();
        let (wall, cpu) = per_unit(n, STEP_REPS, || {
            w.graph().batch_step(&mut batch, &tokens)?;
            Ok(())
        })?;
        print_op_profile(&format!("decoder step of {n} row(s)"), STEP_REPS);
        match n {
            1 => rows.step[0] = wall,
            4 => {
                rows.step[1] = wall;
                rows.cpu[2] = cpu;
            }
            _ => {}
        }
        let b = *base.get_or_insert(wall);
        println!(
            "{:<34} {wall:>9.2} {cpu:>9.2}   {:.2}x the 1-row cost per row",
            format!("decoder step, {n} row(s)"),
            wall / b
        );
    }
    Ok(rows)
}
