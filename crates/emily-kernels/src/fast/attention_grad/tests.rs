//! The causal attention gradient against a float64 reference (the textbook
//! formulas over the full score matrix), the reference against central finite
//! differences, at odd lengths, GQA ratios 1 and 2, head sizes 16 and 64 (the
//! compile-time-sized paths) and head sizes off the vector width.

use super::*;

/// Deterministic values in [-1, 1).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Inputs {
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
}

/// Visible keys of query `i`.
fn visible(p: &SdpaParams<'_>, i: usize) -> usize {
    (i as isize + p.kv_len as isize - p.q_len as isize + 1).clamp(0, p.kv_len as isize) as usize
}

/// The probabilities of one (batch, query head, row), in f64.
fn probs(p: &SdpaParams<'_>, x: &Inputs, b: usize, h: usize, i: usize) -> Vec<f64> {
    let (d, hk) = (p.head_dim, h / (p.q_heads / p.kv_heads));
    let n = visible(p, i);
    let qi = &x.q[((b * p.q_heads + h) * p.q_len + i) * d..][..d];
    let s: Vec<f64> = (0..n)
        .map(|j| {
            let kj = &x.k[((b * p.kv_heads + hk) * p.kv_len + j) * d..][..d];
            p.scale as f64 * qi.iter().zip(kj).map(|(a, c)| a * c).sum::<f64>()
        })
        .collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

/// `sum(o ∘ c)` for a fixed cotangent `c`: the scalar whose gradient the kernel computes.
fn loss(p: &SdpaParams<'_>, x: &Inputs, c: &[f64]) -> f64 {
    let dv = p.v_head_dim;
    let mut total = 0.0;
    for b in 0..p.batch {
        for h in 0..p.q_heads {
            let hk = h / (p.q_heads / p.kv_heads);
            for i in 0..p.q_len {
                let pr = probs(p, x, b, h, i);
                let ci = &c[((b * p.q_heads + h) * p.q_len + i) * dv..][..dv];
                for (j, pj) in pr.iter().enumerate() {
                    let vj = &x.v[((b * p.kv_heads + hk) * p.kv_len + j) * dv..][..dv];
                    total += pj * vj.iter().zip(ci).map(|(a, g)| a * g).sum::<f64>();
                }
            }
        }
    }
    total
}

/// The analytic gradients in f64.
fn reference(p: &SdpaParams<'_>, x: &Inputs, c: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (d, dvh) = (p.head_dim, p.v_head_dim);
    let mut dq = vec![0.0; x.q.len()];
    let mut dk = vec![0.0; x.k.len()];
    let mut dv = vec![0.0; x.v.len()];
    for b in 0..p.batch {
        for h in 0..p.q_heads {
            let hk = h / (p.q_heads / p.kv_heads);
            for i in 0..p.q_len {
                let pr = probs(p, x, b, h, i);
                let qo = ((b * p.q_heads + h) * p.q_len + i) * d;
                let ci = &c[((b * p.q_heads + h) * p.q_len + i) * dvh..][..dvh];
                let kv = |j: usize| (b * p.kv_heads + hk) * p.kv_len + j;
                let dp: Vec<f64> = (0..pr.len())
                    .map(|j| {
                        x.v[kv(j) * dvh..][..dvh]
                            .iter()
                            .zip(ci)
                            .map(|(a, g)| a * g)
                            .sum()
                    })
                    .collect();
                let dsum: f64 = pr.iter().zip(&dp).map(|(a, g)| a * g).sum();
                for j in 0..pr.len() {
                    let ds = pr[j] * (dp[j] - dsum) * p.scale as f64;
                    for e in 0..dvh {
                        dv[kv(j) * dvh + e] += pr[j] * ci[e];
                    }
                    for f in 0..d {
                        dq[qo + f] += ds * x.k[kv(j) * d + f];
                        dk[kv(j) * d + f] += ds * x.q[qo + f];
                    }
                }
            }
        }
    }
    (dq, dk, dv)
}

fn params(
    batch: usize,
    heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    d: usize,
) -> SdpaParams<'static> {
    SdpaParams {
        mask: Mask::Causal,
        ..SdpaParams::new(batch, heads, kv_heads, q_len, kv_len, d)
    }
}

fn check(p: SdpaParams<'_>, seed: u64) {
    let qf = random(totals(&p)[0], seed);
    let kf = random(totals(&p)[1], seed + 1);
    let vf = random(totals(&p)[2], seed + 2);
    let cf = random(totals(&p)[3], seed + 3);
    let wide = |a: &[f32]| a.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let x = Inputs {
        q: wide(&qf),
        k: wide(&kf),
        v: wide(&vf),
    };
    let (rq, rk, rv) = reference(&p, &x, &wide(&cf));
    let mut dq = vec![f32::NAN; qf.len()];
    let mut dk = vec![f32::NAN; kf.len()];
    let mut dv = vec![f32::NAN; vf.len()];
    sdpa_causal_backward_f32(&qf, &kf, &vf, &cf, &mut dq, &mut dk, &mut dv, &p);
    for (name, got, want) in [("dq", &dq, &rq), ("dk", &dk, &rk), ("dv", &dv, &rv)] {
        for (n, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
            let tol = 2e-5 * (1.0 + w.abs()) * (p.kv_len as f64).sqrt();
            assert!(
                (g as f64 - w).abs() <= tol,
                "{name}[{n}] = {g}, want {w} ({p:?})"
            );
        }
    }
}

