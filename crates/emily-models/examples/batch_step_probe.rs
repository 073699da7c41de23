//! Probe: 4-row batched decoder steps, one by one, reached two ways: four
//! rows joined at once into a fresh batch, and as a server reaches them (one
//! row joined and stepped, then three more joined into a batch with room for
//! 8) after `what` ran (`encoder`: three encoder passes, `amx`/`avx`: the
//! register-loop peaks, `mem`: a 600 MB sweep, `none`). With
//! `EMILY_PROFILE=1` the kernels of steps 1, 2 and 20.
//! `cargo run --release -p emily-models --example batch_step_probe -- [model] [steps] [what]`

use std::path::Path;
use std::time::Instant;

use emily::Kernels;
use emily_models::whisper::graph::{BatchDecoderState, Joiner};
use emily_models::whisper::{ComputeType, Session, TranscribeOptions, Whisper};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("models/whisper-tiny.en", |s| s.as_str());
    let steps: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let w = Whisper::load_with(Path::new(model), Kernels::Fused, ComputeType::Auto)?;
    let samples = emily_models::audio::load_audio(Path::new("samples/jfk.wav"))?;
    let opts = TranscribeOptions::greedy();
    let mut session = Session::from_samples(&w, &samples, &opts)?;
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
        // Fresh, all four at once.
        let mut fresh = BatchDecoderState::new();
        w.graph().batch_join_many(&mut fresh, &[j, j, j, j])?;
        emily::telemetry::take_op_profile();
        let t = Instant::now();
        let mut each = Vec::new();
        for _ in 0..steps {
            let t1 = Instant::now();
            w.graph().batch_step(&mut fresh, &[tok; 4])?;
            each.push(format!("{:.2}", t1.elapsed().as_secs_f64() * 1e3));
            if emily::telemetry::profiling() && round == 2 && (each.len() <= 2 || each.len() == 20)
            {
                let p = emily::telemetry::take_op_profile();
                let tot: f64 = p.iter().map(|x| x.1).sum();
                println!(
                    "   step {} total kernels {:.2} ms: {}",
                    each.len(),
                    tot * 1e3,
                    p.iter()
                        .take(5)
                        .map(|(o, s, _)| format!("{o} {:.2}", s * 1e3))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            } else if emily::telemetry::profiling() {
                emily::telemetry::take_op_profile();
            }
        }
        println!("  fresh steps: {}", each.join(" "));
        let a = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
        let pa = emily::telemetry::take_op_profile();
        // As the server: one, a step, then three more into room for 8.
        let mut served = BatchDecoderState::with_max_rows(8);
        w.graph().batch_join_many(&mut served, &[j])?;
        w.graph().batch_step(&mut served, &[tok])?;
        match args.get(3).map_or("encoder", |s| s.as_str()) {
            "encoder" => {
                for _ in 0..3 {
                    w.encode(&mel)?.eval()?;
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
            _ => {}
        }
        w.graph().batch_join_many(&mut served, &[j, j, j])?;
        emily::telemetry::take_op_profile();
        let t = Instant::now();
        let mut each = Vec::new();
        for _ in 0..steps {
            let t1 = Instant::now();
            w.graph().batch_step(&mut served, &[tok; 4])?;
            each.push(format!("{:.2}", t1.elapsed().as_secs_f64() * 1e3));
        }
        println!("  served steps: {}", each.join(" "));
        let b = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
        let pb = emily::telemetry::take_op_profile();
        println!("round {round}: fresh 4 rows {a:.2} ms/step, served 4 rows {b:.2} ms/step");
        if round == 2 && emily::telemetry::profiling() {
            for (name, p) in [("fresh", pa), ("served", pb)] {
                println!("  {name}:");
                for (op, s, n) in p.iter().take(12) {
                    println!(
                        "    {op:<40} {:8.3} ms/step {:6.1} runs/step",
                        s * 1e3 / steps as f64,
                        *n as f64 / steps as f64
                    );
                }
            }
        }
    }
    Ok(())
}
