//! Parity cases: every reduction, softmax, matmul and conv1d.

use super::harness::{check, input, Values, ALL, FLOATS, NUMERIC};
use emily::ops::Reduction;
use emily::{DType, Device, Tensor};

/// Every reduction on every dtype it accepts, over several axis sets.
pub fn reductions(device: Device) {
    use Reduction::*;
    let axes_sets: [&[isize]; 5] = [&[-1], &[0], &[0, 2], &[1], &[]];
    for op in [Sum, Mean, Max, Min, Prod, ArgMax, ArgMin, LogSumExp] {
        let dtypes: Vec<DType> = match op {
            Mean | LogSumExp => FLOATS.to_vec(),
            ArgMax | ArgMin => ALL.to_vec(),
            _ => NUMERIC.to_vec(),
        };
        for dtype in dtypes {
            // Products stay in range over few elements; the rest see odd lengths.
            let shape: &[usize] = if op == Prod { &[3, 5, 2] } else { &[3, 77, 7] };
            let values = if matches!(op, ArgMax | ArgMin | Max | Min) {
                Values::Coarse
            } else {
                Values::Normal
            };
            let x = input(shape, dtype, 40, values);
            for axes in axes_sets {
                if matches!(op, ArgMax | ArgMin) && axes.len() != 1 {
                    continue;
                }
                for keep in [false, true] {
                    let what = format!("{op:?} {dtype} axes {axes:?} keep {keep}");
                    check(device, &what, std::slice::from_ref(&x), |t| {
                        t[0].reduce(op, axes, keep)
                    });
                }
            }
        }
    }
}

/// Softmax along every axis, including fully masked (-inf) rows.
pub fn softmax(device: Device) {
    for dtype in FLOATS {
        let x = input(&[3, 7, 77], dtype, 41, Values::Normal);
        for axis in [-1, 0, 1] {
            check(
                device,
                &format!("softmax {dtype} axis {axis}"),
                std::slice::from_ref(&x),
                |t| t[0].softmax(axis),
            );
        }
        let keep = input(&[3, 7, 1], DType::Bool, 42, Values::Normal);
        check(
            device,
            &format!("masked softmax {dtype}"),
            &[x.clone(), keep],
            |t| {
                let neg_inf = Tensor::scalar(f64::NEG_INFINITY, dtype, t[0].device());
                Tensor::where_cond(&t[1], &t[0], &neg_inf)?.softmax(-1)
            },
        );
    }
}

/// Matrix products: odd sizes, batches, broadcast batches, transposed
/// operands, and f32 activations times half weights.
pub fn matmul(device: Device) {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[1, 1], &[1, 1]),
        (&[7, 77], &[77, 5]),
        (&[2, 3, 7, 5], &[5, 4]),
        (&[2, 1, 7, 5], &[3, 5, 13]),
        (&[1, 33], &[33, 65]),
    ];
    for dtype in FLOATS {
        for (s, (sa, sb)) in cases.iter().enumerate() {
            let a = input(sa, dtype, 50 + s as u64, Values::Normal);
            let b = input(sb, dtype, 60 + s as u64, Values::Normal);
            check(
                device,
                &format!("matmul {dtype} {sa:?} {sb:?}"),
                &[a, b],
                |t| t[0].matmul(&t[1]),
            );
        }
        // Transposed operands are read in place through strides.
        let a = input(&[2, 11, 7], dtype, 70, Values::Normal);
        let b = input(&[2, 9, 11], dtype, 71, Values::Normal);
        check(device, &format!("matmul {dtype} aᵀ bᵀ"), &[a, b], |t| {
            t[0].t()?.matmul(&t[1].t()?)
        });
    }
    for half in [DType::F16, DType::BF16] {
        for rows in [1, 3, 9] {
            let x = input(&[rows, 77], DType::F32, 72, Values::Normal);
            let w = input(&[13, 77], half, 73, Values::Normal);
            let what = format!("matmul f32 x {half}ᵀ rows {rows}");
            check(device, &what, &[x.clone(), w.clone()], |t| {
                t[0].matmul(&t[1].t()?)
            });
            let what = format!("matmul f32 x {half} rows {rows}");
            check(device, &what, &[x, w.t().unwrap()], |t| t[0].matmul(&t[1]));
        }
    }
    // 8-bit integer products: the reference applies the same quantization.
    for (rows, k, n) in [(1, 7, 5), (9, 77, 13), (40, 33, 65)] {
        let x = input(&[rows, k], DType::F32, 74, Values::Normal);
        let w = input(&[n, k], DType::F32, 75, Values::Normal);
        check(
            device,
            &format!("matmul_int8 {rows}x{k}x{n}"),
            &[x, w],
            |t| t[0].matmul_int8(&t[1].t()?),
        );
    }
}

/// 1-D convolutions: stride, padding, dilation and groups.
pub fn conv1d(device: Device) {
    // (c_in, length, c_out, kernel, stride, padding, dilation, groups)
    let cases = [
        (3, 77, 5, 3, 1, 0, 1, 1),
        (3, 77, 4, 3, 2, 1, 1, 1),
        (2, 7, 3, 3, 1, 2, 2, 1),
        (6, 11, 9, 1, 1, 0, 1, 3),
        (1, 1, 1, 1, 1, 0, 1, 1),
    ];
    for dtype in FLOATS {
        for (s, &(cin, l, cout, k, stride, pad, dil, groups)) in cases.iter().enumerate() {
            let x = input(&[2, cin, l], dtype, 80 + s as u64, Values::Normal);
            let w = input(
                &[cout, cin / groups, k],
                dtype,
                90 + s as u64,
                Values::Normal,
            );
            if dtype == DType::F32 {
                let (xb, wb) = (x.clone(), w.cast(DType::BF16).unwrap());
                check(
                    device,
                    &format!("conv1d f32 x bf16 case {s}"),
                    &[xb, wb],
                    |t| t[0].conv1d(&t[1], stride, pad, dil, groups),
                );
            }
            let what = format!("conv1d {dtype} case {s}");
            check(device, &what, &[x, w], |t| {
                t[0].conv1d(&t[1], stride, pad, dil, groups)
            });
        }
    }
}
