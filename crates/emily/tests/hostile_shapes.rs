//! Hostile shapes through every op family: sizes whose element count or byte
//! size overflows, padding and offsets near `usize::MAX`, shapes that are
//! valid but cannot be allocated, and empty shapes with huge axes. Each must
//! give a clear error naming the op (or a correct empty result), never a
//! panic, an abort, or a wrapped-around shape.

use std::sync::Arc;

use emily::fast::{self, RopeOptions, SdpaOptions};
use emily::{compile, Array, DType, Error, Result, Tensor};

/// `(2^63 + 1)^2` wraps to 1 in unchecked `usize` arithmetic.
const WRAPS_TO_ONE: usize = (1 << 63) + 1;

/// Asserts `r` is an `Error::Shape` raised by `op`.
#[track_caller]
fn shape_error<T: std::fmt::Debug>(r: Result<T>, op: &str) {
    match r {
        Err(Error::Shape { op: o, msg }) => {
            assert_eq!(o, op, "error raised by the wrong op: [{o}] {msg}");
        }
        other => panic!("expected a [{op}] shape error, got {other:?}"),
    }
}

/// Asserts `r` is an error whose message names `op`.
#[track_caller]
fn error_naming<T: std::fmt::Debug>(r: Result<T>, op: &str) {
    match r {
        Err(e) => assert!(e.to_string().contains(&format!("[{op}]")), "{e}"),
        Ok(v) => panic!("expected a [{op}] error, got {v:?}"),
    }
}

/// Asserts evaluating `t` fails because the memory was refused.
#[track_caller]
fn refused(t: Result<Tensor>) {
    let t = t.expect("a shape that fits isize::MAX bytes builds lazily");
    match t.eval() {
        Err(Error::OutOfMemory { bytes }) => assert!(bytes >= 1 << 56, "{bytes}"),
        other => panic!("expected an allocation error, got {other:?}"),
    }
}

fn f32s(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32).unwrap()
}

fn bytes(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::U8).unwrap()
}

#[test]
fn constructors_check_element_and_byte_counts() {
    shape_error(
        Tensor::from_slice(&[1.0f32], &[WRAPS_TO_ONE, WRAPS_TO_ONE]),
        "from_slice",
    );
    shape_error(
        Tensor::from_vec(vec![1u8], &[WRAPS_TO_ONE, WRAPS_TO_ONE]),
        "from_slice",
    );
    shape_error(
        Tensor::from_bytes(&[0; 4], &[WRAPS_TO_ONE, WRAPS_TO_ONE], DType::F32),
        "from_bytes",
    );
    // 2^80 elements wrapped to 0 and summed to one element.
    shape_error(Tensor::zeros(&[1 << 40, 1 << 40], DType::F32), "full");
    shape_error(Tensor::ones(&[usize::MAX, 2], DType::U8), "full");
    // Element count fits, byte size does not (2^62 f32 = 2^64 bytes; isize::MAX + 1 bytes).
    shape_error(
        Tensor::full(&[1 << 62], 1.0, DType::F32, Default::default()),
        "full",
    );
    shape_error(Tensor::zeros(&[1 << 63], DType::U8), "full");
    shape_error(Tensor::arange(usize::MAX, DType::I64), "iota");
    shape_error(Tensor::iota(&[1 << 62, 4], 1, DType::F32), "iota");
    shape_error(
        Tensor::randn(&[1 << 40, 1 << 40], 0.0, 1.0, 1, DType::F32),
        "randn",
    );
    shape_error(
        Tensor::rand_uniform(&[1 << 61], 0.0, 1.0, 1, DType::F32),
        "rand_uniform",
    );
    // A valid but unallocatable sample count is an error, not an abort.
    assert!(matches!(
        Tensor::randn(&[1 << 58], 0.0, 1.0, 1, DType::F32),
        Err(Error::OutOfMemory { .. })
    ));
    // The largest byte size that is allowed builds lazily.
    assert_eq!(bytes(&[isize::MAX as usize]).numel(), isize::MAX as usize);
}

#[test]
fn the_reported_crashes_are_errors() {
    // Was accepted, then matmul crashed in GEMM packing and sum/softmax/
    // layer_norm hit kernel assertions.
    shape_error(
        Tensor::from_slice(&[1.0f32], &[WRAPS_TO_ONE, WRAPS_TO_ONE]),
        "from_slice",
    );
    let one = Tensor::from_slice(&[1.0f32], &[1, 1]).unwrap();
    shape_error(one.reshape_to(&[WRAPS_TO_ONE, WRAPS_TO_ONE]), "reshape");
    // Was wrapped to shape [0].
    let x = Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    shape_error(x.pad(&[(usize::MAX, 1)], 0.0), "pad");
    shape_error(x.pad(&[(usize::MAX - 1, 0)], 0.0), "pad");
}

