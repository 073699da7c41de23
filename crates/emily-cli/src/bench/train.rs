//! `emily bench train`: milliseconds per training step of the two `emily
//! train` recipes (forward, backward and AdamW update; f32), and the byte
//! LM's compiled (traced, fused, replayed) step against the same forward +
//! backward graph evaluated eagerly op by op, with the kernels each runs per
//! step and the memory each needs beyond the parameters; then PyTorch's step
//! for the same models (`bench/peers/torch_train.py` in `bench/peers/.venv`,
//! when set up) at the same thread count, and the ratios side by side.
//! Each row is the median of 7 timed windows after a warm-up that runs until
//! the step time settles, with the fastest and slowest window, the process
//! CPU time per step and the hypervisor's steal beside it (a row whose wall
//! is far above its CPU time, or with steal, was slowed by the machine, not
//! the code). Compiled and eager alternate call by call, so both see the same
//! machine. Thread count: `--threads`; `EMILY_PROFILE=1` adds where one
//! compiled and one eager step spend their kernel time, per op kind
//! (`EMILY_PROFILE_SHAPES=1` as well: the compiled column split by kernel
//! and output shape, e.g. `matmul aT [344, 64]`, beside the eager op totals);
//! `EMILY_BENCH_PLAN=1` prints the compiled step's plan, step by step.

use anyhow::Result;
use emily::{memory, DType, Tensor};
use emily_models::training::{bytelm, digits};
use emily_nn::train::{cross_entropy, Adam, Constant, Precision, Trainer};
use emily_nn::{Mode, ParamStore};

use std::time::Instant;

use super::timer::{process_usage, spread_secs, Spread};

