//! The bf16 and int8 matrix engines next to f32, at the Whisper encoder
//! shapes and LLM prefill shapes (m × n × k, weights n × k as `Linear`
//! stores them), on every engine this CPU runs, then PyTorch's f32, bf16 and
//! dynamic-int8 products on the same shapes (bench/peers/torch_gemm.py in
//! bench/peers/.venv, when set up). Each engine's column multiplies
//! operands already in its type, as its products run inside a network: the
//! bf16 columns bf16 activations, as PyTorch's bf16 `matmul` does, and the
//! int8 columns activation rows quantized beforehand (`QuantizedRows`, which
//! a layer's q/k/v products share), dequantized with both scales into f32.
//! The forms that convert f32 activations per call — bf16 rounding A while
//! packing it, int8 quantizing it, as PyTorch's dynamic int8 does — are
//! printed beside them. Our products are timed from inside the thread pool
//! with its other threads kept awake, as a compiled plan runs them (the
//! replay runs on the pool: `Plan::run_arrays`); called from the main
//! thread, each product would also pay handing the work to sleeping pool
//! threads and waking the caller (PyTorch's caller is one of its OpenMP
//! threads, which spin between calls).

use anyhow::Result;
use emily::{DType, Tensor};
use emily_kernels::gemm::{
    gemm_bf16_on, gemm_int8_on, gemm_int8_quantized_then, Engine, MatRef, PackedBf16, PackedInt8,
    Precision, QuantizedRows,
};

use std::path::Path;

use super::encoder_rate::{self, Peaks, Reference, TINY_EN};
use super::floor::gemm_f32;
use super::timer::median_secs;

/// [`median_secs`] of `f` run on a thread of the pool with the pool's
/// other threads kept awake, as a compiled plan's replay runs its products.
fn pooled_median_secs(f: impl FnMut() + Send) -> f64 {
    emily_kernels::parallel::pool()
        .install(|| emily_kernels::awake_workers::with_workers_awake(|| median_secs(1.0, f)))
}

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

/// One shape's GFLOP/s: ours (f32, best bf16 engine, best int8 engine) and,
/// once the peer has run, PyTorch's (f32, bf16, int8).
struct Row {
    shape: (usize, usize, usize),
    ours: [f64; 3],
    torch: Option<[f64; 3]>,
}

/// Prints one shape's row (every engine) and returns its figures.
fn shape_row(m: usize, n: usize, k: usize) -> Result<Row> {
    let a = Tensor::randn(&[m, k], 0.0, 1.0, 1, DType::F32)?.eval()?;
    let w = Tensor::randn(&[n, k], 0.0, 0.05, 2, DType::F32)?.eval()?;
    let (av, wv) = (a.to_vec::<f32>()?, w.to_vec::<f32>()?);
    // f32 reference: the gemm crate on a (k, n) copy of the weights.
    let wt: Vec<f32> = (0..k * n).map(|i| wv[(i % n) * k + i / n]).collect();
    // The output on a cache-line boundary, as every tensor buffer is (and
    // PyTorch's): from the global allocator it sits 16 bytes off one, which
    // costs the tile unit's row stores 20 % on the Xeon with AMX.
    let mut cbuf = vec![0f32; m * n + 16];
    let off = cbuf.as_ptr().align_offset(64);
    let c = &mut cbuf[off..off + m * n];
    let flop = 2.0 * (m * n * k) as f64;
    let gf = |s: f64| flop / s / 1e9;
    let f32s = median_secs(1.0, || gemm_f32(m, k, n, &av, &wt, c));
    let view = MatRef::transposed(&wv, k, n);
    let (pb, pi) = (PackedBf16::from_f32(view), PackedInt8::quantize(view));
    // PyTorch's bf16 product takes bf16 operands: so do the bf16 columns
    // (the f32-activation form, rounding A while packing, is printed below).
    let ab: Vec<half::bf16> = av.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let mut line = format!("gemm {m}x{n}x{k}: f32 {:.0}", gf(f32s));
    let mut best = [f64::NAN; 2];
    for (pi_, p) in [Precision::Bf16, Precision::Int8].into_iter().enumerate() {
        for e in Engine::available(p) {
            let rows = (p == Precision::Int8)
                .then(|| QuantizedRows::quantize_on(e, MatRef::row_major(&av, m, k), &pi));
            let s = pooled_median_secs(|| match &rows {
                None => gemm_bf16_on(e, MatRef::row_major(&ab, m, k), &pb, c),
                Some(rows) => gemm_int8_quantized_then(rows, &pi, None, None, c),
            });
            if e == Engine::best(p) {
                best[pi_] = s;
            }
            let name = if p == Precision::Bf16 { "bf16" } else { "int8" };
            line += &format!(" | {name}/{} {:.0}", e.name(), gf(s));
        }
    }
    // The per-call forms: the f32 activations quantized / rounded inside each call.
    let a32 = MatRef::row_major(&av, m, k);
    let int8_per_call =
        pooled_median_secs(|| gemm_int8_on(Engine::best(Precision::Int8), a32, &pi, c));
    let mixed = pooled_median_secs(|| gemm_bf16_on(Engine::best(Precision::Bf16), a32, &pb, c));
    // Through the op catalogue (packed weights cached after the first call).
    let wb = w.cast(DType::BF16)?.eval()?;
    let op_bf16 = median_secs(1.0, || {
        a.matmul(&wb.t().unwrap()).unwrap().eval().unwrap();
    });
    let op_int8 = median_secs(1.0, || {
        a.matmul_int8(&w.t().unwrap()).unwrap().eval().unwrap();
    });
    // bf16 x bf16 -> bf16, as PyTorch's bf16 `matmul` (its column above).
    let a16 = a.cast(DType::BF16)?.eval()?;
    let op_bf16_bf16 = median_secs(1.0, || {
        a16.matmul(&wb.t().unwrap()).unwrap().eval().unwrap();
    });
    println!("{line} GFLOP/s");
    println!(
        "    best: bf16 {:.2}x f32, int8 {:.2}x bf16; with f32 A converted per call: bf16 (rounded while packing) {:.0}, int8 (quantized) {:.0} ({:.2}x); emily ops: matmul f32 x bf16 {:.0}, bf16 x bf16 -> bf16 {:.0}, matmul_int8 {:.0} GFLOP/s",
        f32s / best[0],
        best[0] / best[1],
        gf(mixed),
        gf(int8_per_call),
        mixed / int8_per_call,
        gf(op_bf16),
        gf(op_bf16_bf16),
        gf(op_int8)
    );
    Ok(Row {
        shape: (m, n, k),
        ours: [gf(f32s), gf(best[0]), gf(best[1])],
        torch: None,
    })
}

