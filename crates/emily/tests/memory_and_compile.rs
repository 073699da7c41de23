//! eval frees ancestry; compiled plans agree with eager evaluation.

mod common;
use common::*;
use emily::{compile, memory, DType, Tensor};
use proptest::prelude::*;

#[test]
fn eval_loop_keeps_memory_flat() {
    let mut x = Tensor::zeros(&[256, 256], DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    for _ in 0..10 {
        x = x.add_scalar(1.0).unwrap().eval().unwrap();
    }
    let before = memory::stats();
    for _ in 0..1000 {
        x = x.add_scalar(1.0).unwrap().eval().unwrap();
    }
    let after = memory::stats();
    assert_eq!(x.to_vec::<f32>().unwrap()[0], 1010.0);
    // Other tests run in parallel threads; allow a little slack but no growth per step.
    assert!(
        after.active_bytes <= before.active_bytes + (4 << 20),
        "{before:?} -> {after:?}"
    );
}

#[test]
fn fused_chain_matches_eager_bitwise() {
    let (x, _) = randn(&[3, 1000], 1);
    let (w, _) = randn(&[1000], 2);
    let (b, _) = randn(&[3, 1], 3);
    let f = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
        let y = xs[0].mul(&xs[1])?.add(&xs[2])?.gelu()?;
        let z = y.tanh()?.mul_scalar(0.5)?.add(&xs[0])?.exp()?;
        Ok(vec![z, y])
    };
    let eager = f(&[x.clone(), w.clone(), b.clone()]).unwrap();
    let c = compile(f);
    let plan = c.plan(&[x.clone(), w.clone(), b.clone()]).unwrap();
    assert!(
        plan.num_steps() <= 2,
        "chain fused into {} kernels",
        plan.num_steps()
    );
    let got = c.call(&[x, w, b]).unwrap();
    for (g, e) in got.iter().zip(&eager) {
        assert_eq!(g.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
    }
}

#[test]
fn compile_caches_by_signature_and_captures_constants() {
    let w = Tensor::randn(&[8], 0.0, 1.0, 4, DType::F32).unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let c = compile(|xs: &[Tensor]| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(vec![xs[0].mul(&w)?.sum(&[-1], false)?])
    });
    let a = Tensor::ones(&[2, 8], DType::F32).unwrap();
    let r1 = c.call(std::slice::from_ref(&a)).unwrap();
    let r2 = c.call(&[a.mul_scalar(2.0).unwrap()]).unwrap();
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "second call replays"
    );
    let s: f32 = w.sum(&[], false).unwrap().to_scalar().unwrap();
    assert!((r1[0].to_vec::<f32>().unwrap()[0] - s).abs() < 1e-5);
    assert!((r2[0].to_vec::<f32>().unwrap()[0] - 2.0 * s).abs() < 1e-5);
    c.call(&[Tensor::ones(&[3, 8], DType::F32).unwrap()])
        .unwrap();
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "new shape retraces"
    );
    let e = c
        .call(&[Tensor::ones(&[3, 7], DType::F32).unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("broadcast"), "{e}");
}

#[test]
fn reading_data_while_tracing_is_an_error() {
    let c = compile(|xs: &[Tensor]| {
        let _ = xs[0].to_vec::<f32>()?;
        Ok(vec![xs[0].clone()])
    });
    assert!(c.call(&[Tensor::ones(&[2], DType::F32).unwrap()]).is_err());
}

#[derive(Clone, Debug)]
enum Step {
    Unary(u8),
    BinaryWithInput(u8, usize),
    BinaryWithRow(u8),
    Reduce(bool),
    Scalar(u8, f32),
}

