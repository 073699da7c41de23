//! The plan cache of a compiled function stays within its limits; evicted
//! plans trace again and give the same results; `memory::stats` reports the
//! cached plans. (One test: the stats are process-wide.)

use std::sync::atomic::{AtomicUsize, Ordering};

use emily::{compile_with, memory, CompileOptions, DType, PlanCacheLimits, Result, Tensor};

const COLS: usize = 256;

/// `x * w + ramp`, where `ramp` (rows × COLS f32) is folded into a constant
/// the plan owns: each signature's plan costs `rows` KiB.
fn f(xs: &[Tensor], w: &Tensor) -> Result<Vec<Tensor>> {
    let ramp = Tensor::arange(xs[0].numel(), DType::F32)?
        .mul_scalar(1e-3)?
        .reshape_to(xs[0].shape())?;
    Ok(vec![xs[0].mul(w)?.add(&ramp)?.sum(&[-1], false)?])
}

fn input(rows: usize) -> Tensor {
    Tensor::randn(&[rows, COLS], 0.0, 1.0, rows as u64, DType::F32)
        .unwrap()
        .eval()
        .unwrap()
}

#[test]
fn plan_cache_is_bounded_and_evicted_plans_retrace() {
    let w = Tensor::randn(&[COLS], 0.0, 1.0, 99, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let traces = AtomicUsize::new(0);
    let limits = PlanCacheLimits {
        max_plans: 8,
        max_bytes: 24 << 10,
    };
    let options = CompileOptions {
        plan_cache: limits,
        ..Default::default()
    };
    let wc = w.clone();
    let c = compile_with(
        |xs: &[Tensor]| {
            traces.fetch_add(1, Ordering::Relaxed);
            f(xs, &wc)
        },
        options,
    );
    let check = |rows: usize| {
        let x = input(rows);
        let got = c.call(std::slice::from_ref(&x)).unwrap()[0]
            .to_vec::<f32>()
            .unwrap();
        let want = f(&[x], &w).unwrap()[0].to_vec::<f32>().unwrap();
        assert_eq!(got, want, "rows {rows}");
    };
    for rows in 1..=20 {
        check(rows);
        let (n, bytes) = (c.cached_plans(), c.cached_plan_bytes());
        assert!(n <= limits.max_plans, "{n} plans");
        assert!(
            bytes <= limits.max_bytes || n == 1,
            "{bytes} bytes in {n} plans"
        );
        // A plan holds its folded ramp, not the captured weights.
        assert!(bytes >= rows * COLS * 4, "{bytes} bytes");
        let s = memory::stats();
        assert_eq!((s.plan_cache_entries, s.plan_cache_bytes), (n, bytes));
    }
    assert_eq!(traces.load(Ordering::Relaxed), 20);
    // The most recent signature replays; the first was evicted and traces again.
    check(20);
    assert_eq!(traces.load(Ordering::Relaxed), 20);
    check(1);
    assert_eq!(traces.load(Ordering::Relaxed), 21);
    // A plan bigger than the whole budget is still kept (alone).
    check(100);
    assert_eq!(c.cached_plans(), 1);
    check(100);
    assert_eq!(traces.load(Ordering::Relaxed), 22);
    drop(c);
    let s = memory::stats();
    assert_eq!((s.plan_cache_entries, s.plan_cache_bytes), (0, 0));
}