/// The Whisper encoder's self-attention core (tiny.en: 6 heads, 1500
/// positions, head dim 64) through the fused kernel in f32, in bf16 (bf16
/// dot products where the CPU has them), in bf16 with int8 scores
/// (`SdpaParams::int8_scores`: `vpdpbusd` where the CPU has it) and with
/// int8 values too (`int8_values`, as the encoder runs under
/// `auto`/`int8-encoder`), GFLOP/s side by side.
fn attention_row() {
    use emily_kernels::fast::{sdpa_bf16, sdpa_f32, SdpaParams};
    let (heads, t, d) = (6, 1500, 64);
    let p = SdpaParams::new(1, heads, heads, t, t, d);
    let n = heads * t * d;
    let data = |seed: u64| -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    };
    let (q, k, v) = (data(1), data(2), data(3));
    let half = |x: &[f32]| {
        x.iter()
            .map(|&x| half::bf16::from_f32(x))
            .collect::<Vec<_>>()
    };
    let (qb, kb, vb) = (half(&q), half(&k), half(&v));
    let mut out = vec![0f32; n];
    let mut outb = vec![half::bf16::ZERO; n];
    let flop = 4.0 * (heads * t * t * d) as f64;
    let f32s = median_secs(1.0, || sdpa_f32(&q, &k, &v, &mut out, &p));
    let bf16s = median_secs(1.0, || sdpa_bf16(&qb, &kb, &vb, &mut outb, &p));
    let p8 = SdpaParams {
        int8_scores: true,
        ..p
    };
    let scores8 = median_secs(1.0, || sdpa_bf16(&qb, &kb, &vb, &mut outb, &p8));
    let p88 = SdpaParams {
        int8_values: true,
        ..p8
    };
    let both8 = median_secs(1.0, || sdpa_bf16(&qb, &kb, &vb, &mut outb, &p88));
    let gf = |s: f64| flop / s / 1e9;
    println!(
        "attention [1, {heads}, {t}, {d}] (Whisper tiny encoder), GFLOP/s: f32 {:.0}, bf16 {:.0} ({:.2}x f32), int8 scores + bf16 values {:.0} ({:.2}x bf16), int8 scores + int8 values {:.0} ({:.2}x bf16; the int8 types' encoder); {:.1} / {:.1} / {:.1} / {:.1} ms per layer",
        gf(f32s),
        gf(bf16s),
        f32s / bf16s,
        gf(scores8),
        bf16s / scores8,
        gf(both8),
        bf16s / both8,
        f32s * 1e3,
        bf16s * 1e3,
        scores8 * 1e3,
        both8 * 1e3
    );
}

