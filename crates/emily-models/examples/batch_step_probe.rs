//! Probe: 4-row batched decoder steps, one by one, reached two ways: four
//! rows joined at once into a fresh batch, and as a server reaches them (one
//! row joined and stepped, then three more joined into a batch with room for
//! 8) after `what` ran (`encoder`: three encoder passes, `amx`/`avx`: the
//! register-loop peaks, `mem`: a 600 MB sweep, `spin`: 50 ms of register-only
//! work, `none`; `X-after`: X after the join instead). With
//! `EMILY_PROFILE=1` the kernels of the fresh batch's steps 1, 2 and 20.
//! `cargo run --release -p emily-models --example batch_step_probe -- [model] [steps] [what] [auto|f32|int8]`

use std::path::Path;
use std::time::Instant;

use emily::Kernels;
use emily_models::whisper::graph::{BatchDecoderState, Joiner};
use emily_models::whisper::{ComputeType, Session, TranscribeOptions, Whisper};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("models/whisper-tiny.en", |s| s.as_str());
    let steps: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let what = args.get(3).map_or("encoder", |s| s.as_str());
    let compute = match args.get(4).map(|s| s.as_str()) {
        Some("f32") => ComputeType::F32,
        Some("int8") => ComputeType::Int8,
        _ => ComputeType::Auto,
    };
    let w = Whisper::load_with(Path::new(model), Kernels::Fused, compute)?;
    let samples = emily_models::audio::load_audio(Path::new("samples/jfk.wav"))?;
    let mut session = Session::from_samples(&w, &samples, &TranscribeOptions::greedy())?;
    let mel = session.next_window()?.ok_or("no window")?.to_vec();
    let enc = w.encode(&mel)?.eval()?;
    let prompt = session.prompt(&w, &enc)?;
    let j = Joiner {
        enc: &enc,
        prompt: &prompt,
        max_new: 200,
    };
    let tok = prompt[prompt.len() - 1];
    for round in 0..3 {
        let mut fresh = BatchDecoderState::new();
        w.graph().batch_join_many(&mut fresh, &[j, j, j, j])?;
        let a = timed_steps(&w, &mut fresh, tok, steps, round == 2)?;
        let mut served = BatchDecoderState::with_max_rows(8);
        w.graph().batch_join_many(&mut served, &[j])?;
        w.graph().batch_step(&mut served, &[tok])?;
        run_between(&w, &mel, what)?;
        w.graph().batch_join_many(&mut served, &[j, j, j])?;
        if let Some(after) = what.strip_suffix("-after") {
            run_between(&w, &mel, after)?;
        }
        let b = timed_steps(&w, &mut served, tok, steps, false)?;
        println!("round {round}: fresh 4 rows {a:.2} ms/step, served 4 rows {b:.2} ms/step");
    }
    Ok(())
}

/// `steps` 4-row steps of `batch`, each printed; their mean in ms. With
/// `profile` (and `EMILY_PROFILE=1`) the kernels of steps 1, 2 and 20.
fn timed_steps(
    w: &Whisper,
    batch: &mut BatchDecoderState,
    tok: u32,
    steps: usize,
    profile: bool,
) -> Result<f64> {
    let profile = profile && emily::telemetry::profiling();
    emily::telemetry::take_op_profile();
    let mut each = Vec::with_capacity(steps);
    for s in 1..=steps {
        let t = Instant::now();
        w.graph().batch_step(batch, &[tok; 4])?;
        each.push(t.elapsed().as_secs_f64() * 1e3);
        let kernels = emily::telemetry::take_op_profile();
        if profile && (s <= 2 || s == 20) {
            let total: f64 = kernels.iter().map(|k| k.1).sum();
            let top: Vec<String> = kernels
                .iter()
                .take(5)
                .map(|(op, secs, _)| format!("{op} {:.2}", secs * 1e3))
                .collect();
            println!(
                "   step {s}: kernels {:.2} ms: {}",
                total * 1e3,
                top.join(", ")
            );
        }
    }
    let shown: Vec<String> = each.iter().map(|ms| format!("{ms:.2}")).collect();
    println!("  steps: {}", shown.join(" "));
    Ok(each.iter().sum::<f64>() / steps.max(1) as f64)
}

/// What runs between the first row's step and the other rows' join.
fn run_between(w: &Whisper, mel: &[f32], what: &str) -> Result<()> {
    match what {
        "encoder" => {
            for _ in 0..3 {
                w.encode(mel)?.eval()?;
            }
        }
        "amx" => {
            emily_kernels::gemm::peak_ops_per_sec(emily_kernels::gemm::PeakOp::AmxBf16);
        }
        "avx" => {
            emily_kernels::gemm::peak_ops_per_sec(emily_kernels::gemm::PeakOp::F32Fma);
        }
        "mem" => {
            let mut v = vec![1u8; 600 << 20];
            for i in (0..v.len()).step_by(64) {
                v[i] = v[i].wrapping_add(1);
            }
            std::hint::black_box(&v);
        }
        "spin" => {
            // 50 ms of register-only work: neither memory nor caches move.
            let t = Instant::now();
            let mut x = 1u64;
            while t.elapsed().as_millis() < 50 {
                for _ in 0..1000 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
            }
            std::hint::black_box(x);
        }
        _ => {}
    }
    Ok(())
}
