//! Float64 references for `x · wᵀ` with quantized weights, and the bounds a
//! kernel's result must meet.

use emily_kernels::quant::{BlockFormat, Q8Activations};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::reference::{random_blocks, read};

/// Random activations with a zero block and a few zeros mixed in.
pub fn random_activations(rng: &mut StdRng, m: usize, k: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..m * k).map(|_| rng.sample(StandardNormal)).collect();
    for v in x.iter_mut().step_by(7) {
        *v = 0.0;
    }
    if k >= 64 {
        x[32..64].fill(0.0);
    }
    x
}

/// Runs a kernel with 8-bit activations (`run(weight bytes, activations,
/// out)`) on `n` random weight rows of `k` in `format` and `m` random
/// activation rows, and checks its output: exact to `rel` round-off against
/// the activations it multiplied, and within the activation rounding (and
/// twice `rel`) of the true product.
#[allow(clippy::too_many_arguments)]
pub fn check_q8_kernel(
    rng: &mut StdRng,
    what: &str,
    format: BlockFormat,
    (m, n, k): (usize, usize, usize),
    rel: f64,
    run: impl FnOnce(&[u8], &Q8Activations, &mut [f32]),
) {
    let bytes = random_blocks(rng, format, n * k / format.block_elems());
    let w = Weights::read(format, &bytes, n, k);
    let x = random_activations(rng, m, k);
    let act = Q8Activations::quantize(&x, m, k);
    let mut out = vec![f32::NAN; m * n];
    run(&bytes, &act, &mut out);
    let what = format!("{what} {format} m={m} n={n} k={k}");
    let xq = rounded_activations(&act);
    check_product(&what, &w, &xq, m, &out, rel, |_, _| 0.0);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    check_product(&what, &w, &x64, m, &out, 2.0 * rel, |i, r| {
        activation_rounding_bound(&w, &act, i, r)
    });
}

/// A weight matrix read independently: values and term magnitudes, `(n, k)`.
pub struct Weights {
    pub n: usize,
    pub k: usize,
    pub value: Vec<f64>,
    pub magnitude: Vec<f64>,
}

impl Weights {
    pub fn read(format: BlockFormat, bytes: &[u8], n: usize, k: usize) -> Weights {
        let (value, magnitude) = read(format, bytes).into_iter().unzip();
        Weights {
            n,
            k,
            value,
            magnitude,
        }
    }
}

/// The activations as the integer kernels see them: `d · q` per element.
pub fn rounded_activations(a: &Q8Activations) -> Vec<f64> {
    a.qs.iter()
        .enumerate()
        .map(|(j, &q)| a.d[j / 32] as f64 * q as f64)
        .collect()
}

/// Checks `got` (m × n) against `Σ_j w[r, j] · x[i, j]` in f64: per element
/// `|err| <= rel · Σ_j |terms| + extra(i, r)`.
#[allow(clippy::too_many_arguments)]
pub fn check_product(
    what: &str,
    w: &Weights,
    x: &[f64],
    m: usize,
    got: &[f32],
    rel: f64,
    extra: impl Fn(usize, usize) -> f64,
) {
    let (n, k) = (w.n, w.k);
    assert_eq!(got.len(), m * n, "{what}: output size");
    for i in 0..m {
        for r in 0..n {
            let (mut s, mut mag) = (0f64, 0f64);
            for j in 0..k {
                s += w.value[r * k + j] * x[i * k + j];
                mag += w.magnitude[r * k + j] * x[i * k + j].abs();
            }
            let g = got[i * n + r] as f64;
            let bound = rel * mag + extra(i, r) + 1e-30;
            assert!(
                (g - s).abs() <= bound,
                "{what}: out[{i},{r}] = {g}, expected {s} (err {:e} > bound {bound:e})",
                (g - s).abs()
            );
        }
    }
}

/// The bound quantizing the activations adds: `Σ_j |w[r, j]| · d_a(i, j) / 2`.
pub fn activation_rounding_bound(w: &Weights, a: &Q8Activations, i: usize, r: usize) -> f64 {
    let k = w.k;
    (0..k)
        .map(|j| w.value[r * k + j].abs() * a.d[(i * k + j) / 32] as f64 / 2.0)
        .sum()
}
