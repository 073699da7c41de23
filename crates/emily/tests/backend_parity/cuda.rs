//! The CUDA backend (feature `cuda`) through every parity family, plus
//! fused-vs-composed checks on the device at transformer sizes (the
//! tensor-core attention path, decode splits, vector norms). Each test
//! skips with a message when no CUDA driver or device is present; run them
//! on a GPU with `scripts/gpu-check.sh`.

use super::harness::{input, tolerance, Values};
use super::{elementwise, fast as fam, layout, reduce_linalg};
use emily::fast::{self, SdpaMask, SdpaOptions};
use emily::{compile_with, CompileOptions, DType, Device, Kernels, Result, Tensor};

/// The device under test, or `None` (with a message) when it cannot be used.
fn gpu() -> Option<Device> {
    match emily::backend::cuda::available(0) {
        Ok(()) => Some(Device::Cuda(0)),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

macro_rules! family {
    ($name:ident, $($f:path),+) => {
        #[test]
        fn $name() {
            let Some(d) = gpu() else { return };
            $($f(d);)+
        }
    };
}

family!(cuda_creation_matches_reference, elementwise::creation);
family!(cuda_unary_matches_reference, elementwise::unary);
family!(cuda_binary_matches_reference, elementwise::binary);
family!(
    cuda_where_and_cast_match_reference,
    elementwise::select,
    elementwise::cast
);
family!(cuda_reductions_match_reference, reduce_linalg::reductions);
family!(cuda_softmax_matches_reference, reduce_linalg::softmax);
family!(cuda_matmul_matches_reference, reduce_linalg::matmul);
family!(cuda_conv1d_matches_reference, reduce_linalg::conv1d);
family!(cuda_layout_matches_reference, layout::layout);
family!(
    cuda_gather_and_slice_update_match_reference,
    layout::gather,
    layout::slice_update
);
family!(
    cuda_scatter_add_and_random_uniform_match_reference,
    layout::scatter_add,
    layout::random_uniform
);
family!(cuda_norms_match_reference, fam::norms);
family!(cuda_rope_matches_reference, fam::rope);
family!(cuda_attention_matches_reference, fam::sdpa);
family!(cuda_compiled_plans_match_reference, fam::compiled);

/// `‖a − b‖ / ‖b‖` over two device results read back, and no NaN in `a`.
fn rel_err(what: &str, a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_device(Device::Cpu).unwrap().to_f64_vec().unwrap();
    let b = b.to_device(Device::Cpu).unwrap().to_f64_vec().unwrap();
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Fused kernel against its decomposition, both on the device.
fn fused_vs_composed(
    what: &str,
    dtype: DType,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) {
    let run = |kernels: Kernels| -> Tensor {
        let g = compile_with(
            |xs: &[Tensor]| f(xs),
            CompileOptions {
                kernels,
                ..Default::default()
            },
        );
        g.call(inputs).unwrap().remove(0)
    };
    let (fused, composed) = (run(Kernels::Fused), run(Kernels::Composed));
    let e = rel_err(what, &fused, &composed);
    let tol = match dtype {
        DType::F32 => 1e-5,
        DType::F16 => 2e-3,
        _ => 1e-2,
    };
    assert!(
        e <= tol,
        "{what}: fused vs composed relative error {e:.3e} > {tol:.0e}"
    );
    eprintln!("{what}: fused vs composed {e:.2e}");
}

fn on(d: Device, shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    input(shape, dtype, seed, Values::Normal)
        .to_device(d)
        .unwrap()
}

#[test]
fn cuda_norms_fused_match_composed_at_model_sizes() {
    let Some(d) = gpu() else { return };
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for (rows, dim) in [
            (2048, 1024),
            (33, 4096),
            (7, 1000),
            (5, 13),
            (3, 16384),
            (2, 20000),
        ] {
            let x = on(d, &[rows, dim], dtype, 1);
            let w = on(d, &[dim], dtype, 2);
            let b = on(d, &[dim], dtype, 3);
            let xs = [x, w, b];
            fused_vs_composed(&format!("rms_norm {dtype} {rows}x{dim}"), dtype, &xs, |t| {
                Ok(vec![fast::rms_norm(&t[0], Some(&t[1]), 1e-5)?])
            });
            fused_vs_composed(
                &format!("layer_norm {dtype} {rows}x{dim}"),
                dtype,
                &xs,
                |t| {
                    Ok(vec![fast::layer_norm(
                        &t[0],
                        Some(&t[1]),
                        Some(&t[2]),
                        1e-5,
                    )?])
                },
            );
        }
    }
}

#[test]
fn cuda_attention_fused_matches_composed_at_model_sizes() {
    let Some(d) = gpu() else { return };
    // (b, hq, hkv, tq, tk, head dim): prefill on tensor cores (odd lengths,
    // GQA, every head size), decode (one query, keys split), short prefill.
    let shapes = [
        (1, 4, 4, 130, 130, 64),
        (2, 8, 2, 77, 200, 128),
        (1, 2, 1, 65, 65, 80),
        (1, 2, 2, 100, 100, 96),
        (1, 2, 2, 70, 70, 256),
        (2, 8, 2, 1, 333, 128),
        (1, 14, 2, 1, 1000, 64),
        (1, 4, 4, 3, 40, 64),
    ];
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for &(b, hq, hkv, tq, tk, hd) in &shapes {
            let q = on(d, &[b, hq, tq, hd], dtype, 4);
            let k = on(d, &[b, hkv, tk, hd], dtype, 5);
            let v = on(d, &[b, hkv, tk, hd], dtype, 6);
            let add = on(d, &[1, hq, tq, tk], dtype, 7);
            let keep = input(&[tq, tk], DType::Bool, 8, Values::Normal)
                .to_device(d)
                .unwrap();
            let sinks = on(d, &[hq], dtype, 9);
            let off = Tensor::from_slice(&[(tk - tq) as i64], &[1])
                .unwrap()
                .to_device(d)
                .unwrap();
            let xs = [q, k, v, add, keep, sinks, off];
            type MaskOf = fn(&[Tensor]) -> SdpaMask;
            let masks: [(&str, MaskOf); 6] = [
                ("none", |_| SdpaMask::None),
                ("causal", |_| SdpaMask::Causal),
                ("additive", |t| SdpaMask::Additive(t[3].clone())),
                ("boolean", |t| SdpaMask::Boolean(t[4].clone())),
                ("band", |t| SdpaMask::CausalBand {
                    offset: t[6].clone(),
                    window: None,
                }),
                ("window", |t| SdpaMask::CausalBand {
                    offset: t[6].clone(),
                    window: Some(17),
                }),
            ];
            for (name, mask) in masks {
                for sinks in [false, true] {
                    let what =
                        format!("sdpa {dtype} {b}x{hq}/{hkv}x{tq}x{tk}x{hd} {name} sinks={sinks}");
                    fused_vs_composed(&what, dtype, &xs, |t| {
                        let opts = SdpaOptions {
                            scale: None,
                            mask: mask(t),
                            sinks: sinks.then(|| t[5].clone()),
                        };
                        Ok(vec![fast::scaled_dot_product_attention(
                            &t[0], &t[1], &t[2], opts,
                        )?])
                    });
                }
            }
        }
    }
}

/// Bad indices found by a kernel are an error at the next read, not garbage.
#[test]
fn cuda_bad_index_is_an_error() {
    let Some(d) = gpu() else { return };
    let x = on(d, &[4, 3], DType::F32, 1);
    let idx = Tensor::from_slice(&[0i64, 9], &[2])
        .unwrap()
        .to_device(d)
        .unwrap();
    let r = x.gather(&idx, 0).and_then(|t| t.to_device(Device::Cpu));
    let e = r.unwrap_err().to_string();
    assert!(e.contains("index 9 out of range"), "{e}");
    // The device stays usable.
    let y = x.add_scalar(1.0).unwrap().to_device(Device::Cpu).unwrap();
    assert_eq!(y.shape(), &[4, 3]);
    let _ = tolerance(DType::F32);
}