fn apply(t: &Tensor, s: &Step, inputs: &[Tensor], row: &Tensor) -> emily::Result<Tensor> {
    use emily::ops::{BinaryOp::*, UnaryOp::*};
    let un = [Neg, Abs, Tanh, Sigmoid, GeluErf, Silu, Sin, Square];
    let bin = [Add, Sub, Mul, Maximum, Minimum];
    Ok(match s {
        Step::Unary(u) => t.unary(un[*u as usize % un.len()])?,
        Step::BinaryWithInput(b, i) => {
            t.binary(bin[*b as usize % bin.len()], &inputs[i % inputs.len()])?
        }
        Step::BinaryWithRow(b) => t.binary(bin[*b as usize % bin.len()], row)?,
        Step::Reduce(mean) => {
            let r = if *mean {
                t.mean(&[-1], true)?
            } else {
                t.max(&[-1], true)?
            };
            t.sub(&r)?
        }
        Step::Scalar(b, v) => t.binary_scalar(bin[*b as usize % bin.len()], *v as f64)?,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<u8>().prop_map(Step::Unary),
        (any::<u8>(), 0usize..3).prop_map(|(b, i)| Step::BinaryWithInput(b, i)),
        any::<u8>().prop_map(Step::BinaryWithRow),
        any::<bool>().prop_map(Step::Reduce),
        (any::<u8>(), -2.0f32..2.0).prop_map(|(b, v)| Step::Scalar(b, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn compiled_equals_eager(steps in proptest::collection::vec(step(), 1..24), rows in 1usize..9, cols in 1usize..300, seed in 0u64..1000) {
        let inputs: Vec<Tensor> = (0..3).map(|i| Tensor::randn(&[rows, cols], 0.0, 1.0, seed + i, DType::F32).unwrap()).collect();
        let row = Tensor::randn(&[cols], 0.0, 1.0, seed + 9, DType::F32).unwrap();
        let f = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
            let mut t = xs[0].clone();
            for s in &steps {
                t = apply(&t, s, &xs[..3], &xs[3])?;
            }
            Ok(vec![t])
        };
        let mut args = inputs.clone();
        args.push(row);
        let eager = f(&args).unwrap()[0].to_vec::<f32>().unwrap();
        let compiled = compile(f).call(&args).unwrap()[0].to_vec::<f32>().unwrap();
        let same = eager.iter().zip(&compiled).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        prop_assert!(same, "compiled differs from eager");
    }
}

#[test]
fn owned_arguments_are_updated_in_place() {
    let c = compile(|xs: &[Tensor]| Ok(vec![xs[0].slice_update(&xs[1], &xs[2], 0)?]));
    let cache = Tensor::zeros(&[64, 4], DType::F32).unwrap().eval().unwrap();
    let upd = Tensor::ones(&[1, 4], DType::F32).unwrap();
    let off = Tensor::from_slice(&[5i64], &[1]).unwrap();
    // Warm the plan, then check the buffer identity survives a call.
    let cache = c
        .call_owned(vec![cache, upd.clone(), off.clone()])
        .unwrap()
        .remove(0);
    let before = cache.array().unwrap().buffer_id();
    let cache = c.call_owned(vec![cache, upd, off]).unwrap().remove(0);
    assert_eq!(
        cache.array().unwrap().buffer_id(),
        before,
        "cache updated in place"
    );
    assert_eq!(cache.to_vec::<f32>().unwrap()[20..24], [1.0; 4]);
}

#[test]
fn shared_cheap_values_are_recomputed_and_broadcasts_read_through() {
    let (x, _) = randn(&[5, 77], 11);
    let (y, _) = randn(&[5, 77], 12);
    let (r, _) = randn(&[5, 1], 13);
    let f = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
        let p = xs[0].mul(&xs[1])?; // cheap, read by both outputs
        let e = xs[0].exp()?; // not cheap: stays one kernel
        let rb = xs[2].broadcast_to(&[5, 77])?;
        let a = p.add(&e)?.tanh()?.mul(&rb)?;
        let b = p.sub(&e)?.mul(&xs[1])?;
        Ok(vec![a, b])
    };
    let args = [x, y, r];
    let eager = f(&args).unwrap();
    let c = compile(f);
    let plan = c.plan(&args).unwrap();
    // One fused kernel writing both outputs: exp, read by both chains, joins
    // them (computed once in a register, not written out and read back),
    // x·y is computed once, and r is read through the broadcast.
    assert_eq!(plan.num_steps(), 1, "{}", plan.describe());
    assert_eq!(plan.num_extra_outputs(), 1);
    assert!(plan
        .op_frequencies()
        .iter()
        .all(|(op, _)| *op != "broadcast"));
    assert_eq!(plan.num_traced_ops(), 8);
    let got = c.call(&args).unwrap();
    for (g, e) in got.iter().zip(&eager) {
        assert_eq!(g.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
    }
}

#[test]
fn a_value_read_only_inside_one_group_is_computed_there_once() {
    let (x, _) = randn(&[7, 77], 21);
    let (g, _) = randn(&[7, 77], 22);
    // SiLU's gradient shape: s = sigmoid(x) read three times, all by one chain.
    let f = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
        let s = xs[0].sigmoid()?;
        let one_minus = s.neg()?.add_scalar(1.0)?;
        let d = s.add(&xs[0].mul(&s)?.mul(&one_minus)?)?;
        Ok(vec![xs[1].mul(&d)?])
    };
    // The same sigmoid also read by a second output's chain: both chains
    // become one program writing both outputs.
    let f2 = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
        let s = xs[0].sigmoid()?;
        let d = s.add(&xs[0].mul(&s)?)?;
        Ok(vec![xs[1].mul(&d)?, s.exp()?])
    };
    let args = [x, g];
    for (f, steps) in [
        (&f as &dyn Fn(&[Tensor]) -> emily::Result<Vec<Tensor>>, 1),
        (&f2, 1),
    ] {
        let eager = f(&args).unwrap();
        let c = compile(f);
        let plan = c.plan(&args).unwrap();
        assert_eq!(plan.num_steps(), steps, "{:?}", plan.op_frequencies());
        let got = c.call(&args).unwrap();
        for (g, e) in got.iter().zip(&eager) {
            assert_eq!(g.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
        }
    }
}

#[test]
fn large_fills_are_filled_at_run_time_not_kept_as_plan_constants() {
    // A gather's gradient: zeros of the gathered tensor's shape, the
    // cotangent scattered into them. The 1 MiB of zeros stays a run-time
    // fill (which the scatter updates in place), while a small fill folds.
    let f = |xs: &[Tensor]| {
        let big = Tensor::zeros(&[256, 1024], DType::F32)?.scatter_add(&xs[1], &xs[0], 0)?;
        let small = Tensor::full(&[7], 0.5, DType::F32, xs[0].device())?.add_scalar(1.0)?;
        Ok(vec![big, small])
    };
    let upd = Tensor::randn(&[77, 1024], 0.0, 1.0, 3, DType::F32).unwrap();
    let idx = Tensor::from_vec((0..77i64).map(|i| i * 37 % 256).collect(), &[77]).unwrap();
    let c = compile(f);
    let args = [upd, idx];
    let plan = c.plan(&args).unwrap();
    assert!(plan.bytes() < 64 << 10, "plan keeps {} bytes", plan.bytes());
    for _ in 0..2 {
        let got = c.call(&args).unwrap();
        let want = f(&args).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
        }
    }
}