#[test]
fn matches_float64_reference() {
    for &t in &[1usize, 7, 77] {
        for &(heads, kv) in &[(2usize, 2usize), (4, 2)] {
            for &d in &[16usize, 64] {
                check(
                    params(2, heads, kv, t, t, d),
                    (t * 131 + heads * 7 + d) as u64,
                );
            }
        }
    }
}

#[test]
fn head_sizes_off_the_vector_width_and_unequal() {
    // Column tails (24, 8, 40), odd column counts (an odd last column of the
    // paired products) and value heads narrower or wider than the queries'.
    for &(d, dv) in &[(24usize, 24usize), (16, 8), (8, 16), (40, 16), (17, 33)] {
        for &t in &[7usize, 77] {
            let p = params(2, 4, 2, t, t, d).with_v_head_dim(dv);
            check(p, (t * 17 + d * 3 + dv) as u64);
        }
    }
}

#[test]
fn tiny_head_sizes_and_long_sequences() {
    // Head sizes below one register tile of features (1, 3), and a length
    // of many strips with a partial last one (1000 = 62·16 + 8).
    for &(d, dv) in &[(1usize, 1usize), (3, 5), (1, 16)] {
        for &t in &[1usize, 7, 77] {
            check(
                params(2, 2, 1, t, t, d).with_v_head_dim(dv),
                (t + d * 5 + dv) as u64,
            );
        }
    }
    check(params(1, 2, 1, 1000, 1000, 16), 99);
}

#[test]
fn queries_aligned_to_the_end_of_longer_keys() {
    // q_len < kv_len (decoding-style alignment) and a row-block boundary.
    check(params(1, 2, 1, 5, 33, 16), 11);
    check(params(3, 3, 3, 17, 17, 8), 12);
}

#[test]
fn rows_without_visible_keys_get_zero_gradients() {
    // q_len > kv_len: the first q_len − kv_len queries see no key.
    let p = params(1, 1, 1, 5, 3, 4);
    let q = random(totals(&p)[0], 1);
    let k = random(totals(&p)[1], 2);
    let v = random(totals(&p)[2], 3);
    let c = random(totals(&p)[3], 4);
    let (mut dq, mut dk, mut dv) = (
        vec![f32::NAN; q.len()],
        vec![f32::NAN; k.len()],
        vec![f32::NAN; v.len()],
    );
    sdpa_causal_backward_f32(&q, &k, &v, &c, &mut dq, &mut dk, &mut dv, &p);
    assert!(dq[..2 * 4].iter().all(|&x| x == 0.0), "{dq:?}");
    assert!(dq.iter().chain(&dk).chain(&dv).all(|x| x.is_finite()));
}

/// Element `n` of q (0), k (1) or v (2).
fn slot(x: &mut Inputs, which: usize, n: usize) -> &mut f64 {
    match which {
        0 => &mut x.q[n],
        1 => &mut x.k[n],
        _ => &mut x.v[n],
    }
}

#[test]
fn float64_reference_matches_central_differences() {
    // The reference the kernel is held to, against the loss it differentiates.
    for &(heads, kv, t, d) in &[
        (2usize, 1usize, 7usize, 16usize),
        (2, 2, 1, 16),
        (2, 1, 5, 64),
    ] {
        let p = params(1, heads, kv, t, t, d);
        let wide = |a: Vec<f32>| a.into_iter().map(|v| v as f64).collect::<Vec<_>>();
        let mut x = Inputs {
            q: wide(random(totals(&p)[0], 5)),
            k: wide(random(totals(&p)[1], 6)),
            v: wide(random(totals(&p)[2], 7)),
        };
        let c = wide(random(totals(&p)[3], 8));
        let (rq, rk, rv) = reference(&p, &x, &c);
        let h = 1e-6;
        for which in 0..3 {
            let len = [x.q.len(), x.k.len(), x.v.len()][which];
            for n in (0..len).step_by(len / 9 + 1) {
                let orig = *slot(&mut x, which, n);
                *slot(&mut x, which, n) = orig + h;
                let up = loss(&p, &x, &c);
                *slot(&mut x, which, n) = orig - h;
                let down = loss(&p, &x, &c);
                *slot(&mut x, which, n) = orig;
                let fd = (up - down) / (2.0 * h);
                let want = [&rq, &rk, &rv][which][n];
                assert!(
                    (fd - want).abs() < 1e-7 * (1.0 + want.abs()),
                    "input {which}[{n}]: fd {fd}, analytic {want}"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "only a causal mask")]
fn refuses_parameters_other_than_the_causal_contiguous_forward() {
    let p = SdpaParams {
        mask: Mask::None,
        ..params(1, 2, 1, 5, 5, 16)
    };
    let [nq, nk, nv, no] = totals(&p);
    let (q, k, v, c) = (vec![0.0; nq], vec![0.0; nk], vec![0.0; nv], vec![0.0; no]);
    let (mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nk], vec![0.0; nv]);
    sdpa_causal_backward_f32(&q, &k, &v, &c, &mut dq, &mut dk, &mut dv, &p);
}
