//! Shared by the attention tests: random inputs and the float64 reference.

use emily_kernels::fast::{Mask, SdpaParams};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

/// `n` standard-normal floats from `seed`.
pub fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// float64 attention following the definition literally; rows with nothing
/// visible (and no sink) are zeros. Returns `(B, Hq, Tq, Dv)` row-major.
pub fn sdpa_ref(q: &[f32], k: &[f32], v: &[f32], p: &SdpaParams<'_>) -> Vec<f64> {
    let group = p.q_heads / p.kv_heads;
    let mut out = Vec::new();
    for b in 0..p.batch {
        for h in 0..p.q_heads {
            let hk = h / group;
            for i in 0..p.q_len {
                let qr = &q[p.q_strides.offset(b, h, i)..][..p.head_dim];
                let mut s = vec![f64::NEG_INFINITY; p.kv_len];
                for (j, sj) in s.iter_mut().enumerate() {
                    let kr = &k[p.k_strides.offset(b, hk, j)..][..p.head_dim];
                    let dot: f64 = qr.iter().zip(kr).map(|(&a, &c)| a as f64 * c as f64).sum();
                    let mut x = dot * p.scale as f64;
                    match p.mask {
                        Mask::None => {}
                        Mask::Causal => {
                            if j as isize > i as isize + p.kv_len as isize - p.q_len as isize {
                                x = f64::NEG_INFINITY;
                            }
                        }
                        Mask::CausalBand { shift, window } => {
                            let last = i as isize + shift;
                            let first = window.map_or(isize::MIN, |w| last + 1 - w as isize);
                            if (j as isize) > last || (j as isize) < first {
                                x = f64::NEG_INFINITY;
                            }
                        }
                        Mask::Additive { data, strides } => {
                            x += data[b * strides.batch
                                + h * strides.head
                                + i * strides.q
                                + j * strides.k] as f64
                        }
                        Mask::Boolean { data, strides } => {
                            if data[b * strides.batch
                                + h * strides.head
                                + i * strides.q
                                + j * strides.k]
                                == 0
                            {
                                x = f64::NEG_INFINITY;
                            }
                        }
                    }
                    *sj = x;
                }
                let sink = p.sinks.map(|s| s[h] as f64);
                let mx = s
                    .iter()
                    .copied()
                    .chain(sink)
                    .fold(f64::NEG_INFINITY, f64::max);
                let mut row = vec![0.0f64; p.v_head_dim];
                if mx > f64::NEG_INFINITY {
                    let w: Vec<f64> = s.iter().map(|&x| (x - mx).exp()).collect();
                    let denom = w.iter().sum::<f64>() + sink.map_or(0.0, |s| (s - mx).exp());
                    for (j, wj) in w.iter().enumerate() {
                        let vr = &v[p.v_strides.offset(b, hk, j)..][..p.v_head_dim];
                        for (o, &x) in row.iter_mut().zip(vr) {
                            *o += wj / denom * x as f64;
                        }
                    }
                }
                out.extend(row);
            }
        }
    }
    out
}
