//! Block-quantised tensors in the core: sizes, zero-copy weights, the ops
//! that take them, quantise-on-load, compiled plans, and clear errors for
//! everything else. (Numerical parity with the reference backend is in
//! `backend_parity`.)

use std::sync::Arc;

use emily::{compile, BlockFormat, DType, Error, Tensor};

const Q4_0: DType = DType::Quantized(BlockFormat::Q4_0);

/// Varied values, exact in f16 and bf16 (multiples of 1/8 up to 6).
fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 97) as f32 - 48.0) / 8.0)
        .collect()
}

/// An error of `r` that names `op` (and `what`, when given).
fn error_naming<T: std::fmt::Debug>(r: emily::Result<T>, op: &str, what: &str) {
    let e = r.expect_err("an error");
    let s = e.to_string();
    assert!(
        s.contains(op) && s.contains(what),
        "{s:?} should name {op:?} and {what:?}"
    );
}

#[test]
fn sizes_are_whole_blocks_along_the_last_axis() {
    assert_eq!(Q4_0.storage_bytes(&[3, 64]).unwrap(), 3 * 2 * 18);
    assert_eq!(Q4_0.storage_bytes(&[2, 3, 32]).unwrap(), 6 * 18);
    assert_eq!(Q4_0.storage_bytes(&[0, 32]).unwrap(), 0);
    let q6k = DType::Quantized(BlockFormat::Q6K);
    assert_eq!(q6k.storage_bytes(&[5, 512]).unwrap(), 5 * 2 * 210);
    for bad in [&[3, 33][..], &[32, 7], &[]] {
        error_naming(Q4_0.storage_bytes(bad), "storage", "");
    }
    let q8 = DType::Quantized(BlockFormat::Q8_0);
    error_naming(q8.storage_bytes(&[1 << 57, 96]), "storage", "isize::MAX");
    assert_eq!(
        DType::from_name("q4_k"),
        Some(DType::Quantized(BlockFormat::Q4K))
    );
    assert_eq!(DType::from_name("int4-g64").unwrap().name(), "int4-g64");
    assert_eq!(DType::from_name("bf16"), Some(DType::BF16));
}

#[test]
fn mapped_weights_are_read_in_place() {
    let blocks = emily_kernels::quant::quantize(BlockFormat::Q8_0, &ramp(4 * 64)).unwrap();
    let mut file = vec![0u8; 7];
    file.extend_from_slice(&blocks);
    let owner: emily::array::ExternalBytes = Arc::new(file);
    let w = Tensor::from_external(
        owner.clone(),
        7,
        &[4, 64],
        DType::Quantized(BlockFormat::Q8_0),
    )
    .unwrap();
    let base = (*owner).as_ref().as_ptr() as usize;
    let array = w.array().unwrap();
    assert_eq!(
        array.host_bytes().unwrap().as_ptr() as usize,
        base + 7,
        "no copy"
    );
    // The product reads the mapped blocks.
    let x = Tensor::from_slice(&ramp(64), &[1, 64]).unwrap();
    let y = x.matmul(&w.t().unwrap()).unwrap().to_vec::<f32>().unwrap();
    let wf = w.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
    let xs = ramp(64);
    for (r, &got) in y.iter().enumerate() {
        let want: f32 = (0..64).map(|j| wf[r * 64 + j] * xs[j]).sum();
        assert!(
            (got - want).abs() <= 0.02 * want.abs().max(1.0),
            "row {r}: {got} vs {want}"
        );
    }
    error_naming(
        Tensor::from_external(owner, 8, &[4, 64], DType::Quantized(BlockFormat::Q8_0)),
        "from_external",
        "",
    );
}

#[test]
fn quantize_on_load_from_every_float_type() {
    let values = ramp(3 * 64);
    for format in [
        BlockFormat::Int4G64,
        BlockFormat::Int8G32,
        BlockFormat::Q8_0,
        BlockFormat::Q4_0,
    ] {
        let want = emily_kernels::quant::quantize(format, &values).unwrap();
        for from in [DType::F32, DType::F16, DType::BF16] {
            // The ramp's values are exact in f16 and bf16.
            let t = Tensor::from_slice(&values, &[3, 64])
                .unwrap()
                .cast(from)
                .unwrap();
            let q = t.quantize(format).unwrap().eval().unwrap();
            assert_eq!(q.dtype(), DType::Quantized(format));
            let bytes = q.array().unwrap().to_host_bytes().unwrap().to_vec();
            assert_eq!(bytes, want, "{format} from {from}");
        }
    }
    // A last axis that is not whole blocks fails when the node is built.
    let t = Tensor::from_slice(&ramp(48), &[1, 48]).unwrap();
    error_naming(
        t.quantize(BlockFormat::Q4_0),
        "cast",
        "multiple of the 32-element block",
    );
    // NaN fails when the cast runs, naming the block.
    let mut bad = ramp(64);
    bad[40] = f32::NAN;
    let t = Tensor::from_slice(&bad, &[1, 64]).unwrap();
    error_naming(
        t.quantize(BlockFormat::Q4_0).unwrap().eval(),
        "cast",
        "block 1",
    );
}

