//! The parity harness: builds the same op on a device under test and on the
//! reference backend from the same seeded host inputs, and compares the
//! results with a tolerance per dtype. Parameterised by device, so a new
//! backend (CUDA) reuses every case by calling the family functions with its
//! own `Device`.

use emily::{Bool, DType, Device, Result, Tensor};
use rand::{Rng, SeedableRng};

/// Every dtype of the catalogue.
pub const ALL: [DType; 8] = super::common::ALL_DTYPES;
/// The float dtypes.
pub const FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
/// Every dtype arithmetic accepts (all but Bool).
pub const NUMERIC: [DType; 7] = [
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I32,
    DType::I64,
    DType::U8,
];

/// The values an input is drawn from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Values {
    /// Standard normal (floats); small integers otherwise.
    Normal,
    /// In (0.1, 3) (for log, sqrt, pow bases ...).
    Positive,
    /// Multiples of 0.5 in [-3, 3], so comparisons and rounding see ties.
    Coarse,
}

/// The relative tolerance of a result of `dtype` against the reference:
/// `|got - want| <= tol * (1 + |want|)`. Integers and Bool are exact; f32
/// allows a few ulps of kernel error and f32 accumulation; half types one
/// ulp of their final rounding (the reference rounds f64 once, the CPU
/// rounds an f32 result).
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-10,
        // Quantised results are read back dequantised (f32 on the CPU).
        DType::F32 | DType::Quantized(_) => 3e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
        DType::I32 | DType::I64 | DType::U8 | DType::Bool => 0.0,
    }
}

/// A seeded CPU input of `shape`/`dtype`.
pub fn input(shape: &[usize], dtype: DType, seed: u64, values: Values) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t = match dtype {
        DType::Bool => {
            let v: Vec<Bool> = (0..n).map(|_| Bool(rng.gen_range(0..2))).collect();
            Tensor::from_slice(&v, shape)
        }
        DType::U8 => {
            let hi = if values == Values::Positive { 6 } else { 30 };
            let lo = (values == Values::Positive) as u8;
            let v: Vec<u8> = (0..n).map(|_| rng.gen_range(lo..=hi)).collect();
            Tensor::from_slice(&v, shape)
        }
        DType::I32 | DType::I64 => {
            let (lo, hi) = if values == Values::Positive {
                (1, 6)
            } else {
                (-20, 20)
            };
            let v: Vec<i64> = (0..n).map(|_| rng.gen_range(lo..=hi)).collect();
            Tensor::from_slice(&v, shape).and_then(|t| t.cast(dtype))
        }
        _ => {
            let v: Vec<f64> = (0..n)
                .map(|_| match values {
                    Values::Normal => rand_distr::Distribution::<f64>::sample(
                        &rand_distr::StandardNormal,
                        &mut rng,
                    ),
                    Values::Positive => rng.gen_range(0.1..3.0),
                    Values::Coarse => rng.gen_range(-6i32..=6) as f64 * 0.5,
                })
                .collect();
            Tensor::from_slice(&v, shape).and_then(|t| t.cast(dtype))
        }
    };
    t.and_then(|t| t.eval()).expect("input")
}

/// Runs `f` on `inputs` moved to `device` and to the reference backend and
/// compares the results (see [`check_built`]).
pub fn check(
    device: Device,
    what: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    check_built(device, what, |d| {
        let moved = inputs
            .iter()
            .map(|t| t.to_device(d))
            .collect::<Result<Vec<_>>>()?;
        f(&moved)
    })
}

/// Builds a result with `build` on `device` and on the reference backend,
/// reads both back through their backends, and asserts they agree (dtype,
/// shape, values within [`tolerance`] of the output dtype). When the build
/// or the evaluation fails on one device it must fail on the other too.
pub fn check_built(device: Device, what: &str, build: impl Fn(Device) -> Result<Tensor>) {
    let run = |d: Device| -> Result<(DType, Vec<usize>, Vec<f64>)> {
        let out = build(d)?;
        assert_eq!(out.device(), d, "{what}: output device");
        let host = out.to_device(Device::Cpu)?;
        Ok((host.dtype(), host.shape().to_vec(), host.to_f64_vec()?))
    };
    let (got, want) = (run(device), run(Device::Reference));
    let ((gd, gs, g), (wd, ws, w)) = match (got, want) {
        (Ok(g), Ok(w)) => (g, w),
        (Err(_), Err(_)) => return,
        (g, w) => panic!(
            "{what}: {device} gave {:?}, reference gave {:?}",
            g.err(),
            w.err()
        ),
    };
    assert_eq!((gd, &gs), (wd, &ws), "{what}: dtype and shape on {device}");
    let tol = tolerance(wd);
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = if b.is_nan() {
            a.is_nan()
        } else if b.is_infinite() || tol == 0.0 {
            a == b
        } else {
            (a - b).abs() <= tol * (1.0 + b.abs())
        };
        assert!(
            ok,
            "{what} ({wd}, shape {ws:?}) on {device}: element {i} is {a}, reference {b}"
        );
    }
}

/// Asserts that `f` fails on both `device` and the reference backend (bad
/// input at eval time gives an error everywhere, never a value).
pub fn check_error(
    device: Device,
    what: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    for d in [device, Device::Reference] {
        let moved: Vec<Tensor> = inputs.iter().map(|t| t.to_device(d).unwrap()).collect();
        let r = f(&moved).and_then(|t| t.to_device(Device::Cpu)?.to_f64_vec());
        assert!(r.is_err(), "{what}: expected an error on {d}, got {r:?}");
    }
}
