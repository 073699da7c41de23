//! The decode kernels (`gemv_q8`) on every implementation this CPU has,
//! against float64 products of the independently read weights.

use emily_kernels::quant::{gemv_q8_with, BlockFormat, Q8Activations, QuantIsa};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::product::{check_q8_kernel, random_activations};
use crate::reference::random_blocks;

/// f32 round-off allowed relative to Σ|terms|: a few ulps per block, growing
/// with the number of blocks summed in one lane.
fn rel_tolerance(k: usize) -> f64 {
    (8.0 + (k / 32) as f64 / 8.0) * f32::EPSILON as f64
}

fn check_gemv(rng: &mut StdRng, isa: QuantIsa, format: BlockFormat, m: usize, n: usize, k: usize) {
    check_q8_kernel(
        rng,
        isa.name(),
        format,
        (m, n, k),
        rel_tolerance(k),
        |w, act, out| gemv_q8_with(isa, format, w, n, act, out).unwrap(),
    );
}

#[test]
fn gemv_matches_f64_on_every_format_and_isa() {
    let mut rng = StdRng::seed_from_u64(21);
    for isa in QuantIsa::all_available() {
        for format in BlockFormat::ALL {
            let be = format.block_elems();
            for (m, n, blocks) in [
                (1, 1, 1),
                (2, 7, 3),
                (7, 77, 2),
                (1, 1000, 2),
                (4, 13, 9),
                (5, 3, 1),
            ] {
                // Odd block counts; more of the small blocks.
                let k = be * blocks * if be == 32 { 3 } else { 1 };
                check_gemv(&mut rng, isa, format, m, n, k);
            }
        }
    }
}

#[test]
fn gemv_at_77_rows() {
    let mut rng = StdRng::seed_from_u64(22);
    for isa in QuantIsa::all_available() {
        for format in [
            BlockFormat::Q4_0,
            BlockFormat::Q5_1,
            BlockFormat::Q6K,
            BlockFormat::Int8G64,
        ] {
            check_gemv(&mut rng, isa, format, 77, 7, 256);
        }
    }
}

#[test]
fn isas_agree_closely() {
    // Same integer arithmetic: the implementations differ only in f32
    // summation order (and how offsets are split off), so they agree to
    // round-off of the largest output.
    let mut rng = StdRng::seed_from_u64(23);
    let (m, n, k) = (3, 50, 512);
    for format in BlockFormat::ALL {
        let bytes = random_blocks(&mut rng, format, n * k / format.block_elems());
        let x = random_activations(&mut rng, m, k);
        let act = Q8Activations::quantize(&x, m, k);
        let mut first: Option<Vec<f32>> = None;
        for isa in QuantIsa::all_available() {
            let mut out = vec![0f32; m * n];
            gemv_q8_with(isa, format, &bytes, n, &act, &mut out).unwrap();
            if let Some(f) = &first {
                let scale = f.iter().fold(1f32, |a, v| a.max(v.abs()));
                for (a, b) in f.iter().zip(&out) {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "{format} {}: {a} vs {b}",
                        isa.name()
                    );
                }
            } else {
                first = Some(out);
            }
        }
    }
}

#[test]
fn nan_activations_give_nan() {
    let mut rng = StdRng::seed_from_u64(24);
    let (n, k) = (5, 64);
    for format in [BlockFormat::Q4_0, BlockFormat::Q8_0] {
        let bytes = random_blocks(&mut rng, format, n * k / 32);
        let mut x = random_activations(&mut rng, 1, k);
        x[40] = f32::NAN;
        let act = Q8Activations::quantize(&x, 1, k);
        for isa in QuantIsa::all_available() {
            let mut out = vec![0f32; n];
            gemv_q8_with(isa, format, &bytes, n, &act, &mut out).unwrap();
            assert!(
                out.iter().all(|v| v.is_nan()),
                "{format} {}: {out:?}",
                isa.name()
            );
        }
    }
}

#[test]
fn bad_sizes_are_errors() {
    let act = Q8Activations::quantize(&[0.5; 64], 1, 64);
    let w = vec![0u8; 2 * 2 * 18];
    let mut out = vec![0f32; 2];
    assert!(gemv_q8_with(QuantIsa::Portable, BlockFormat::Q4_0, &w, 2, &act, &mut out).is_ok());
    let e = gemv_q8_with(
        QuantIsa::Portable,
        BlockFormat::Q4_0,
        &w[1..],
        2,
        &act,
        &mut out,
    )
    .unwrap_err();
    assert!(e.to_string().contains("71 bytes"), "{e}");
    let e = gemv_q8_with(
        QuantIsa::Portable,
        BlockFormat::Q4_0,
        &w,
        2,
        &act,
        &mut out[..1],
    )
    .unwrap_err();
    assert!(e.to_string().contains("output"), "{e}");
    let e = gemv_q8_with(QuantIsa::Portable, BlockFormat::Q4K, &w, 2, &act, &mut out).unwrap_err();
    assert!(e.to_string().contains("64 elements"), "{e}");
}
