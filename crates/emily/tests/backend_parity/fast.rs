//! Parity cases: the fast ops (fused kernel where the device has one, its
//! decomposition otherwise) against the reference's direct loops, and
//! compiled (fused) plans against the reference.

use super::harness::{check, input, Values, FLOATS};
use emily::fast::{self, RopeOffset, RopeOptions, SdpaMask, SdpaOptions};
use emily::{compile, DType, Device, Tensor};

/// RMSNorm and LayerNorm with and without weight and bias.
pub fn norms(device: Device) {
    for dtype in FLOATS {
        for d in [1, 7, 77] {
            let x = input(&[3, 5, d], dtype, 1, Values::Normal);
            let w = input(&[d], dtype, 2, Values::Normal);
            let b = input(&[d], dtype, 3, Values::Normal);
            let all = [x, w, b];
            check(device, &format!("rms_norm {dtype} d={d}"), &all, |t| {
                fast::rms_norm(&t[0], Some(&t[1]), 1e-5)
            });
            check(
                device,
                &format!("rms_norm {dtype} d={d} no weight"),
                &all,
                |t| fast::rms_norm(&t[0], None, 1e-6),
            );
            check(device, &format!("layer_norm {dtype} d={d}"), &all, |t| {
                fast::layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)
            });
            check(
                device,
                &format!("layer_norm {dtype} d={d} bias only"),
                &all,
                |t| fast::layer_norm(&t[0], None, Some(&t[2]), 1e-5),
            );
        }
    }
}

/// RoPE: split and interleaved pairs, partial rotation, every kind of
/// positions, precomputed frequencies.
pub fn rope(device: Device) {
    for dtype in FLOATS {
        let x = input(&[2, 3, 7, 12], dtype, 4, Values::Normal);
        let offset = Tensor::from_slice(&[5i32], &[1]).unwrap();
        let positions = Tensor::from_slice(&[3i64, 0, 9, 1, 1, 40, 2], &[7]).unwrap();
        let freqs = input(&[4], DType::F32, 5, Values::Positive);
        let all = [x, offset, positions, freqs];
        for traditional in [false, true] {
            for dims in [12, 8] {
                let opts = |offset: RopeOffset| RopeOptions {
                    dims,
                    traditional,
                    base: 10000.0,
                    scale: 0.5,
                    offset,
                };
                let tag = format!("{dtype} dims={dims} traditional={traditional}");
                check(device, &format!("rope static {tag}"), &all, |t| {
                    fast::rope(&t[0], opts(RopeOffset::Static(11)))
                });
                check(device, &format!("rope tensor offset {tag}"), &all, |t| {
                    fast::rope(&t[0], opts(RopeOffset::Scalar(t[1].clone())))
                });
                check(device, &format!("rope positions {tag}"), &all, |t| {
                    fast::rope(&t[0], opts(RopeOffset::Positions(t[2].clone())))
                });
                if dims == 8 {
                    check(device, &format!("rope freqs {tag}"), &all, |t| {
                        fast::rope_with_freqs(&t[0], &t[3], opts(RopeOffset::Static(2)))
                    });
                }
            }
        }
    }
}

/// Builds a mask from the case's inputs.
type MaskOf = fn(&[Tensor]) -> SdpaMask;

/// Attention: no mask, causal (fewer queries than keys), additive and
/// boolean masks that broadcast, sinks, grouped kv heads.
pub fn sdpa(device: Device) {
    for dtype in FLOATS {
        let q = input(&[2, 4, 5, 8], dtype, 6, Values::Normal);
        let k = input(&[2, 2, 9, 8], dtype, 7, Values::Normal);
        let v = input(&[2, 2, 9, 6], dtype, 8, Values::Normal);
        let additive = input(&[1, 4, 5, 9], dtype, 9, Values::Normal);
        let keep = input(&[5, 9], DType::Bool, 10, Values::Normal);
        let sinks = input(&[4], dtype, 11, Values::Normal);
        let all = [q, k, v, additive, keep, sinks];
        let masks: [(&str, MaskOf); 4] = [
            ("none", |_| SdpaMask::None),
            ("causal", |_| SdpaMask::Causal),
            ("additive", |t| SdpaMask::Additive(t[3].clone())),
            ("boolean", |t| SdpaMask::Boolean(t[4].clone())),
        ];
        for (name, mask) in masks {
            for with_sinks in [false, true] {
                let what = format!("sdpa {dtype} mask {name} sinks {with_sinks}");
                check(device, &what, &all, |t| {
                    let opts = SdpaOptions {
                        scale: None,
                        mask: mask(t),
                        sinks: with_sinks.then(|| t[5].clone()),
                    };
                    fast::scaled_dot_product_attention(&t[0], &t[1], &t[2], opts)
                });
            }
        }
    }
}

/// A compiled elementwise chain (fused where the device's backend fuses)
/// against the reference, and the plan really fuses on both devices for f32.
pub fn compiled(device: Device) {
    for dtype in FLOATS {
        let x = input(&[7, 77], dtype, 12, Values::Normal);
        let y = input(&[77], dtype, 13, Values::Normal);
        let f = compile(|xs: &[Tensor]| {
            let a = xs[0].mul(&xs[1])?.add_scalar(1.0)?.gelu()?;
            let b = a.maximum(&xs[0].neg()?)?.cast(DType::F32)?.exp()?;
            Ok(vec![b.sum(&[-1], false)?, a])
        });
        for out in 0..2 {
            check(
                device,
                &format!("compiled chain {dtype} output {out}"),
                &[x.clone(), y.clone()],
                |t| Ok(f.call(t)?.remove(out)),
            );
        }
        if dtype == DType::F32 {
            for d in [device, Device::Reference] {
                let args = [x.to_device(d).unwrap(), y.to_device(d).unwrap()];
                let plan = f.plan(&args).unwrap();
                let fused = plan.op_frequencies().iter().any(|(op, _)| *op == "fused");
                assert!(fused, "no fused step on {d}: {:?}", plan.op_frequencies());
            }
        }
    }
}
