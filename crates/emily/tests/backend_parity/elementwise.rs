//! Parity cases: creation, unary, binary, where and cast on every dtype.

use super::harness::{check, check_built, input, Values, ALL, FLOATS, NUMERIC};
use emily::ops::{BinaryOp, UnaryOp};
use emily::{DType, Device, Tensor};

/// Odd shapes that break vector tails.
const SHAPES: [&[usize]; 4] = [&[1], &[7], &[77], &[3, 7, 11]];

/// full / zeros / ones / iota / arange on `device` for every dtype.
pub fn creation(device: Device) {
    for dtype in ALL {
        for shape in SHAPES {
            check_built(device, &format!("full {dtype} {shape:?}"), |d| {
                Tensor::full(shape, 2.5, dtype, d)
            });
            check_built(device, &format!("zeros/ones {dtype} {shape:?}"), |d| {
                let z = Tensor::zeros_on(shape, dtype, d)?;
                Tensor::concat(&[&z, &Tensor::ones_on(shape, dtype, d)?], 0)
            });
            let axis = shape.len() - 1;
            check_built(device, &format!("iota {dtype} {shape:?}"), |d| {
                Tensor::iota_on(shape, axis, dtype, d)
            });
        }
        check_built(device, &format!("arange {dtype}"), |d| {
            Tensor::arange_on(77, dtype, d)
        });
        check_built(device, &format!("randn/uniform {dtype}"), |d| {
            let a = Tensor::randn_on(&[7, 11], 0.5, 2.0, 9, dtype, d)?;
            let b = Tensor::rand_uniform_on(&[7, 11], -3.0, 3.0, 9, dtype, d)?;
            Tensor::concat(&[&a, &b], 0)
        });
    }
}

/// Whether `op` accepts `dtype` (the catalogue's rule).
fn unary_accepts(op: UnaryOp, dtype: DType) -> bool {
    use UnaryOp::*;
    match op {
        Neg | Abs | Square | Sign | Relu => dtype != DType::Bool,
        LogicalNot => dtype == DType::Bool,
        _ => dtype.is_float(),
    }
}

/// Every unary op on every dtype it accepts, at odd sizes.
pub fn unary(device: Device) {
    use UnaryOp::*;
    for op in UnaryOp::ALL {
        for dtype in ALL.into_iter().filter(|&d| unary_accepts(op, d)) {
            let values = match op {
                Log | Sqrt | Rsqrt | Recip => Values::Positive,
                Floor | Ceil | Round | Sign => Values::Coarse,
                _ => Values::Normal,
            };
            for (s, shape) in SHAPES.iter().enumerate() {
                let x = input(shape, dtype, 100 + s as u64, values);
                check(device, &format!("{op:?} {dtype} {shape:?}"), &[x], |t| {
                    t[0].unary(op)
                });
            }
        }
    }
}

/// Every binary op on every dtype it accepts, with broadcasting.
pub fn binary(device: Device) {
    use BinaryOp::*;
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[77], &[77]),
        (&[3, 1, 7], &[5, 1]),
        (&[7, 11], &[]),
        (&[1], &[2, 7]),
    ];
    for op in BinaryOp::ALL {
        let dtypes: Vec<DType> = match op {
            Pow => FLOATS.to_vec(),
            LogicalAnd | LogicalOr => vec![DType::Bool],
            Eq | Ne | Lt | Le | Gt | Ge => ALL.to_vec(),
            _ => NUMERIC.to_vec(),
        };
        for dtype in dtypes {
            let (va, vb) = match op {
                Pow => (Values::Positive, Values::Normal),
                Div => (Values::Normal, Values::Positive),
                Eq | Ne | Lt | Le | Gt | Ge => (Values::Coarse, Values::Coarse),
                _ => (Values::Normal, Values::Normal),
            };
            for (s, (sa, sb)) in pairs.iter().enumerate() {
                let a = input(sa, dtype, 200 + s as u64, va);
                let b = input(sb, dtype, 300 + s as u64, vb);
                let what = format!("{op:?} {dtype} {sa:?} {sb:?}");
                check(device, &what, &[a, b], |t| t[0].binary(op, &t[1]));
            }
        }
    }
}

/// `where` with broadcasting on every dtype.
pub fn select(device: Device) {
    for dtype in ALL {
        let cond = input(&[3, 1, 7], DType::Bool, 1, Values::Normal);
        let a = input(&[5, 7], dtype, 2, Values::Normal);
        let b = input(&[1], dtype, 3, Values::Normal);
        check(device, &format!("where {dtype}"), &[cond, a, b], |t| {
            Tensor::where_cond(&t[0], &t[1], &t[2])
        });
    }
}

/// Every cast between two dtypes.
pub fn cast(device: Device) {
    for from in ALL {
        for to in ALL {
            let x = input(&[77], from, 7, Values::Coarse);
            let y = input(&[7, 11], from, 8, Values::Normal);
            check(device, &format!("cast {from} -> {to}"), &[x, y], |t| {
                Tensor::concat(&[&t[0].cast(to)?, &t[1].cast(to)?.flatten()?], 0)
            });
        }
    }
}
