//! The prefill kernel (`gemm_f32`) and the dispatching `matmul` against
//! float64 products of the independently read weights, at odd shapes.

use emily_kernels::quant::{gemm_f32, matmul, BlockFormat, Q8Activations};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::product::random_activations;
use crate::product::{activation_rounding_bound, check_product, Weights};
use crate::reference::random_blocks;

/// f32 round-off relative to Σ|terms| for a depth-k f32 product.
fn rel_tolerance(k: usize) -> f64 {
    4.0 * (k as f64).sqrt().max(4.0) * f32::EPSILON as f64
}

#[test]
fn gemm_matches_f64_at_odd_shapes() {
    let mut rng = StdRng::seed_from_u64(31);
    for format in BlockFormat::ALL {
        let be = format.block_elems();
        for (m, n, blocks) in [
            (1, 1, 1),
            (2, 7, 3),
            (7, 77, 1),
            (77, 7, 5),
            (77, 1000, 1),
            (7, 1000, 3),
        ] {
            // Depths past one dequantized tile (512) for the small blocks.
            let k = be * blocks * if be == 32 { 7 } else { 1 };
            let bytes = random_blocks(&mut rng, format, n * k / be);
            let w = Weights::read(format, &bytes, n, k);
            let x = random_activations(&mut rng, m, k);
            let mut out = vec![f32::NAN; m * n];
            gemm_f32(format, &bytes, n, k, &x, m, &mut out).unwrap();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let what = format!("gemm {format} m={m} n={n} k={k}");
            check_product(&what, &w, &x64, m, &out, rel_tolerance(k), |_, _| 0.0);
        }
    }
}

#[test]
fn matmul_picks_a_kernel_within_its_bound() {
    let mut rng = StdRng::seed_from_u64(32);
    for format in [
        BlockFormat::Q4_1,
        BlockFormat::Q5_0,
        BlockFormat::Q6K,
        BlockFormat::Int4G64,
    ] {
        let k = 512;
        let n = 77;
        let bytes = random_blocks(&mut rng, format, n * k / format.block_elems());
        let w = Weights::read(format, &bytes, n, k);
        for m in [1, 2, 7, 77] {
            let x = random_activations(&mut rng, m, k);
            let mut out = vec![f32::NAN; m * n];
            matmul(format, &bytes, n, k, &x, m, &mut out).unwrap();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            // Decode sizes quantize the activations: allow their rounding.
            let act = Q8Activations::quantize(&x, m, k);
            let what = format!("matmul {format} m={m}");
            check_product(&what, &w, &x64, m, &out, 2.0 * rel_tolerance(k), |i, r| {
                activation_rounding_bound(&w, &act, i, r)
            });
        }
    }
}

#[test]
fn gemm_bad_sizes_are_errors() {
    let w = vec![0u8; 3 * 18];
    let mut out = vec![0f32; 6];
    assert!(gemm_f32(BlockFormat::Q4_0, &w, 3, 32, &[0.0; 64], 2, &mut out).is_ok());
    let e = gemm_f32(BlockFormat::Q4_0, &w, 3, 32, &[0.0; 63], 2, &mut out).unwrap_err();
    assert!(e.to_string().contains("63"), "{e}");
    let e = matmul(BlockFormat::Q4_0, &w, 3, 33, &[0.0; 66], 2, &mut out).unwrap_err();
    assert!(e.to_string().contains("33"), "{e}");
    assert!(matmul(BlockFormat::Q4_0, &w, 3, 32, &[], 0, &mut []).is_ok());
}
