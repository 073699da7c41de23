//! The decode shapes of attention (1..=8 query rows per block: a decoding
//! step's heads, beam rows over one window's keys) against a float64
//! reference, with keys and values in f32, f16 (f32 queries: a half KV
//! cache; and all-f16) and bf16, at key counts that break the kernels' 16-key
//! groups and 256-key tiles, MHA and GQA, both layouts, causal or not — and
//! the same under every `EMILY_ISA` cap, in child processes (the ISA is
//! chosen once per process).

mod isa_children;

use emily_kernels::fast::{sdpa_bf16, sdpa_f16, sdpa_f32, sdpa_f32_f16_kv, Mask, SdpaParams};
use half::{bf16, f16};

mod sdpa_common;
use sdpa_common::{randn, sdpa_ref};

/// Key counts: 1, a 16-key group's tail, several groups, several tiles.
const KV_LENS: [usize; 5] = [1, 7, 77, 1000, 1500];

/// `(q_heads, kv_heads, q_len, head_dim, bshd)`: 1..=8 rows of one head
/// (MHA), 4, 8 and 6 rows of grouped heads, odd head dims.
fn shapes() -> Vec<(usize, usize, usize, usize, bool)> {
    let mut s: Vec<_> = (1..=8)
        .map(|t| (3, 3, t, if t % 2 == 0 { 64 } else { 20 }, t == 5))
        .collect();
    s.extend([
        (8, 2, 1, 64, true),
        (8, 2, 2, 33, false),
        (6, 1, 1, 64, false),
    ]);
    s
}

/// The output of one entry point on inputs rounded as it reads them, and
/// its allowed error relative to each reference value.
struct Case {
    name: &'static str,
    tolerance: fn(f64) -> f64,
}

const CASES: [Case; 4] = [
    Case {
        name: "f32",
        tolerance: |_| 1e-5,
    },
    Case {
        name: "f32 q, f16 kv",
        tolerance: |_| 1e-5,
    },
    Case {
        name: "f16",
        tolerance: |w| w.abs() * 4.9e-4 + 2e-5,
    },
    Case {
        name: "bf16",
        tolerance: |w| w.abs() * 3.9e-3 + 2e-5,
    },
];

fn f16s(x: &[f32]) -> Vec<f16> {
    x.iter().map(|&v| f16::from_f32(v)).collect()
}

fn bf16s(x: &[f32]) -> Vec<bf16> {
    x.iter().map(|&v| bf16::from_f32(v)).collect()
}

fn widen_f16(x: &[f16]) -> Vec<f32> {
    x.iter().map(|v| v.to_f32()).collect()
}

/// Runs case `c` at `p` on random data: `(output, reference)`, both in the
/// output's layout.
fn run_case(c: &Case, p: &SdpaParams<'_>, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let (b, hq, hk, t, kv) = (p.batch, p.q_heads, p.kv_heads, p.q_len, p.kv_len);
    let q = randn(p.q_strides.required_len(b, hq, t, p.head_dim), seed);
    let k = randn(p.k_strides.required_len(b, hk, kv, p.head_dim), seed + 1);
    let v = randn(p.v_strides.required_len(b, hk, kv, p.v_head_dim), seed + 2);
    let ol = p.out_strides.required_len(b, hq, t, p.v_head_dim);
    let (got, want): (Vec<f64>, Vec<f64>) = match c.name {
        "f32" => {
            let mut o = vec![f32::NAN; ol];
            sdpa_f32(&q, &k, &v, &mut o, p);
            (
                o.iter().map(|&x| x as f64).collect(),
                sdpa_ref(&q, &k, &v, p),
            )
        }
        "f32 q, f16 kv" => {
            let (kh, vh) = (f16s(&k), f16s(&v));
            let mut o = vec![f32::NAN; ol];
            sdpa_f32_f16_kv(&q, &kh, &vh, &mut o, p);
            let want = sdpa_ref(&q, &widen_f16(&kh), &widen_f16(&vh), p);
            (o.iter().map(|&x| x as f64).collect(), want)
        }
        "f16" => {
            let (qh, kh, vh) = (f16s(&q), f16s(&k), f16s(&v));
            let mut o = vec![f16::NAN; ol];
            sdpa_f16(&qh, &kh, &vh, &mut o, p);
            let want = sdpa_ref(&widen_f16(&qh), &widen_f16(&kh), &widen_f16(&vh), p);
            (o.iter().map(|x| x.to_f64()).collect(), want)
        }
        _ => {
            let (qh, kh, vh) = (bf16s(&q), bf16s(&k), bf16s(&v));
            let mut o = vec![bf16::NAN; ol];
            sdpa_bf16(&qh, &kh, &vh, &mut o, p);
            let widen = |x: &[bf16]| x.iter().map(|v| v.to_f32()).collect::<Vec<_>>();
            (
                o.iter().map(|x| x.to_f64()).collect(),
                sdpa_ref(&widen(&qh), &widen(&kh), &widen(&vh), p),
            )
        }
    };
    // The reference is (B, Hq, Tq, Dv) row-major; read ours the same way.
    let mut ours = Vec::with_capacity(want.len());
    for bi in 0..b {
        for h in 0..hq {
            for ti in 0..t {
                ours.extend_from_slice(&got[p.out_strides.offset(bi, h, ti)..][..p.v_head_dim]);
            }
        }
    }
    (ours, want)
}

fn check_all_decode_shapes() {
    let mut seed = 4000;
    for kv in KV_LENS {
        for (hq, hk, t, d, bshd) in shapes() {
            for causal in [false, true] {
                if causal && t > kv {
                    continue;
                }
                let mut p = SdpaParams::new(1, hq, hk, t, kv, d);
                if bshd {
                    p = p.with_bshd_layout();
                }
                if causal {
                    p.mask = Mask::Causal;
                }
                for c in &CASES {
                    seed += 3;
                    let (got, want) = run_case(c, &p, seed);
                    assert_eq!(got.len(), want.len());
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(&g, &w)| (g - w).abs() / (c.tolerance)(w))
                        .fold(0.0, f64::max);
                    assert!(
                        worst <= 1.0,
                        "{}: heads {hq}/{hk} rows {t} kv {kv} d {d} bshd {bshd} causal {causal}: \
                         {worst} x tolerance",
                        c.name
                    );
                }
            }
        }
    }
}

#[test]
fn decode_shapes_against_f64_on_every_element_type() {
    check_all_decode_shapes();
}

/// The same checks with `EMILY_ISA` capped to each path (the rows kernels
/// of AVX-512 and of AVX2, and the portable lanes kernels).
#[test]
fn decode_shapes_under_every_isa_cap() {
    if std::env::var("EMILY_SDPA_DECODE_CHILD").is_ok() {
        check_all_decode_shapes();
        return;
    }
    isa_children::run_under_isa_caps(
        "decode_shapes_under_every_isa_cap",
        "EMILY_SDPA_DECODE_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}