#[test]
fn valid_but_unallocatable_shapes_fail_at_eval() {
    refused(Tensor::zeros(&[1 << 60], DType::U8));
    refused(bytes(&[1 << 60]).sum(&[], false));
    refused(Tensor::arange(1 << 61, DType::U8));
    refused(f32s(&[1 << 58, 2]).softmax(-1));
    refused(fast::rms_norm(&f32s(&[1 << 58, 2]), None, 1e-5));
    refused(fast::layer_norm(&f32s(&[1 << 58, 2]), None, None, 1e-5));
    refused(fast::rope(&f32s(&[1 << 56, 2, 2]), RopeOptions::new(2)));
    refused(f32s(&[1 << 29, 1 << 29]).matmul(&f32s(&[1 << 29, 1])));
}

#[test]
fn layout_ops_use_checked_arithmetic() {
    let x = f32s(&[2, 3]);
    shape_error(x.reshape(&[1 << 62, 1 << 62, -1]), "reshape");
    shape_error(x.reshape(&[1 << 32, 1 << 32, 6]), "reshape");
    error_naming(x.reshape(&[-1, -1]), "reshape");
    shape_error(
        Tensor::scalar(1.0, DType::F32, Default::default()).broadcast_to(&[1 << 32, 1 << 32]),
        "broadcast",
    );
    shape_error(x.pad(&[(0, 0), (1 << 62, 0)], 0.0), "pad");
    let half = bytes(&[1 << 62]);
    shape_error(Tensor::concat(&[&half, &half], 0), "concat");
    let most = bytes(&[isize::MAX as usize]);
    shape_error(Tensor::concat(&[&most, &most, &most], 0), "concat");
    shape_error(Tensor::stack(&[&half, &half], 0), "concat");
    error_naming(x.narrow(1, usize::MAX, 2), "narrow");
    error_naming(x.narrow(1, 2, usize::MAX), "narrow");
    error_naming(x.slice(&[0, 4], &[2, 3], &[1, 1]), "slice");
    // Ends clamp; huge steps take one element.
    let s = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0], &[2, 2])
        .unwrap()
        .slice(
            &[0, 1],
            &[usize::MAX, usize::MAX],
            &[usize::MAX, usize::MAX],
        )
        .unwrap();
    assert_eq!(s.to_vec::<f32>().unwrap(), vec![1.0]);
}

#[test]
fn elementwise_broadcasts_check_the_result_size() {
    let a = f32s(&[1 << 33, 1]);
    let b = f32s(&[1, 1 << 33]);
    shape_error(a.add(&b), "binary");
    shape_error(a.lt(&b), "binary");
    let cond = Tensor::zeros(&[1 << 33, 1], DType::Bool).unwrap();
    shape_error(Tensor::where_cond(&cond, &b, &b), "where");
}

#[test]
fn matmul_and_conv_check_their_output_shapes() {
    shape_error(f32s(&[1 << 31, 1]).matmul(&f32s(&[1, 1 << 31])), "matmul");
    shape_error(
        f32s(&[1 << 20, 1, 1, 4]).matmul(&f32s(&[1, 1 << 20, 4, 1 << 22])),
        "matmul",
    );
    let x = f32s(&[1, 2, 8]);
    let w = f32s(&[4, 2, 3]);
    shape_error(x.conv1d(&f32s(&[4, 2, 0]), 1, 0, 1, 1), "conv1d");
    shape_error(x.conv1d(&w, 1, usize::MAX, 1, 1), "conv1d");
    shape_error(x.conv1d(&w, 1, usize::MAX / 2, 1, 1), "conv1d");
    shape_error(x.conv1d(&w, 1 << 62, 1 << 62, 1, 1), "conv1d");
    shape_error(x.conv1d(&w, 1, 0, usize::MAX, 1), "conv1d");
    shape_error(x.conv1d(&w, 1, 0, usize::MAX / 2 + 1, 1), "conv1d");
    // Output length 2^62 f32.
    shape_error(
        f32s(&[1, 1, 1 << 59]).conv1d(&f32s(&[1, 1, 1]), 1, 1 << 61, 1, 1),
        "conv1d",
    );
    // Large strides and dilations that fit still convolve correctly.
    let y = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &[1, 1, 5])
        .unwrap()
        .conv1d(
            &Tensor::ones(&[1, 1, 2], DType::F32).unwrap(),
            1 << 40,
            0,
            4,
            1,
        )
        .unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![6.0]);
}

