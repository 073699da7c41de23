//! The bf16 and int8 matrix engines next to f32, at the Whisper encoder
//! shapes and LLM prefill shapes (m × n × k, weights n × k as `Linear`
//! stores them), on every engine this CPU runs, then PyTorch's f32, bf16 and
//! dynamic-int8 products on the same shapes (bench/peers/torch_gemm.py in
//! bench/peers/.venv, when set up).

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use emily::{DType, Tensor};
use emily_kernels::gemm::{
    gemm_bf16_on, gemm_int8_on, Engine, MatRef, PackedBf16, PackedInt8, Precision,
};

use super::floor::gemm_f32;
use super::timer::median_secs;

/// (m, n, k): Whisper MLP up, MLP down, square, LLM prefill (SmolLM-135M
/// MLP up, Qwen2-0.5B MLP up).
const SHAPES: [(usize, usize, usize); 5] = [
    (1500, 1536, 384),
    (1500, 384, 1536),
    (2048, 2048, 2048),
    (128, 1536, 576),
    (128, 4864, 896),
];

/// The CPU's model name and the flags the engines care about.
fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let wanted: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            f.starts_with("amx") || *f == "avx512_bf16" || *f == "avx512_vnni" || *f == "avx_vnni"
        })
        .collect();
    format!("cpu: {} [{}]", field("model name"), wanted.join(" "))
}

/// Prints one shape's row.
fn shape_row(m: usize, n: usize, k: usize) -> Result<()> {
    let a = Tensor::randn(&[m, k], 0.0, 1.0, 1, DType::F32)?.eval()?;
    let w = Tensor::randn(&[n, k], 0.0, 0.05, 2, DType::F32)?.eval()?;
    let (av, wv) = (a.to_vec::<f32>()?, w.to_vec::<f32>()?);
    // f32 reference: the gemm crate on a (k, n) copy of the weights.
    let wt: Vec<f32> = (0..k * n).map(|i| wv[(i % n) * k + i / n]).collect();
    let mut c = vec![0f32; m * n];
    let flop = 2.0 * (m * n * k) as f64;
    let gf = |s: f64| flop / s / 1e9;
    let f32s = median_secs(1.0, || gemm_f32(m, k, n, &av, &wt, &mut c));
    let view = MatRef::transposed(&wv, k, n);
    let (pb, pi) = (PackedBf16::from_f32(view), PackedInt8::quantize(view));
    let mut line = format!("gemm {m}x{n}x{k}: f32 {:.0}", gf(f32s));
    let mut best = [f64::NAN; 2];
    for (pi_, p) in [Precision::Bf16, Precision::Int8].into_iter().enumerate() {
        for e in Engine::available(p) {
            let s = median_secs(1.0, || match p {
                Precision::Bf16 => gemm_bf16_on(e, MatRef::row_major(&av, m, k), &pb, &mut c),
                Precision::Int8 => gemm_int8_on(e, MatRef::row_major(&av, m, k), &pi, &mut c),
            });
            if e == Engine::best(p) {
                best[pi_] = s;
            }
            let name = if p == Precision::Bf16 { "bf16" } else { "int8" };
            line += &format!(" | {name}/{} {:.0}", e.name(), gf(s));
        }
    }
    // Through the op catalogue (packed weights cached after the first call).
    let wb = w.cast(DType::BF16)?.eval()?;
    let op_bf16 = median_secs(1.0, || {
        a.matmul(&wb.t().unwrap()).unwrap().eval().unwrap();
    });
    let op_int8 = median_secs(1.0, || {
        a.matmul_int8(&w.t().unwrap()).unwrap().eval().unwrap();
    });
    println!("{line} GFLOP/s");
    println!(
        "    best: bf16 {:.2}x f32, int8 {:.2}x bf16; emily ops: matmul f32 x bf16 {:.0}, matmul_int8 {:.0} GFLOP/s",
        f32s / best[0],
        best[0] / best[1],
        gf(op_bf16),
        gf(op_int8)
    );
    Ok(())
}

/// Runs the engine rows and the PyTorch peer.
pub fn run() -> Result<()> {
    println!("{}", cpu_line());
    println!(
        "engines: bf16 {}, int8 {} (available bf16 {:?}, int8 {:?}); AMX is used only after Linux grants the tile permission",
        Engine::best(Precision::Bf16).name(),
        Engine::best(Precision::Int8).name(),
        Engine::available(Precision::Bf16),
        Engine::available(Precision::Int8)
    );
    for (m, n, k) in SHAPES {
        shape_row(m, n, k)?;
    }
    let python = Path::new("bench/peers/.venv/bin/python");
    if python.is_file() {
        let st = Command::new(python)
            .arg("bench/peers/torch_gemm.py")
            .arg(emily_kernels::parallel::num_threads().to_string())
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            println!("peer torch: failed");
        }
    } else {
        println!("peer torch: not set up (bash bench/peers/setup-torch-venv.sh)");
    }
    Ok(())
}
