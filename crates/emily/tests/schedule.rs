//! The compiled plan runs a product far smaller than its operands (a weight
//! gradient `aᵀ·b`) right after its last operand is produced, not where the
//! trace reached it, with the same results as eager evaluation.

mod common;
use common::*;
use emily::{compile, Tensor};

/// `[long, small]`: `long` a chain over `e = 2x` that the trace visits
/// first, `small = eᵀ·e` (64 × 64 from 512 × 64) visited last.
fn f(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let e = a[0].mul_scalar(2.0)?;
    let mut long = e.add_scalar(1.0)?.matmul(&a[1])?;
    for _ in 0..4 {
        long = long.tanh()?.matmul(&a[1])?;
    }
    let small = e.transpose(0, 1)?.matmul(&e)?;
    Ok(vec![long, small])
}

#[test]
fn a_shrinking_product_runs_right_after_its_operand() {
    let a = [randn(&[512, 64], 1).0, randn(&[64, 64], 2).0];
    let compiled = compile(f);
    let plan = compiled.plan(&a).unwrap();
    let steps: Vec<String> = plan.describe().lines().map(str::to_string).collect();
    let at = steps
        .iter()
        .position(|s| s.contains("matmul aT [64, 64]"))
        .unwrap_or_else(|| panic!("no aT product in\n{}", steps.join("\n")));
    // Its operand `e` is the step just before it.
    let operand = steps[at - 1].split(' ').next().unwrap().to_string();
    assert!(
        steps[at].ends_with(&format!("<- {operand} {operand}")),
        "the product does not follow its operand:\n{}",
        steps.join("\n")
    );
    let got = compiled.call(&a).unwrap();
    for (g, w) in got.iter().zip(&f(&a).unwrap()) {
        assert_eq!(g.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
    }
}