/// The CPU's arithmetic peaks (register-only loops on every thread).
fn peaks() -> Option<Peaks> {
    use emily_kernels::gemm::{peak_ops_per_sec, PeakOp};
    let peak = |op| peak_ops_per_sec(op).map(|x| x / 1e9);
    let (f, b, i) = (
        peak(PeakOp::F32Fma),
        peak(PeakOp::Bf16Dot),
        peak(PeakOp::Int8Dot),
    );
    let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.0}"));
    println!(
        "peaks ({} threads, 512-bit register loops): f32 FMA {} GFLOP/s, bf16 dot {} GFLOP/s, int8 dot {} GOP/s",
        emily_kernels::parallel::num_threads(),
        show(f),
        show(b),
        show(i)
    );
    Some(Peaks {
        f32: f?,
        bf16: b?,
        int8: i?,
    })
}

/// Runs the PyTorch peer, echoing its output, and returns its lines.
fn torch_peer() -> Vec<String> {
    let threads = emily_kernels::parallel::num_threads().to_string();
    super::torch_peer::run("torch_gemm.py", &[threads])
}

/// PyTorch's f32, bf16 and int8 GFLOP/s for `(m, n, k)` from the peer's line
/// `torch MxNxK: f32 X  bf16 Y  int8 Z GFLOP/s`.
fn torch_figures(lines: &[String], (m, n, k): (usize, usize, usize)) -> Option<[f64; 3]> {
    let prefix = format!("torch {m}x{n}x{k}:");
    let line = lines.iter().find(|l| l.starts_with(&prefix))?;
    let words: Vec<&str> = line[prefix.len()..].split_whitespace().collect();
    let value = |name: &str| -> Option<f64> {
        let i = words.iter().position(|w| *w == name)?;
        words.get(i + 1)?.parse().ok()
    };
    Some([value("f32")?, value("bf16")?, value("int8")?])
}

/// The side-by-side table with the ratios.
fn summary(rows: &[Row]) {
    println!(
        "summary, GFLOP/s (best engines; targets: bf16 >= 1.6x our f32 without AMX, \
         >= 0.9x torch bf16 with AMX; int8 >= 1.5x our bf16):"
    );
    println!(
        "  {:<16} {:>7} {:>7} {:>7} {:>10} {:>10} {:>9} {:>10} {:>10}",
        "shape",
        "f32",
        "bf16",
        "int8",
        "torch f32",
        "torch bf16",
        "bf16/f32",
        "int8/bf16",
        "bf16/torch"
    );
    for r in rows {
        let (m, n, k) = r.shape;
        let [f, b, i] = r.ours;
        let (tf, tb) = match r.torch {
            Some([tf, tb, _]) => (format!("{tf:.0}"), format!("{tb:.0}")),
            None => ("-".into(), "-".into()),
        };
        let vs_torch = r
            .torch
            .map_or("-".into(), |[_, tb, _]| format!("{:.2}x", b / tb));
        println!(
            "  {:<16} {f:>7.0} {b:>7.0} {i:>7.0} {tf:>10} {tb:>10} {:>9} {:>10} {vs_torch:>10}",
            format!("{m}x{n}x{k}"),
            format!("{:.2}x", b / f),
            format!("{:.2}x", i / b),
        );
    }
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
    let peaks = peaks();
    let mut rows = Vec::new();
    for (m, n, k) in SHAPES {
        rows.push(shape_row(m, n, k)?);
    }
    attention_row();
    // Issue 11's reference: the best rate our GEMM measured above, per
    // precision (on AMX the register loops' 512-bit peaks are below what
    // the tile unit's products reach, so a floor at them flatters the encoder).
    let best = |i: usize| rows.iter().map(|r| r.ours[i]).fold(f64::NAN, f64::max);
    let gemm_peaks = Peaks {
        f32: best(0),
        bf16: best(1),
        int8: best(2),
    };
    println!(
        "measured GEMM peaks (best of the shapes above): f32 {:.0}, bf16 {:.0} GFLOP/s, int8 {:.0} GOP/s",
        gemm_peaks.f32, gemm_peaks.bf16, gemm_peaks.int8
    );
    let mut refs: Vec<Reference> = peaks
        .map(|peaks| Reference {
            name: "512-bit register-loop peaks",
            peaks,
        })
        .into_iter()
        .collect();
    refs.push(Reference {
        name: "measured GEMM peaks",
        peaks: gemm_peaks,
    });
    encoder_rate::run(
        Path::new("models/whisper-tiny.en"),
        "tiny.en",
        &TINY_EN,
        &refs,
    )?;
    let peer = torch_peer();
    for r in &mut rows {
        r.torch = torch_figures(&peer, r.shape);
    }
    summary(&rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peer_line_of_a_shape() {
        let lines = vec![
            "peer torch 2.9.1, 2 threads".to_string(),
            "torch 128x1536x576: f32   210.5  bf16   380.0  int8   95.2 GFLOP/s".to_string(),
        ];
        assert_eq!(
            torch_figures(&lines, (128, 1536, 576)),
            Some([210.5, 380.0, 95.2])
        );
        assert_eq!(torch_figures(&lines, (1500, 1536, 384)), None);
    }
}
