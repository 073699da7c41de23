//! Parity cases: layout ops, gather and slice_update on every dtype.

use super::harness::{check, check_error, input, Values, ALL};
use emily::{DType, Device, Tensor};

/// Reshape, permute, broadcast, slice, concat, stack and pad.
pub fn layout(device: Device) {
    for dtype in ALL {
        let x = input(&[3, 7, 11], dtype, 10, Values::Normal);
        let y = input(&[3, 2, 11], dtype, 11, Values::Normal);
        let one = || std::slice::from_ref(&x);
        check(device, &format!("reshape {dtype}"), one(), |t| {
            t[0].reshape(&[7, -1, 3])
        });
        check(device, &format!("permute {dtype}"), one(), |t| {
            t[0].permute(&[2, 0, 1])
        });
        check(device, &format!("transpose {dtype}"), one(), |t| t[0].t());
        check(device, &format!("broadcast {dtype}"), one(), |t| {
            t[0].narrow(1, 2, 1)?.broadcast_to(&[2, 3, 5, 11])
        });
        check(device, &format!("strided slice {dtype}"), one(), |t| {
            t[0].slice(&[1, 0, 2], &[3, 7, 11], &[1, 3, 4])
        });
        check(
            device,
            &format!("concat {dtype}"),
            &[x.clone(), y.clone()],
            |t| Tensor::concat(&[&t[0], &t[1], &t[0]], 1),
        );
        check(
            device,
            &format!("stack {dtype}"),
            &[x.clone(), x.clone()],
            |t| Tensor::stack(&[&t[0], &t[1]], 2),
        );
        check(device, &format!("pad {dtype}"), one(), |t| {
            t[0].pad(&[(1, 0), (0, 2), (3, 1)], 1.0)
        });
        check(device, &format!("squeeze/expand {dtype}"), one(), |t| {
            t[0].expand_dims(1)?.expand_dims(-1)?.squeeze(&[])
        });
    }
}

/// Gather along several axes with every index dtype, and its range check.
pub fn gather(device: Device) {
    for dtype in ALL {
        let x = input(&[5, 7, 3], dtype, 20, Values::Normal);
        for idx_dtype in [DType::I32, DType::I64, DType::U8] {
            let ids = Tensor::from_slice(&[4i64, 0, 2, 2, 1, 3], &[2, 3])
                .and_then(|t| t.cast(idx_dtype))
                .unwrap();
            for axis in [0, -2] {
                let what = format!("gather {dtype} by {idx_dtype} axis {axis}");
                check(device, &what, &[x.clone(), ids.clone()], |t| {
                    t[0].gather(&t[1], axis)
                });
            }
        }
        let bad = Tensor::from_slice(&[0i64, 7], &[2]).unwrap();
        check_error(
            device,
            &format!("gather {dtype} out of range"),
            &[x, bad],
            |t| t[0].gather(&t[1], 1),
        );
    }
}

/// The dynamic slice update at run-time offsets, and its range check.
pub fn slice_update(device: Device) {
    for dtype in ALL {
        let target = input(&[2, 11, 3], dtype, 30, Values::Normal);
        let update = input(&[2, 4, 3], dtype, 31, Values::Normal);
        for (offset, off_dtype) in [(0i64, DType::I64), (7, DType::I32), (3, DType::I64)] {
            let off = Tensor::from_slice(&[offset], &[1])
                .and_then(|t| t.cast(off_dtype))
                .unwrap();
            let what = format!("slice_update {dtype} at {offset}");
            check(device, &what, &[target.clone(), update.clone(), off], |t| {
                t[0].slice_update(&t[1], &t[2], 1)
            });
        }
        let off = Tensor::from_slice(&[8i64], &[]).unwrap();
        check_error(
            device,
            &format!("slice_update {dtype} past the end"),
            &[target, update, off],
            |t| t[0].slice_update(&t[1], &t[2], 1),
        );
    }
}

/// Scatter-add (repeated indices accumulate) on every arithmetic dtype and
/// index dtype, and its range check.
pub fn scatter_add(device: Device) {
    for dtype in ALL.into_iter().filter(|d| *d != DType::Bool) {
        let target = input(&[5, 7, 3], dtype, 40, Values::Normal);
        let updates = input(&[5, 2, 3, 3], dtype, 41, Values::Normal);
        for idx_dtype in [DType::I32, DType::I64, DType::U8] {
            let ids = Tensor::from_slice(&[4i64, 0, 4, 2, 4, 1], &[2, 3])
                .and_then(|t| t.cast(idx_dtype))
                .unwrap();
            let what = format!("scatter_add {dtype} by {idx_dtype}");
            check(
                device,
                &what,
                &[target.clone(), ids, updates.clone()],
                |t| t[0].scatter_add(&t[1], &t[2], 1),
            );
        }
        let bad = Tensor::from_slice(&[0i64, 7], &[2]).unwrap();
        check_error(
            device,
            &format!("scatter_add {dtype} out of range"),
            &[
                target.clone(),
                bad,
                input(&[5, 2, 3], dtype, 42, Values::Normal),
            ],
            |t| t[0].scatter_add(&t[1], &t[2], 1),
        );
    }
}

/// The keyed generator gives the same numbers on every backend.
pub fn random_uniform(device: Device) {
    for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        for (key, stream) in [(0i64, 0u64), (7, 3), (-5, 1 << 40)] {
            let k = Tensor::from_slice(&[key], &[]).unwrap();
            let what = format!("random_uniform {dtype} key {key} stream {stream}");
            check(device, &what, &[k], |t| {
                Tensor::random_uniform(&[3, 77], &t[0], stream, dtype)
            });
        }
    }
}
