//! `PackedBf16::from_rows` (a B operand produced row by row, as a
//! convolution's im2col matrix is) packs exactly what `from_f32` packs from
//! the stored matrix: the products through both agree bit for bit on every
//! engine, at odd k (an unpaired last row) and n (a partial last panel),
//! including values on bf16 rounding ties.

use emily_kernels::gemm::{gemm_bf16_on, Engine, MatRef, PackedBf16, Precision};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

#[test]
fn rows_packed_on_the_fly_equal_the_stored_matrix_packed() {
    let mut rng = StdRng::seed_from_u64(17);
    for &(k, n) in &[(1, 1), (7, 77), (77, 7), (1000, 33), (2, 1000), (301, 65)] {
        let b: Vec<f32> = (0..k * n)
            .map(|i| {
                let x: f32 = rng.sample(StandardNormal);
                // Every fifth value sits exactly on a rounding tie.
                if i % 5 == 0 {
                    f32::from_bits((x.to_bits() & 0xffff_0000) | 0x8000)
                } else {
                    x
                }
            })
            .collect();
        let stored = PackedBf16::from_f32(MatRef::row_major(&b, k, n));
        let produced = PackedBf16::from_rows(k, n, |i, dst| dst.copy_from_slice(&b[i * n..][..n]));
        assert_eq!((produced.k(), produced.n()), (k, n));
        let m = 7;
        let a: Vec<f32> = (0..m * k).map(|_| rng.sample(StandardNormal)).collect();
        let mut engines = Engine::available(Precision::Bf16);
        engines.push(Engine::AmxEmulated);
        for e in engines {
            let (mut want, mut got) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            gemm_bf16_on(e, MatRef::row_major(&a, m, k), &stored, &mut want);
            gemm_bf16_on(e, MatRef::row_major(&a, m, k), &produced, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "k={k} n={n} engine {}", e.name());
        }
    }
}