/// Runs the suite.
pub fn run() -> Result<()> {
    println!("\n## training steps (f32, AdamW, ms per step)");
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "step", "ms", "min", "max", "cpu ms", "steal", "faults"
    );

    // Digits MLP, batch 64 (random pixels: the data does not change the work).
    let recipe = digits::Recipe::default();
    let model = digits::classifier(recipe.hidden, recipe.dropout)?;
    let mut params = ParamStore::random(&model, 0, DType::F32)?;
    let step = model.build(&params, Mode::Train)?.train_step(
        |o, t| cross_entropy(&o[digits::LOGITS], &t[0]),
        Precision::Full,
    )?;
    let mut trainer = Trainer::new(step, Adam::adamw(1e-4), Constant(1e-3)).clip_grad_norm(5.0);
    let x =
        Tensor::rand_uniform(&[recipe.batch, digits::PIXELS], 0.0, 1.0, 1, DType::F32)?.eval()?;
    let y = Tensor::from_vec(
        (0..recipe.batch as i64).map(|i| i % 10).collect(),
        &[recipe.batch],
    )?;
    let t = spread_secs(1.0, || {
        trainer
            .step(&mut params, &[(digits::INPUT, &x)], &[&y])
            .expect("digits step");
    });
    let digits_name = format!("digits MLP b{}", recipe.batch);
    print_row(&digits_name, &t);
    let mut ours = vec![(digits_name, t.median * 1e3)];

    // Byte LM, batch 16 × 64 bytes.
    let r = bytelm::Recipe::default();
    let model = bytelm::model(&r.config)?;
    let mut params = ParamStore::random(&model, 0, DType::F32)?;
    let make_step = |params: &ParamStore| -> Result<emily_nn::train::TrainStep> {
        Ok(model.build(params, Mode::Train)?.train_step(
            |o, t| cross_entropy(&o[bytelm::LOGITS], &t[0]),
            Precision::Full,
        )?)
    };
    let ids: Vec<u8> = (0..r.batch * (r.seq_len + 1))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let starts: Vec<usize> = (0..r.batch).map(|i| i * (r.seq_len + 1)).collect();
    let (x, y) = bytelm::windows(&ids, &starts, r.seq_len)?;
    let mut trainer =
        Trainer::new(make_step(&params)?, Adam::adamw(0.01), Constant(1e-3)).clip_grad_norm(1.0);
    let t = spread_secs(1.0, || {
        trainer
            .step(&mut params, &[(bytelm::INPUT, &x)], &[&y])
            .expect("bytelm step");
    });
    let bytelm_name = format!("byte LM b{}x{}", r.batch, r.seq_len);
    print_row(&bytelm_name, &t);
    println!(
        "{:<34} {:>10}",
        "  warm-up steps before timing", t.warmup_calls
    );
    ours.push((bytelm_name, t.median * 1e3));

    // The same loss + gradients: compiled plan vs eager evaluation.
    let step = make_step(&params)?;
    let ins = [(bytelm::INPUT, &x)];
    let run_compiled = || {
        step.run(&params, &ins, &[&y], 1.0).expect("compiled step");
    };
    let run_eager = || {
        step.run_eager(&params, &ins, &[&y], 1.0)
            .expect("eager step");
    };
    let (compiled, eager) = alternate(1.5, run_compiled, run_eager);
    println!("{:<34} {compiled:>10.3}", "byte LM grad, compiled (fused)");
    println!("{:<34} {eager:>10.3}", "byte LM grad, eager (op by op)");
    println!("{:<34} {:>9.2}x", "compiled speed-up", eager / compiled);
    let plan = step.plan(&params, &ins, &[&y])?;
    if std::env::var("EMILY_BENCH_PLAN").is_ok_and(|v| v == "1") {
        println!("{}", plan.describe());
    }
    println!(
        "{:<34} {:>10}",
        "kernels per step, compiled",
        plan.num_steps()
    );
    println!(
        "{:<34} {:>10}",
        "kernels per step, eager",
        plan.num_traced_ops()
    );
    let peak_mb = |f: &dyn Fn()| {
        let base = memory::stats().active_bytes;
        memory::reset_peak();
        f();
        memory::stats().peak_bytes.saturating_sub(base) as f64 / 1e6
    };
    let compiled_mb = peak_mb(&|| {
        step.run(&params, &ins, &[&y], 1.0).expect("compiled step");
    });
    let eager_mb = peak_mb(&|| {
        step.run_eager(&params, &ins, &[&y], 1.0)
            .expect("eager step");
    });
    println!("{:<34} {compiled_mb:>10.1}", "peak working MB, compiled");
    println!("{:<34} {eager_mb:>10.1}", "peak working MB, eager");
    if emily::telemetry::profiling() {
        print_profile(run_compiled, run_eager);
    }
    let threads = emily_kernels::parallel::num_threads();
    let peer = torch_peer(threads);
    if !peer.is_empty() {
        println!("\n## training step vs PyTorch ({threads} thread(s), f32, ms per step)");
        println!(
            "{:<20} {:>10} {:>10} {:>14}",
            "step", "emily", "torch", "emily / torch"
        );
        for (name, ms) in &ours {
            match torch_ms(&peer, name, threads) {
                Some(t) => println!("{name:<20} {ms:>10.3} {t:>10.3} {:>13.2}x", ms / t),
                None => println!("{name:<20} {ms:>10.3} {:>10} {:>14}", "-", "-"),
            }
        }
    }
    Ok(())
}

/// Prints one timed row: median, window spread, CPU time, steal, page
/// faults per step.
fn print_row(name: &str, t: &Spread) {
    println!(
        "{name:<34} {:>10.3} {:>9.3} {:>9.3} {:>9.3} {:>5.1}% {:>8.1}",
        t.median * 1e3,
        t.min * 1e3,
        t.max * 1e3,
        t.cpu * 1e3,
        t.steal * 100.0,
        t.faults
    );
}

