//! `emily bench`: side-by-side benchmarks printed as tables with ratios and
//! the machine's floors (copy bandwidth, GEMM throughput).

mod core;
pub mod encoder_profile;
mod encoder_rate;
mod engines;
mod floor;
mod fused_programs;
mod kernels;
pub mod llm;
mod quant;
mod quant_models;
mod serve;
mod serve_batch;
mod serve_llm;
mod serve_paired;
mod timer;
mod torch_peer;
mod train;
pub mod whisper;
mod whisper_procs;
mod whisper_step;

use anyhow::Result;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Core engine: matmul vs gemm, bf16/int8 engines vs f32 (and PyTorch), fused vs eager elementwise, softmax, plan replay (EMILY_BENCH_CORE=fused: only the fused programs).
    Core,
    /// Fused vs composed transformer kernels.
    Kernels,
    /// Quantized-weight kernels: decode GEMV bandwidth and prefill GEMM per
    /// format, and per format at Gemma 3 / Qwen2.5 shapes on 4 KiB and huge
    /// pages (EMILY_BENCH_QUANT=models: only those).
    Quant,
    /// Whisper transcription (f32, auto, int8, beam 5) vs faster-whisper and
    /// whisper.cpp: tiny.en and base, JFK and 5 minutes, 1 and 2 threads
    /// (EMILY_BENCH_WHISPER_{MODELS,INPUTS,THREADS,RUNS} narrow it).
    Whisper,
    /// Training steps of the digits classifier and the byte LM; compiled vs
    /// eager backward (threads: `--threads`; PyTorch: bench/peers/torch_train.py).
    Train,
    /// LLM prefill and decode tok/s at 1 and 2 threads, base vs fast graphs,
    /// decode floors, and llama.cpp (EMILY_BENCH_LLM_EXACT=1 adds the fast
    /// graph with f32 activations in its quantized products).
    Llm,
    /// `emily serve` under 1, 2, 4, 8 concurrent clients (req/s, latency
    /// percentiles, vs in process), then 10x overload (EMILY_BENCH_SERVE_OVERLOAD_S).
    Serve,
    /// Everything.
    All,
}

/// Runs a suite.
pub fn run(suite: Suite) -> Result<()> {
    println!(
        "threads: {}, isa: {:?}",
        emily_kernels::parallel::num_threads(),
        emily_kernels::simd::isa()
    );
    match suite {
        Suite::Core => core::run(),
        Suite::Kernels => kernels::run(),
        Suite::Quant => quant::run(),
        Suite::Whisper => whisper::run(&crate::default_model_dir(), whisper::runs()?),
        Suite::Train => train::run(),
        Suite::Llm => llm::run(3),
        Suite::Serve => serve::run(),
        Suite::All => {
            core::run()?;
            kernels::run()?;
            quant::run()
        }
    }
}