#[test]
fn indexing_checks_its_output_shape() {
    let table = bytes(&[4, 1 << 40]);
    let idx = Tensor::zeros(&[1 << 30], DType::I64).unwrap();
    shape_error(table.gather(&idx, 0), "gather");
    shape_error(table.index_select(&idx, 0), "gather");
    let cache = f32s(&[1, 8, 4]);
    let off = Tensor::from_slice(&[i64::MAX], &[]).unwrap();
    let e = cache
        .slice_update(&f32s(&[1, 2, 4]), &off, 1)
        .unwrap()
        .eval()
        .unwrap_err();
    assert!(e.to_string().contains("[slice_update]"), "{e}");
}

#[test]
fn reductions_of_empty_shapes_with_huge_axes() {
    let e = f32s(&[0, usize::MAX]);
    assert_eq!(e.numel(), 0);
    shape_error(e.sum(&[0], false), "reduce");
    assert!(e
        .sum(&[1], false)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .is_empty());
    assert!(e
        .max(&[1], true)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .is_empty());
    assert!(e.softmax(-1).unwrap().to_vec::<f32>().unwrap().is_empty());
    assert!(fast::layer_norm(&e, None, None, 1e-5)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .is_empty());
    assert!(e.t().unwrap().to_vec::<f32>().unwrap().is_empty());
    let m = e.matmul(&f32s(&[usize::MAX, 0])).unwrap();
    assert_eq!(m.shape(), &[0, 0]);
    assert!(m.to_vec::<f32>().unwrap().is_empty());
    shape_error(e.pad(&[(1, 0), (0, 0)], 0.0), "pad");
}

#[test]
fn fast_ops_check_their_output_shapes() {
    let q = f32s(&[1, 1, 1 << 32, 1]);
    let k = f32s(&[1, 1, 1, 1]);
    let v = f32s(&[1, 1, 1, 1 << 32]);
    shape_error(
        fast::scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default()),
        "scaled_dot_product_attention",
    );
    shape_error(
        fast::composed::scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default()),
        "matmul",
    );
    // RoPE at a position near usize::MAX (an offset the kernel once wrapped,
    // and angles its fast reduction once blew up on): still a rotation of
    // every pair (the angle itself is not determined at that magnitude).
    let x = Tensor::randn(&[1, 2, 3, 4], 0.0, 1.0, 3, DType::F32).unwrap();
    let xs = x.to_vec::<f32>().unwrap();
    let opts = || RopeOptions {
        offset: fast::RopeOffset::Static(usize::MAX - 1),
        ..RopeOptions::new(4)
    };
    for out in [fast::rope(&x, opts()), fast::composed::rope(&x, opts())] {
        let out = out.unwrap().to_vec::<f32>().unwrap();
        for row in 0..6 {
            for i in 0..2 {
                let (a, b) = (row * 4 + i, row * 4 + i + 2);
                let before = xs[a].hypot(xs[b]);
                let after = out[a].hypot(out[b]);
                assert!((before - after).abs() <= 1e-5, "{before} vs {after}");
            }
        }
    }
}

#[test]
fn compiled_functions_report_hostile_shapes() {
    let f = compile(|xs: &[Tensor]| Ok(vec![xs[0].pad(&[(usize::MAX, 0)], 0.0)?]));
    shape_error(f.call(&[f32s(&[3])]), "pad");
    let g = compile(|xs: &[Tensor]| Ok(vec![xs[0].broadcast_to(&[1 << 40, 1 << 40])?]));
    shape_error(g.call(&[f32s(&[1])]), "broadcast");
}

#[test]
fn external_bytes_are_range_checked() {
    let owner: emily::array::ExternalBytes = Arc::new(vec![0u8; 8]);
    let ok = Array::from_external(owner.clone(), 0, &[2], DType::F32).unwrap();
    assert_eq!(ok.host_bytes(), Some(&[0u8; 8][..]));
    error_naming(
        Array::from_external(owner.clone(), 4, &[2], DType::F32),
        "from_external",
    );
    error_naming(
        Array::from_external(owner.clone(), usize::MAX, &[1], DType::U8),
        "from_external",
    );
    shape_error(
        Array::from_external(owner, 0, &[WRAPS_TO_ONE, WRAPS_TO_ONE], DType::U8),
        "from_external",
    );
}