#[test]
fn embedding_rows_and_tied_logits() {
    let table = Tensor::from_slice(&ramp(10 * 32), &[10, 32])
        .unwrap()
        .quantize(BlockFormat::Q8_0)
        .unwrap()
        .eval()
        .unwrap();
    let dense = table.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
    let ids = Tensor::from_slice(&[3i32, 9, 3], &[1, 3]).unwrap();
    let rows = table.gather(&ids, 0).unwrap();
    assert_eq!((rows.dtype(), rows.shape()), (DType::F32, &[1, 3, 32][..]));
    let got = rows.to_vec::<f32>().unwrap();
    for (n, &i) in [3usize, 9, 3].iter().enumerate() {
        assert_eq!(&got[n * 32..(n + 1) * 32], &dense[i * 32..(i + 1) * 32]);
    }
    // The same table projects hidden states to logits (x · tableᵀ).
    let h = rows.reshape(&[3, 32]).unwrap();
    assert_eq!(h.matmul(&table.t().unwrap()).unwrap().shape(), &[3, 10]);
    error_naming(table.gather(&ids, 1), "gather", "block axis");
}

#[test]
fn compiled_plans_capture_quantized_weights() {
    let w = Tensor::from_slice(&ramp(7 * 64), &[7, 64])
        .unwrap()
        .quantize(BlockFormat::Q4_1)
        .unwrap()
        .eval()
        .unwrap();
    let wc = w.clone();
    let f = compile(move |xs: &[Tensor]| Ok(vec![xs[0].matmul(&wc.t()?)?.relu()?]));
    for rows in [1, 2, 20] {
        let x = Tensor::from_slice(&ramp(rows * 64), &[rows, 64]).unwrap();
        let eager = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .relu()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let planned = f.call(&[x]).unwrap()[0].to_vec::<f32>().unwrap();
        assert_eq!(eager, planned, "{rows} rows");
    }
}

#[test]
fn other_ops_refuse_quantized_tensors_naming_op_and_dtype() {
    let q = Tensor::from_slice(&ramp(2 * 32), &[2, 32])
        .unwrap()
        .quantize(BlockFormat::Q4_0)
        .unwrap();
    let x = Tensor::from_slice(&ramp(2 * 32), &[2, 32]).unwrap();
    let dtype_error = |r: emily::Result<Tensor>, op: &str| match r {
        Err(e @ Error::DType { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains(op) && s.contains("q4_0"),
                "{s:?} should name {op} and q4_0"
            );
        }
        other => panic!("{op}: expected a dtype error, got {other:?}"),
    };
    dtype_error(q.add(&x), "binary");
    dtype_error(q.exp(), "unary");
    dtype_error(q.sum(&[-1], false), "reduce");
    dtype_error(q.softmax(-1), "softmax");
    dtype_error(q.reshape(&[64, 1]), "reshape");
    dtype_error(q.slice(&[0, 0], &[1, 32], &[1, 1]), "slice");
    dtype_error(Tensor::zeros(&[2, 32], Q4_0), "full");
    dtype_error(q.cast(DType::Quantized(BlockFormat::Q8_0)), "cast");
    dtype_error(q.cast(DType::I32), "cast");
    // matmul takes quantised weights only as x · wᵀ with f32 x.
    dtype_error(x.matmul(&q), "matmul");
    dtype_error(q.matmul(&x.t().unwrap()), "matmul");
    let x16 = x.cast(DType::F16).unwrap();
    error_naming(x16.matmul(&q.t().unwrap()), "matmul", "f32 activations");
    error_naming(
        Tensor::from_slice(&ramp(33), &[1, 33])
            .unwrap()
            .matmul(&q.t().unwrap()),
        "matmul",
        "inner dimensions",
    );
    // wᵀ alone is only matmul's view: computing it is an error, not a copy.
    error_naming(q.t().unwrap().eval(), "permute", "q4_0");
    let on_reference = q.to_device(emily::Device::Reference).unwrap();
    error_naming(on_reference.t().unwrap().eval(), "permute", "q4_0");
}
