//! The prefill kernel with 8-bit activations (`gemm_q8`) on every
//! implementation this CPU has, against float64 products of the
//! independently read weights, at odd shapes that break the 16-row panels
//! and 8-row tiles.

use emily_kernels::quant::{gemm_q8_with, BlockFormat, Q8Activations, QuantIsa};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::product::{check_q8_kernel, random_activations};
use crate::reference::random_blocks;

/// f32 round-off relative to Σ|terms|: a few ulps per sub-block sum, and one
/// rounding per sub-block accumulated in sequence.
fn rel_tolerance(k: usize) -> f64 {
    (8.0 + (k / 16) as f64) * f32::EPSILON as f64
}

fn check(rng: &mut StdRng, isa: QuantIsa, format: BlockFormat, m: usize, n: usize, k: usize) {
    let what = format!("gemm_q8 {}", isa.name());
    check_q8_kernel(
        rng,
        &what,
        format,
        (m, n, k),
        rel_tolerance(k),
        |w, act, out| gemm_q8_with(isa, format, w, n, act, out).unwrap(),
    );
}

#[test]
fn gemm_q8_matches_f64_on_every_format_and_isa() {
    let mut rng = StdRng::seed_from_u64(41);
    for isa in QuantIsa::all_available() {
        for format in BlockFormat::ALL {
            let be = format.block_elems();
            for (m, n, blocks) in [
                (1, 1, 1),
                (7, 7, 1),
                (9, 77, 7),
                (77, 17, 3),
                (17, 1, 77 / (be / 32).min(11) + 1),
                (16, 33, 2),
            ] {
                check(&mut rng, isa, format, m, n, be * blocks);
            }
        }
    }
}

#[test]
fn gemm_q8_agrees_with_the_decode_kernel() {
    // Same integer products, so the two kernels agree to f32 round-off.
    let mut rng = StdRng::seed_from_u64(42);
    let (m, n, k) = (11, 37, 512);
    for format in BlockFormat::ALL {
        let bytes = random_blocks(&mut rng, format, n * k / format.block_elems());
        let x = random_activations(&mut rng, m, k);
        let act = Q8Activations::quantize(&x, m, k);
        let mut a = vec![0f32; m * n];
        let mut b = vec![0f32; m * n];
        for isa in QuantIsa::all_available() {
            gemm_q8_with(isa, format, &bytes, n, &act, &mut a).unwrap();
            emily_kernels::quant::gemv_q8_with(isa, format, &bytes, n, &act, &mut b).unwrap();
            let scale = b.iter().fold(1f32, |s, v| s.max(v.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * scale,
                    "{format} {}: {x} vs {y}",
                    isa.name()
                );
            }
        }
    }
}

#[test]
fn gemm_q8_nan_activations_poison_their_row() {
    let mut rng = StdRng::seed_from_u64(43);
    let (m, n, k) = (10, 19, 256);
    for format in [BlockFormat::Q5_0, BlockFormat::Q6K, BlockFormat::Q8_0] {
        let bytes = random_blocks(&mut rng, format, n * k / format.block_elems());
        let mut x = random_activations(&mut rng, m, k);
        x[3 * k + 40] = f32::NAN;
        let act = Q8Activations::quantize(&x, m, k);
        for isa in QuantIsa::all_available() {
            let mut out = vec![0f32; m * n];
            gemm_q8_with(isa, format, &bytes, n, &act, &mut out).unwrap();
            for (i, row) in out.chunks(n).enumerate() {
                assert_eq!(
                    row.iter().all(|v| v.is_nan()),
                    i == 3,
                    "{format} {} row {i}: {row:?}",
                    isa.name()
                );
            }
        }
    }
}

#[test]
fn gemm_q8_bad_sizes_are_errors() {
    let act = Q8Activations::quantize(&[0.5; 64], 2, 32);
    let w = vec![0u8; 3 * 18];
    let mut out = vec![0f32; 6];
    let isa = QuantIsa::Portable;
    assert!(gemm_q8_with(isa, BlockFormat::Q4_0, &w, 3, &act, &mut out).is_ok());
    let e = gemm_q8_with(isa, BlockFormat::Q4_0, &w[1..], 3, &act, &mut out).unwrap_err();
    assert!(e.to_string().contains("53 bytes"), "{e}");
    let e = gemm_q8_with(isa, BlockFormat::Q4_0, &w, 3, &act, &mut out[1..]).unwrap_err();
    assert!(e.to_string().contains("output"), "{e}");
}
