//! The byte LM's fused elementwise programs at its training shapes (B16 ×
//! T64, width 64, SwiGLU width 172, 256 byte logits), each compiled into one
//! fused kernel and evaluated eagerly op by op, on warm inputs: µs per call,
//! the ratio, and the fused kernel's traffic in GB/s against the copy floor
//! (inputs read once, output written once). Then its programs with several
//! outputs (one pass writing each) against the same outputs compiled one
//! by one (a pass each, as plans ran them before multi-output programs) and
//! eagerly.

use anyhow::{ensure, Result};
use emily::{compile, DType, Tensor};

use super::timer::median_secs;

/// A named program over its argument shapes.
struct Program {
    name: &'static str,
    shapes: &'static [&'static [usize]],
    f: fn(&[Tensor]) -> emily::Result<Vec<Tensor>>,
}

const PROGRAMS: [Program; 5] = [
    Program {
        name: "RMSNorm scale x*r[row]*w [16,64,64]",
        shapes: &[&[16, 64, 64], &[16, 64, 1], &[64]],
        f: |x| Ok(vec![x[2].mul(&x[0].mul(&x[1])?)?]),
    },
    Program {
        name: "RMSNorm grad sum, 8 inputs [16,64,64]",
        shapes: &[
            &[16, 64, 64],
            &[16, 64, 64],
            &[16, 64, 64],
            &[64],
            &[16, 64, 1],
            &[16, 64, 64],
            &[16, 64, 1],
            &[16, 64, 64],
        ],
        f: |x| {
            let a = x[0].add(&x[1])?.add(&x[2])?.mul(&x[3])?.mul(&x[4])?;
            Ok(vec![x[5].add(&a)?.add(&x[6].mul(&x[7])?)?])
        },
    },
    Program {
        name: "SwiGLU silu(g)*u [16,64,172]",
        shapes: &[&[16, 64, 172], &[16, 64, 172]],
        f: |x| Ok(vec![x[0].silu()?.mul(&x[1])?]),
    },
    Program {
        name: "SwiGLU gate grad [16,64,172]",
        shapes: &[&[16, 64, 172], &[16, 64, 172], &[16, 64, 172]],
        f: |x| {
            let s = x[2].sigmoid()?;
            let t = x[2].mul(&s.neg()?.add_scalar(1.0)?)?.add_scalar(1.0)?;
            Ok(vec![x[0].mul(&x[1])?.mul(&s.mul(&t)?)?])
        },
    },
    Program {
        name: "cross-entropy grad [1024,256]",
        shapes: &[&[1024, 256], &[1024, 1], &[1024, 1], &[1024, 256]],
        f: |x| Ok(vec![x[3].add(&x[2].mul(&x[0].sub(&x[1])?.exp()?)?)?]),
    },
];

const MULTI: [Program; 2] = [
    Program {
        name: "SwiGLU fwd silu(g), silu(g)*u",
        shapes: &[&[16, 64, 172], &[16, 64, 172]],
        f: |x| {
            let a = x[0].silu()?;
            Ok(vec![a.mul(&x[1])?, a])
        },
    },
    Program {
        name: "residual x+y, tanh((x+y)*w) [16,64,64]",
        shapes: &[&[16, 64, 64], &[16, 64, 64], &[64]],
        f: |x| {
            let h = x[0].add(&x[1])?;
            Ok(vec![h.mul(&x[2])?.tanh()?, h])
        },
    },
];

/// Seeded warm inputs of `p`'s shapes (`k` picks the seeds).
fn inputs(p: &Program, k: usize) -> Result<Vec<Tensor>> {
    Ok(p.shapes
        .iter()
        .enumerate()
        .map(|(j, s)| Tensor::randn(s, 0.0, 1.0, (10 * k + j) as u64, DType::F32)?.eval())
        .collect::<emily::Result<_>>()?)
}

/// One row per program with several outputs: µs per call of the one-pass
/// program, of its outputs compiled one by one, and eagerly.
fn run_multi() -> Result<()> {
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>7}",
        "multi-output program (1 call, warm)", "1 pass us", "apart us", "eager us", "apart/1"
    );
    for (k, p) in MULTI.iter().enumerate() {
        let args = inputs(p, 50 + k)?;
        let one = compile(p.f);
        let plan = one.plan(&args)?;
        let outputs = (p.f)(&args)?.len();
        ensure!(
            plan.num_steps() == 1 && plan.num_extra_outputs() + 1 == outputs,
            "{}: expected one kernel writing {outputs} outputs:\n{}",
            p.name,
            plan.describe()
        );
        let f = p.f;
        let apart: Vec<_> = (0..outputs)
            .map(|o| compile(move |x: &[Tensor]| Ok(vec![f(x)?.swap_remove(o)])))
            .collect();
        let secs = median_secs(0.5, || {
            one.call(&args).unwrap();
        });
        let apart_secs = median_secs(0.5, || {
            for c in &apart {
                c.call(&args).unwrap();
            }
        });
        let eager = median_secs(0.5, || {
            for t in (p.f)(&args).unwrap() {
                t.eval().unwrap();
            }
        });
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>10.1} {:>6.2}x",
            p.name,
            secs * 1e6,
            apart_secs * 1e6,
            eager * 1e6,
            apart_secs / secs
        );
    }
    Ok(())
}

/// Prints one row per program.
pub fn run(floor: f64) -> Result<()> {
    println!(
        "{:<40} {:>10} {:>10} {:>7} {:>8} {:>7}",
        "fused program (1 call, warm)", "fused us", "eager us", "ratio", "GB/s", "floor"
    );
    for (k, p) in PROGRAMS.iter().enumerate() {
        let args = inputs(p, k)?;
        let fused = compile(p.f);
        ensure!(
            fused.plan(&args)?.num_steps() == 1,
            "{}: expected one fused kernel",
            p.name
        );
        let eager = median_secs(0.5, || {
            (p.f)(&args).unwrap()[0].clone().eval().unwrap();
        });
        let secs = median_secs(0.5, || {
            fused.call(&args).unwrap();
        });
        let out: usize = p
            .shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .max()
            .unwrap_or(0);
        let read: usize = p.shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        let gbs = 4.0 * (read + out) as f64 / secs / 1e9;
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>6.2}x {:>8.1} {:>6.0}%",
            p.name,
            secs * 1e6,
            eager * 1e6,
            eager / secs,
            gbs,
            100.0 * gbs / floor
        );
    }
    run_multi()
}
