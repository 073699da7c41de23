//! Probe: a running LLM batch's decode steps with 1 and 4 rows, a join into
//! a running batch, and a row leaving, timed one by one.
//! `cargo run --release -p emily-models --example llm_batch_probe -- [model.gguf] [steps]`

use std::time::Instant;

use emily_models::llm::{BatchRequest, GenerateOptions, LlmModel, LoadOptions, RunningBatch};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map_or("models/llm/SmolLM2-135M-Instruct.Q4_1.gguf", |s| s.as_str());
    let steps: usize = args.get(2).map_or(Ok(32), |s| s.parse())?;
    let model = LlmModel::load(path, LoadOptions::default())?;
    let req = |text: &str| -> Result<BatchRequest> {
        Ok(BatchRequest {
            prompt: model.tokenizer().encode(text, true)?,
            opts: GenerateOptions {
                max_tokens: 1000,
                model_stop_tokens: false,
                ..GenerateOptions::default()
            },
        })
    };
    let reqs: Vec<BatchRequest> = (0..5)
        .map(|i| req(&format!("Tell me a story about the number {i}.")))
        .collect::<Result<_>>()?;
    for round in 0..2 {
        for rows in [1usize, 4] {
            let mut batch = RunningBatch::with_max_rows(&model, 8);
            let start: Vec<(usize, &BatchRequest)> = reqs[..rows].iter().enumerate().collect();
            emily::telemetry::take_op_profile();
            let t = Instant::now();
            batch.start(&start)?;
            let prefill = t.elapsed().as_secs_f64() * 1e3;
            if emily::telemetry::profiling() {
                println!("  start kernels ({rows} rows):");
                for (op, secs, runs) in emily::telemetry::take_op_profile().iter().take(5) {
                    println!("    {op} {:.2} ms, {runs} runs", secs * 1e3);
                }
            }
            let mut each = Vec::new();
            emily::telemetry::take_op_profile();
            for step in 0..steps {
                if step == 1 && emily::telemetry::profiling() {
                    println!("  step kernels ({rows} rows):");
                    for (op, secs, runs) in emily::telemetry::take_op_profile().iter().take(5) {
                        println!("    {op} {:.2} ms, {runs} runs", secs * 1e3);
                    }
                }
                let t = Instant::now();
                batch.advance(|_, _| true)?;
                each.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let t = Instant::now();
            batch.join(9, &reqs[4])?;
            let join = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            batch.advance(|id, _| id != 0)?;
            let leave = t.elapsed().as_secs_f64() * 1e3;
            emily::telemetry::take_op_profile();
            let t = Instant::now();
            batch.join(10, &reqs[3])?;
            let join2 = t.elapsed().as_secs_f64() * 1e3;
            println!("  second join {join2:.1} ms");
            if emily::telemetry::profiling() {
                for (op, secs, runs) in emily::telemetry::take_op_profile().iter().take(8) {
                    println!("    {op} {:.2} ms, {runs} runs", secs * 1e3);
                }
            }
            each.sort_by(f64::total_cmp);
            println!(
                "round {round}: {rows} row(s): prefill {prefill:.1} ms, step median {:.2} ms (min {:.2}), join 1 {join:.1} ms, leave 1 + step {leave:.1} ms",
                each[each.len() / 2],
                each[0]
            );
        }
    }
    Ok(())
}
