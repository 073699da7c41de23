//! `conv1d_channels_last`: time-major 1-D convolution. The CPU kernel (bf16
//! weights on the bf16 engine, one GEMM over overlapping input rows plus the
//! zero-padded edge rows) against a float64 reference on the bf16-rounded
//! operands, at odd lengths, channel counts, strides and paddings (edges on
//! one side, both sides or every row); its composed form (transposes around
//! `conv1d`) to round-off; f32 weights fall back to the composed form; bad
//! shapes are errors.

use emily::fast::{composed, conv1d_channels_last};
use emily::{compile, DType, Tensor};

mod grad_common;

use grad_common::{count, max_rel_diff, randn};

/// `x` `(N, L, C)`, `w` `(O, C, K)` → `(N, L', O)` in f64 on the values given.
fn reference(x: &[f32], w: &[f32], dims: [usize; 5], stride: usize, padding: usize) -> Vec<f64> {
    let [n, l, c, o, k] = dims;
    let lout = (l + 2 * padding - k) / stride + 1;
    let mut y = vec![0.0f64; n * lout * o];
    for b in 0..n {
        for t in 0..lout {
            for oc in 0..o {
                let mut s = 0.0f64;
                for tap in 0..k {
                    let Some(src) = (t * stride + tap).checked_sub(padding).filter(|&i| i < l)
                    else {
                        continue;
                    };
                    for ic in 0..c {
                        s += x[(b * l + src) * c + ic] as f64 * w[(oc * c + ic) * k + tap] as f64;
                    }
                }
                y[(b * lout + t) * o + oc] = s;
            }
        }
    }
    y
}

/// The values of `t` rounded to bf16 and back.
fn bf16_values(t: &Tensor) -> Vec<f32> {
    t.cast(DType::BF16)
        .unwrap()
        .cast(DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn the_kernel_matches_float64_and_its_composed_form() {
    let mut seed = 0;
    // (n, l, c, o, k, stride, padding)
    let cases = [
        (1, 1, 1, 1, 1, 1, 0),
        (1, 1, 7, 77, 3, 1, 1),
        (2, 7, 7, 77, 3, 2, 1),
        (1, 77, 80, 7, 3, 1, 1),
        (2, 77, 33, 64, 3, 2, 1),
        (1, 100, 16, 48, 5, 3, 4),
        (1, 1000, 80, 384, 3, 1, 1),
        (1, 1000, 384, 384, 3, 2, 1),
        (1, 9, 5, 7, 4, 1, 0),
    ];
    for (n, l, c, o, k, stride, padding) in cases {
        seed += 1;
        let x = randn(&[n, l, c], seed);
        let w = randn(&[o, c, k], seed + 100)
            .mul_scalar(0.1)
            .unwrap()
            .cast(DType::BF16)
            .unwrap()
            .eval()
            .unwrap();
        let case = format!("n {n} l {l} c {c} o {o} k {k} stride {stride} padding {padding}");
        let f = |a: &[Tensor]| Ok(vec![conv1d_channels_last(&a[0], &a[1], stride, padding)?]);
        let plan = compile(f).plan(&[x.clone(), w.clone()]).unwrap();
        assert_eq!(
            count(&plan, "conv1d_channels_last"),
            1,
            "{case}: {:?}",
            plan.op_frequencies()
        );
        let y = conv1d_channels_last(&x, &w, stride, padding).unwrap();
        let lout = (l + 2 * padding - k) / stride + 1;
        assert_eq!(y.shape(), &[n, lout, o][..], "{case}");
        // The engine rounds the activations to bf16 as the weights are.
        let want = reference(
            &bf16_values(&x),
            &bf16_values(&w),
            [n, l, c, o, k],
            stride,
            padding,
        );
        let got = y.to_vec::<f32>().unwrap();
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .map(|(&g, &r)| (g as f64 - r).abs() / scale)
            .fold(0.0, f64::max);
        assert!(err < 1e-5, "{case}: vs f64 {err}");
        let composed = composed::conv1d_channels_last(&x, &w, stride, padding).unwrap();
        assert!(max_rel_diff(&y, &composed) < 1e-5, "{case}: vs composed");
    }
}

#[test]
fn f32_weights_run_composed_and_bad_shapes_are_errors() {
    let x = randn(&[1, 9, 4], 1);
    let w = randn(&[6, 4, 3], 2);
    let f = |a: &[Tensor]| Ok(vec![conv1d_channels_last(&a[0], &a[1], 1, 1)?]);
    let plan = compile(f).plan(&[x.clone(), w.clone()]).unwrap();
    assert_eq!(count(&plan, "conv1d_channels_last"), 0);
    let y = conv1d_channels_last(&x, &w, 1, 1).unwrap();
    let want = reference(
        &x.to_vec::<f32>().unwrap(),
        &w.to_vec::<f32>().unwrap(),
        [1, 9, 4, 6, 3],
        1,
        1,
    );
    let got = y.to_vec::<f32>().unwrap();
    for (g, r) in got.iter().zip(&want) {
        assert!((*g as f64 - r).abs() < 1e-5, "{g} vs {r}");
    }
    let msg = |r: emily::Result<Tensor>| r.unwrap_err().to_string();
    // Channels disagree, input too short for the kernel, wrong rank.
    assert!(msg(conv1d_channels_last(&x, &randn(&[6, 5, 3], 3), 1, 1)).contains("channels"));
    assert!(msg(conv1d_channels_last(&randn(&[1, 1, 4], 4), &w, 1, 0)).contains("shorter"));
    assert!(msg(conv1d_channels_last(&randn(&[9, 4], 5), &w, 1, 0)).contains("(N, L, C_in)"));
}

#[test]
fn bias_gelu_and_a_position_add_run_in_the_convolutions_epilogue() {
    // Whisper's front end, time-major: conv → +bias → GELU (→ +positions).
    let (l, c, o) = (77, 16, 48);
    let x = randn(&[1, l, c], 11);
    let w = randn(&[o, c, 3], 12)
        .mul_scalar(0.2)
        .unwrap()
        .cast(DType::BF16)
        .unwrap()
        .eval()
        .unwrap();
    let bias = randn(&[o], 13);
    let lout = (l + 2 - 3) / 2 + 1;
    let pos = randn(&[lout, o], 14);
    let f = |a: &[Tensor]| {
        let y = conv1d_channels_last(&a[0], &a[1], 2, 1)?
            .add(&a[2])?
            .gelu()?;
        Ok(vec![y.add(&a[3])?])
    };
    let args = [x, w, bias, pos];
    let compiled = compile(f);
    let plan = compiled.plan(&args).unwrap();
    assert_eq!(
        count(&plan, "conv1d_channels_last_then"),
        1,
        "{:?}",
        plan.op_frequencies()
    );
    assert_eq!(
        count(&plan, "fused") + count(&plan, "binary") + count(&plan, "unary"),
        0
    );
    let (fused, eager) = (compiled.call(&args).unwrap(), f(&args).unwrap());
    assert_eq!(fused[0].shape(), &[1, lout, o][..]);
    assert!(max_rel_diff(&fused[0], &eager[0]) < 1e-6);
}
