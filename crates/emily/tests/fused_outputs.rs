//! Fused programs with several outputs: an elementwise group whose result
//! feeds another group of its shape and something else (SwiGLU's `silu(g)`
//! read by `silu(g)·u` and by the gradient; a residual add read by a
//! reduction and by the next chain) joins that group, and one program
//! writes every result in one pass; groups that only share inputs stay
//! apart. Each case is checked bit for bit against eager
//! evaluation (the same engine, the same arithmetic), against an f64
//! reference, for the kernel counts the merge promises, at odd sizes, with
//! broadcast operands, in f32 and f64, under every `EMILY_ISA` cap; the
//! reference backend declines such programs and compiles the same results.

mod common;
use common::*;
use emily::compile::Plan;
use emily::{compile, DType, Device, Tensor};

/// How many kernels of op `name` a replay of `plan` runs.
fn count(plan: &Plan, name: &str) -> usize {
    plan.op_frequencies()
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |c| c.1)
}

/// SwiGLU's gradient: `dg = dy·u·silu'(g)`, `du = dy·silu(g)` (silu
/// computed by the forward and read again, as the training graph does),
/// with a per-row scale `r` and a last-axis weight `w` on `dy`.
fn swiglu_grad(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let (g, u, dy, r, w) = (&a[0], &a[1], &a[2], &a[3], &a[4]);
    let dy = dy.mul(r)?.mul(w)?;
    let silu = g.silu()?;
    let s = g.sigmoid()?;
    let ds = s.mul(&g.mul(&s.neg()?.add_scalar(1.0)?)?.add_scalar(1.0)?)?;
    let dg = dy.mul(u)?.mul(&ds)?;
    let du = dy.mul(&silu)?;
    Ok(vec![dg, du, silu.mul(u)?])
}

/// [`swiglu_grad`] in f64 at one element (`v` holds g, u, dy, r, w).
fn swiglu_ref(v: [f64; 5]) -> [f64; 3] {
    let [g, u, dy, r, w] = v;
    let dy = dy * r * w;
    let s = 1.0 / (1.0 + (-g).exp());
    let silu = g * s;
    let ds = s * (g * (1.0 - s) + 1.0);
    [dy * u * ds, dy * silu, silu * u]
}

/// A residual add `h = x + y` read by a row sum (a norm's statistic) and by
/// the next chain: the add joins the chain as an extra output. With
/// `cycle`, the chain reads the sum as well, so the add must not join it
/// (the program would read a value computed from its own output).
fn residual(a: &[Tensor], cycle: bool) -> emily::Result<Vec<Tensor>> {
    let (x, y, w) = (&a[0], &a[1], &a[2]);
    let h = x.add(y)?;
    let m = h.sum(&[-1], true)?;
    let z = h.mul(w)?.tanh()?;
    let z = if cycle { z.add(&m)? } else { z };
    Ok(vec![z, m])
}

fn residual_extra(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    residual(a, false)
}

fn residual_cycle(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    residual(a, true)
}

/// Seeded standard-normal inputs of `shapes` in `dtype` (seeds from `seed`).
fn inputs(shapes: &[Vec<usize>], seed: u64, dtype: DType) -> Vec<Tensor> {
    shapes
        .iter()
        .enumerate()
        .map(|(j, s)| {
            randn(s, seed + j as u64)
                .0
                .cast(dtype)
                .unwrap()
                .eval()
                .unwrap()
        })
        .collect()
}

/// Shapes (rows, columns): the odd sizes 1, 7, 77, 1000 on either axis.
const SHAPES: [(usize, usize); 7] = [
    (1, 1),
    (1, 7),
    (7, 77),
    (3, 1000),
    (77, 7),
    (1000, 1),
    (16, 172),
];

fn check_swiglu(dtype: DType) {
    let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
    for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
        let seed = 100 + 10 * k as u64;
        let shapes = [
            vec![2, rows, cols],
            vec![2, rows, cols],
            vec![2, rows, cols],
            vec![2, rows, 1],
            vec![cols],
        ];
        let args = inputs(&shapes, seed, dtype);
        let values: Vec<Vec<f64>> = args.iter().map(|t| t.to_f64_vec().unwrap()).collect();
        let compiled = compile(swiglu_grad);
        let plan = compiled.plan(&args).unwrap();
        // silu(g) joins both its readers (du and silu(g)·u: one pass, two
        // results) and dg stays apart: two kernels (f32; the CPU fuses no
        // f64 chain).
        if dtype == DType::F32 {
            assert!(
                plan.num_extra_outputs() >= 1,
                "{rows}x{cols}: no merge {:?}",
                plan.op_frequencies()
            );
            assert!(
                plan.num_steps() <= 2,
                "{rows}x{cols}: {} kernels",
                plan.num_steps()
            );
        }
        let got = compiled.call(&args).unwrap();
        let eager = swiglu_grad(&args).unwrap();
        let out = [2, rows, cols];
        for (o, (g, e)) in got.iter().zip(&eager).enumerate() {
            let what = format!("swiglu {dtype} {rows}x{cols} output {o}");
            let (g, e) = (g.to_f64_vec().unwrap(), e.to_f64_vec().unwrap());
            for (i, (a, b)) in g.iter().zip(&e).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{what}[{i}] vs eager");
            }
            let want: Vec<f64> = indices(&out)
                .iter()
                .map(|i| {
                    let at = |j: usize| bcast_at(&values[j], &shapes[j], i);
                    swiglu_ref([at(0), at(1), at(2), at(3), at(4)])[o]
                })
                .collect();
            assert_close(&g, &want, tol, tol, &what);
        }
    }
}

