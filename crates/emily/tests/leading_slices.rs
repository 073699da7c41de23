//! Slices of a value's leading elements: in a compiled plan, the slice that
//! is the last reader of a buffer nobody else holds takes that buffer
//! instead of copying (when it keeps at least half of it), and the other
//! slices of a fast op's flat output are ordered before the leading one so
//! it is that last reader. Every case returns the same values as eager
//! evaluation, bit for bit (a slice computes nothing).

use emily::{compile, grad, DType, Result, Tensor};

/// Seeded normal values of `shape` (evaluated).
fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, seed, DType::F32)
        .unwrap()
        .eval()
        .unwrap()
}

/// Calls `f` compiled with `x` owned (warm plan), and checks the result
/// against eager: returns whether the result took `x`'s buffer.
fn took_buffer(f: fn(&[Tensor]) -> Result<Vec<Tensor>>, shape: &[usize]) -> bool {
    let c = compile(f);
    let x = randn(shape, 7);
    let want = f(std::slice::from_ref(&x)).unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    c.call(std::slice::from_ref(&x)).unwrap(); // warm the plan
    let x = randn(shape, 7);
    let id = x.array().unwrap().buffer_id();
    let got = c.call_owned(vec![x]).unwrap().remove(0);
    let same = got.array().unwrap().buffer_id() == id;
    let got = got.to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len(), "{shape:?}");
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a.to_bits(), b.to_bits(), "{shape:?}");
    }
    same
}

#[test]
fn a_leading_slice_of_an_owned_buffer_takes_it() {
    // 1-D prefixes: at least half kept takes the buffer, less copies.
    assert!(took_buffer(
        |x| Ok(vec![x[0].slice(&[0], &[700], &[1])?]),
        &[1000]
    ));
    assert!(took_buffer(
        |x| Ok(vec![x[0].slice(&[0], &[500], &[1])?]),
        &[1000]
    ));
    assert!(!took_buffer(
        |x| Ok(vec![x[0].slice(&[0], &[499], &[1])?]),
        &[1000]
    ));
    assert!(took_buffer(
        |x| Ok(vec![x[0].slice(&[0], &[7], &[1])?]),
        &[7]
    ));
    // Leading rows of a matrix (whole rows) are a prefix; leading columns,
    // a strided slice or one not at the start are not.
    assert!(took_buffer(
        |x| Ok(vec![x[0].slice(&[0, 0], &[60, 77], &[1, 1])?]),
        &[77, 77]
    ));
    assert!(!took_buffer(
        |x| Ok(vec![x[0].slice(&[0, 0], &[77, 60], &[1, 1])?]),
        &[77, 77]
    ));
    assert!(!took_buffer(
        |x| Ok(vec![x[0].slice(&[0], &[1000], &[2])?]),
        &[1000]
    ));
    assert!(!took_buffer(
        |x| Ok(vec![x[0].slice(&[1], &[1000], &[1])?]),
        &[1000]
    ));
    // A size-1 axis may have any stride: (1, 7) out of (3, 7).
    assert!(!took_buffer(
        |x| Ok(vec![x[0].slice(&[0, 0], &[1, 7], &[1, 1])?]),
        &[3, 7]
    ));
    assert!(took_buffer(
        |x| Ok(vec![x[0].slice(&[0, 0], &[2, 7], &[1, 1])?]),
        &[3, 7]
    ));
}

#[test]
fn a_buffer_someone_else_holds_is_copied_not_taken() {
    let c = compile(|x: &[Tensor]| Ok(vec![x[0].slice(&[0], &[900], &[1])?]));
    let x = randn(&[1000], 3);
    let before = x.to_vec::<f32>().unwrap();
    for _ in 0..2 {
        let y = c.call(std::slice::from_ref(&x)).unwrap().remove(0);
        assert_ne!(
            y.array().unwrap().buffer_id(),
            x.array().unwrap().buffer_id()
        );
        assert_eq!(y.to_vec::<f32>().unwrap(), before[..900]);
    }
    assert_eq!(x.to_vec::<f32>().unwrap(), before, "argument unchanged");
    // Eager slicing never takes the source.
    let y = x.slice(&[0], &[900], &[1]).unwrap().eval().unwrap();
    assert_ne!(
        y.array().unwrap().buffer_id(),
        x.array().unwrap().buffer_id()
    );
}

/// The loss `Σ (x + rms_norm(x)·w) ∘ c`, then its gradients `[dx, dw]`
/// (the norm composed, so the compiler fuses its gradient into one kernel
/// whose flat output holds dx then dw).
fn norm_grads(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let loss = |v: &[Tensor]| {
        let r = v[0]
            .square()?
            .mean(&[-1], true)?
            .add_scalar(1e-5)?
            .rsqrt()?;
        let y = v[1].mul(&v[0].mul(&r)?)?;
        Ok(vec![v[0].add(&y)?.mul(&v[2])?.sum(&[], false)?])
    };
    let (values, grads) = grad::value_and_grad(loss, &[0, 1])(a)?;
    Ok(values.into_iter().chain(grads).collect())
}

#[test]
fn the_leading_slice_of_a_fused_gradient_reads_it_last() {
    for (rows, cols) in [(1, 1), (7, 7), (77, 77), (3, 1000)] {
        let args = [
            randn(&[rows, cols], 1),
            randn(&[cols], 2),
            randn(&[rows, cols], 3),
        ];
        let c = compile(norm_grads);
        let plan = c.plan(&args).unwrap();
        let text = plan.describe();
        assert!(
            text.contains("rms_norm_grad"),
            "{rows}x{cols}: not fused:\n{text}"
        );
        let slices: Vec<&str> = text.lines().filter(|l| l.contains(" slice ")).collect();
        assert_eq!(slices.len(), 2, "{rows}x{cols}:\n{text}");
        assert!(
            slices[0].contains(&format!("slice [{cols}]")),
            "{rows}x{cols}: the weight gradient is sliced first:\n{text}"
        );
        assert!(
            slices[1].contains(&format!("slice [{}]", rows * cols)),
            "{text}"
        );
        let got = c.call(&args).unwrap();
        let eager = norm_grads(&args).unwrap();
        for (g, e) in got.iter().zip(&eager) {
            let (g, e) = (g.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
            let scale = e.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (a, b) in g.iter().zip(&e) {
                assert!((a - b).abs() <= 1e-5 * scale, "{rows}x{cols}: {a} vs {b}");
            }
        }
    }
}
