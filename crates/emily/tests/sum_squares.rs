//! A compiled `sum(square(concat(parts)))` (gradient clipping's squared
//! global norm) runs as one kernel reading each part once, equal to a
//! float64 reference and to eager evaluation to round-off.

mod common;
use common::*;
use emily::{compile, Tensor};

fn norm2(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    Ok(vec![Tensor::sum_of_squares(a)?])
}

#[test]
fn squared_global_norm_runs_without_the_concat() {
    let shapes: [&[usize]; 5] = [&[1], &[7, 1], &[77], &[10, 100], &[3, 5, 7]];
    let parts: Vec<(Tensor, Vec<f64>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| randn(s, 40 + i as u64))
        .collect();
    let a: Vec<Tensor> = parts.iter().map(|p| p.0.clone()).collect();
    let want: f64 = parts.iter().flat_map(|p| &p.1).map(|v| v * v).sum();
    let compiled = compile(norm2);
    let plan = compiled.plan(&a).unwrap();
    let freq = plan.op_frequencies();
    let count = |n: &str| freq.iter().find(|f| f.0 == n).map_or(0, |f| f.1);
    assert_eq!(count("sum_squares"), 1, "{freq:?}");
    assert_eq!(
        count("concat") + count("unary") + count("reduce"),
        0,
        "{freq:?}"
    );
    let got = compiled.call(&a).unwrap()[0].to_vec::<f32>().unwrap()[0] as f64;
    let eager = norm2(&a).unwrap()[0].to_vec::<f32>().unwrap()[0] as f64;
    assert!((got - want).abs() <= 1e-6 * want, "{got} vs f64 {want}");
    assert!((got - eager).abs() <= 1e-6 * want, "{got} vs eager {eager}");
}

#[test]
fn a_concat_read_elsewhere_stays() {
    let a = [randn(&[5], 1).0, randn(&[9], 2).0];
    let f = |a: &[Tensor]| -> emily::Result<Vec<Tensor>> {
        let all = Tensor::concat(&[&a[0], &a[1]], 0)?;
        Ok(vec![all.square()?.sum(&[], false)?, all])
    };
    let plan = compile(f).plan(&a).unwrap();
    assert!(plan.op_frequencies().iter().all(|f| f.0 != "sum_squares"));
}