fn check_residual(dtype: DType) {
    let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
    for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
        let seed = 500 + 10 * k as u64;
        let shapes = [vec![rows, cols], vec![rows, cols], vec![cols]];
        let args = inputs(&shapes, seed, dtype);
        let v: Vec<Vec<f64>> = args.iter().map(|t| t.to_f64_vec().unwrap()).collect();
        let h = |r: usize, c: usize| v[0][r * cols + c] + v[1][r * cols + c];
        let sums: Vec<f64> = (0..rows)
            .map(|r| (0..cols).map(|c| h(r, c)).sum())
            .collect();
        for (cycle, f) in [
            (
                false,
                residual_extra as fn(&[Tensor]) -> emily::Result<Vec<Tensor>>,
            ),
            (true, residual_cycle),
        ] {
            let what = format!("residual (cycle {cycle}) {dtype} {rows}x{cols}");
            let got = compile(f).call(&args).unwrap();
            let eager = f(&args).unwrap();
            for (o, (g, e)) in got.iter().zip(&eager).enumerate() {
                let (g, e) = (g.to_f64_vec().unwrap(), e.to_f64_vec().unwrap());
                for (i, (a, b)) in g.iter().zip(&e).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{what} output {o}[{i}] vs eager");
                }
            }
            let m = got[1].to_f64_vec().unwrap();
            assert_close(&m, &sums, tol * cols as f64, tol, &what);
            let want: Vec<f64> = indices(&[rows, cols])
                .iter()
                .map(|i| {
                    let z = (h(i[0], i[1]) * v[2][i[1]]).tanh();
                    if cycle {
                        z + m[i[0]]
                    } else {
                        z
                    }
                })
                .collect();
            assert_close(&got[0].to_f64_vec().unwrap(), &want, tol, tol, &what);
        }
    }
}

#[test]
fn multi_output_programs_on_every_isa() {
    on_every_isa(
        "multi_output_programs_on_every_isa",
        "EMILY_FUSED_OUTPUTS_ISA_CHILD",
        &["baseline", "avx2", ""],
        || {
            for dtype in [DType::F32, DType::F64] {
                check_swiglu(dtype);
                check_residual(dtype);
            }
        },
    );
}

/// The residual add joins the chain that reads it as an extra output (one
/// pass writes `h` for the sum and the chain's result); when the chain reads
/// the sum too, merging would make a cycle, and the add stays apart.
#[test]
fn a_shared_result_becomes_an_extra_output_unless_that_makes_a_cycle() {
    let args = inputs(&[vec![5, 77], vec![5, 77], vec![77]], 40, DType::F32);
    let plan = compile(residual_extra).plan(&args).unwrap();
    assert_eq!(plan.num_extra_outputs(), 1, "{:?}", plan.op_frequencies());
    assert_eq!(plan.num_steps(), 2, "{:?}", plan.op_frequencies());
    let plan = compile(residual_cycle).plan(&args).unwrap();
    assert_eq!(plan.num_extra_outputs(), 0, "{:?}", plan.op_frequencies());
    assert_eq!(plan.num_steps(), 3, "{:?}", plan.op_frequencies());
}

/// Groups that share no result stay separate programs, whether they share
/// inputs or not.
#[test]
fn groups_sharing_only_inputs_are_not_merged() {
    let f = |a: &[Tensor]| -> emily::Result<Vec<Tensor>> {
        Ok(vec![
            a[0].exp()?.mul(&a[0])?,
            a[1].tanh()?.add(&a[1])?,
            a[0].sin()?.mul(&a[1])?,
        ])
    };
    let args = [randn(&[7, 77], 1).0, randn(&[7, 77], 2).0];
    let plan = compile(f).plan(&args).unwrap();
    assert_eq!(count(&plan, "fused"), 3, "{}", plan.describe());
    assert_eq!(plan.num_extra_outputs(), 0);
}

/// The reference backend runs one output per program: it compiles the same
/// function without extra outputs, to the same values within round-off.
#[test]
fn the_reference_backend_declines_extra_outputs() {
    let shapes = [
        vec![2, 7, 77],
        vec![2, 7, 77],
        vec![2, 7, 77],
        vec![2, 7, 1],
        vec![77],
    ];
    let cpu = inputs(&shapes, 70, DType::F32);
    let reference: Vec<Tensor> = cpu
        .iter()
        .map(|t| t.to_device(Device::Reference).unwrap())
        .collect();
    let compiled = compile(swiglu_grad);
    let plan = compiled.plan(&reference).unwrap();
    assert_eq!(plan.num_extra_outputs(), 0);
    let on_ref = compiled.call(&reference).unwrap();
    let on_cpu = compiled.call(&cpu).unwrap();
    for (o, (r, c)) in on_ref.iter().zip(&on_cpu).enumerate() {
        assert_close(
            &c.to_f64_vec().unwrap(),
            &r.to_f64_vec().unwrap(),
            1e-5,
            1e-5,
            &format!("output {o}"),
        );
    }
}
