//! `emily bench train`: milliseconds per training step of the two `emily
//! train` recipes (forward, backward and AdamW update; f32), and the byte
//! LM's compiled (traced, fused, replayed) step against the same forward +
//! backward graph evaluated eagerly op by op, with the kernels each runs per
//! step and the memory each needs beyond the parameters; then PyTorch's step
//! for the same models (`bench/peers/torch_train.py` in `bench/peers/.venv`,
//! when set up) at the same thread count, and the ratios side by side.
//! Thread count: `--threads`; `EMILY_PROFILE=1` adds the compiled step's
//! time per op kind.

use anyhow::Result;
use emily::{memory, DType, Tensor};
use emily_models::training::{bytelm, digits};
use emily_nn::train::{cross_entropy, Adam, Constant, Precision, Trainer};
use emily_nn::{Mode, ParamStore};

use super::timer::median_secs;

/// Runs the suite.
pub fn run() -> Result<()> {
    println!("\n## training steps (f32, AdamW, ms per step)");
    println!("{:<34} {:>10}", "step", "ms");

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
    let ms = median_secs(1.0, || {
        trainer
            .step(&mut params, &[(digits::INPUT, &x)], &[&y])
            .expect("digits step");
    }) * 1e3;
    let digits_name = format!("digits MLP b{}", recipe.batch);
    println!("{digits_name:<34} {ms:>10.3}");
    let mut ours = vec![(digits_name, ms)];

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
    let ms = median_secs(1.0, || {
        trainer
            .step(&mut params, &[(bytelm::INPUT, &x)], &[&y])
            .expect("bytelm step");
    }) * 1e3;
    let bytelm_name = format!("byte LM b{}x{}", r.batch, r.seq_len);
    println!("{bytelm_name:<34} {ms:>10.3}");
    ours.push((bytelm_name, ms));

    // The same loss + gradients: compiled plan vs eager evaluation.
    let step = make_step(&params)?;
    let ins = [(bytelm::INPUT, &x)];
    let compiled = median_secs(1.0, || {
        step.run(&params, &ins, &[&y], 1.0).expect("compiled step");
    }) * 1e3;
    let eager = median_secs(1.0, || {
        step.run_eager(&params, &ins, &[&y], 1.0)
            .expect("eager step");
    }) * 1e3;
    println!("{:<34} {compiled:>10.3}", "byte LM grad, compiled (fused)");
    println!("{:<34} {eager:>10.3}", "byte LM grad, eager");
    println!("{:<34} {:>9.2}x", "compiled speed-up", eager / compiled);
    let plan = step.plan(&params, &ins, &[&y])?;
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
        // EMILY_PROFILE=1: where one compiled step's time goes, per op kind.
        emily::telemetry::take_op_profile();
        step.run(&params, &ins, &[&y], 1.0)?;
        for (op, secs, runs) in emily::telemetry::take_op_profile().iter().take(16) {
            println!("  {op:<32} {:>8.3} ms  {runs:>5} runs", secs * 1e3);
        }
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