/// Median ms per call of `a` and of `b`, run alternately (a warm-up of three
/// calls each, then pairs for at least `min_secs`), so a change in the
/// machine's state slows both alike.
fn alternate(min_secs: f64, a: impl Fn(), b: impl Fn()) -> (f64, f64) {
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..3 {
        a();
        b();
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while ta.len() < 7 || start.elapsed().as_secs_f64() < min_secs {
        ta.push(time(&a));
        tb.push(time(&b));
    }
    (median(&mut ta), median(&mut tb))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `EMILY_PROFILE=1`: kernel time per op kind of a compiled and an eager
/// step side by side (5 of each, alternated), and what each step spends
/// outside kernels (graph building, dispatch, allocation): its process CPU
/// time minus its kernels'. At one thread the kernel times are CPU times
/// (kernels run inline), so a loaded machine does not distort them.
fn print_profile(run_compiled: impl Fn(), run_eager: impl Fn()) {
    const STEPS: usize = 5;
    let (mut c, mut e) = (Vec::new(), Vec::new());
    let (mut c_cpu, mut e_cpu) = (0.0, 0.0);
    let profile = |f: &dyn Fn(), into: &mut Vec<(&'static str, f64, u64)>, cpu: &mut f64| {
        emily::telemetry::take_op_profile();
        let cpu0 = process_usage().0;
        f();
        *cpu += (process_usage().0 - cpu0) * 1e3 / STEPS as f64;
        for (op, secs, runs) in emily::telemetry::take_op_profile() {
            match into.iter_mut().find(|x| x.0 == op) {
                Some(x) => {
                    x.1 += secs;
                    x.2 += runs;
                }
                None => into.push((op, secs, runs)),
            }
        }
    };
    for _ in 0..STEPS {
        profile(&run_compiled, &mut c, &mut c_cpu);
        profile(&run_eager, &mut e, &mut e_cpu);
    }
    c.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "\n  {:<32} {:>9} {:>6} {:>9} {:>6}",
        "kernel ms per step", "compiled", "runs", "eager", "runs"
    );
    let per_step = |v: &[(&'static str, f64, u64)], op: &str| {
        v.iter().find(|x| x.0 == op).map_or((0.0, 0.0), |x| {
            (x.1 * 1e3 / STEPS as f64, x.2 as f64 / STEPS as f64)
        })
    };
    let mut ops: Vec<&'static str> = Vec::new();
    for (op, _, _) in c.iter().chain(&e) {
        if !ops.contains(op) {
            ops.push(op);
        }
    }
    for op in ops {
        let ((cm, cr), (em, er)) = (per_step(&c, op), per_step(&e, op));
        println!("  {op:<32} {cm:>9.3} {cr:>6.0} {em:>9.3} {er:>6.0}");
    }
    let total =
        |v: &[(&'static str, f64, u64)]| v.iter().map(|x| x.1).sum::<f64>() * 1e3 / STEPS as f64;
    let (ck, ek) = (total(&c), total(&e));
    println!("  {:<32} {ck:>9.3} {:>6} {ek:>9.3}", "all kernels", "");
    println!(
        "  {:<32} {c_cpu:>9.3} {:>6} {e_cpu:>9.3}",
        "process CPU per step", ""
    );
    println!(
        "  {:<32} {:>9.3} {:>6} {:>9.3}",
        "outside kernels (CPU − kernels)",
        c_cpu - ck,
        "",
        e_cpu - ek
    );
}

/// Runs the PyTorch peer at `threads`; its lines (none when it is not set
/// up or fails, said on stdout).
fn torch_peer(threads: usize) -> Vec<String> {
    println!();
    super::torch_peer::run("torch_train.py", &["--threads".into(), threads.to_string()])
}

/// PyTorch's ms per step for `name` from the peer's line
/// `NAME threads=T  X ms`.
fn torch_ms(lines: &[String], name: &str, threads: usize) -> Option<f64> {
    let tag = format!("threads={threads}");
    let line = lines
        .iter()
        .find(|l| l.starts_with(name) && l.split_whitespace().any(|w| w == tag))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let unit = words.iter().rposition(|w| *w == "ms")?;
    words.get(unit.checked_sub(1)?)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::torch_ms;

    #[test]
    fn peer_lines_are_parsed_by_name_and_threads() {
        let lines: Vec<String> = [
            "torch 2.15.0, f32, ms per training step (median of 7)",
            "digits MLP b64   threads=1     0.699 ms",
            "byte LM b16x64   threads=1    19.240 ms",
            "byte LM b16x64   threads=2    16.580 ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(torch_ms(&lines, "byte LM b16x64", 2), Some(16.58));
        assert_eq!(torch_ms(&lines, "digits MLP b64", 1), Some(0.699));
        assert_eq!(torch_ms(&lines, "digits MLP b64", 2), None);
        assert_eq!(torch_ms(&lines, "other", 1), None);
    }
}
