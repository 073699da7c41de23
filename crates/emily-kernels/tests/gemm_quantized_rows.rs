//! `QuantizedRows`: activations quantized once and multiplied by several
//! weights of the same depth give, bit for bit, what `gemm_int8_bias_on`
//! (and a pass after it) gives on the f32 rows for each weight — on every int8 engine this CPU
//! runs plus the emulated AMX tile program, at odd shapes (1, 7, 77, 1000
//! rows; depths that are not whole words, several depth chunks) — and a
//! kept value requantized for new rows (smaller, after larger ones) leaves
//! nothing of the old ones behind.

use emily_kernels::gemm::{
    gemm_int8_bias_on, gemm_int8_quantized_then, Engine, MatRef, PackedInt8, Precision,
    QuantizedRows, RowEpilogue,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn values(rng: &mut StdRng, len: usize, shift: f32) -> Vec<f32> {
    (0..len)
        .map(|_| rng.sample::<f32, _>(StandardNormal) + shift)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn rows_quantized_once_equal_a_product_that_quantizes_them() {
    let mut rng = StdRng::seed_from_u64(23);
    let halve: RowEpilogue<'_> = &|_, _, row: &mut [f32]| row.iter_mut().for_each(|v| *v *= 0.5);
    for &(m, k) in &[(1, 7), (7, 77), (77, 1000), (1000, 13), (200, 1100)] {
        let a = values(&mut rng, m * k, 0.0);
        let weights: Vec<(PackedInt8, Vec<f32>)> = [1, 77, 33]
            .iter()
            .map(|&n| {
                let b = values(&mut rng, k * n, 0.0);
                (
                    PackedInt8::quantize(MatRef::row_major(&b, k, n)),
                    values(&mut rng, n, 0.0),
                )
            })
            .collect();
        let mut engines = Engine::available(Precision::Int8);
        if m * k <= 100_000 {
            engines.push(Engine::AmxEmulated);
        }
        for e in engines {
            let rows = QuantizedRows::quantize_on(e, MatRef::row_major(&a, m, k), &weights[0].0);
            assert_eq!(
                (rows.rows(), rows.cols(), rows.row_params().len()),
                (m, k, m)
            );
            for (w, (packed, bias)) in weights.iter().enumerate() {
                assert!(rows.fits(packed));
                let n = packed.n();
                for (then, bias) in [(None, None), (Some(halve), Some(&bias[..]))] {
                    // The f32 rows quantized by the product itself, then the pass after.
                    let mut want = vec![f32::NAN; m * n];
                    gemm_int8_bias_on(e, MatRef::row_major(&a, m, k), packed, bias, &mut want);
                    if let Some(then) = then {
                        for (i, row) in want.chunks_mut(n).enumerate() {
                            then(i, 0, row);
                        }
                    }
                    let mut got = vec![f32::NAN; m * n];
                    gemm_int8_quantized_then(&rows, packed, bias, then, &mut got);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{} m={m} k={k} weight {w} bias/then {}",
                        e.name(),
                        bias.is_some()
                    );
                }
            }
            // A weight of another depth does not fit these rows.
            let other = values(&mut rng, (k + 1) * 5, 0.0);
            let other = PackedInt8::quantize(MatRef::row_major(&other, k + 1, 5));
            assert!(!rows.fits(&other));
        }
    }
}

#[test]
fn requantized_rows_keep_nothing_of_the_previous_ones() {
    let mut rng = StdRng::seed_from_u64(29);
    let (bm, bk) = (500, 901);
    let big = values(&mut rng, bm * bk, 3.0);
    let big_w = PackedInt8::quantize(MatRef::row_major(&values(&mut rng, bk * 9, 0.0), bk, 9));
    let mut rows = QuantizedRows::quantize(MatRef::row_major(&big, bm, bk), &big_w);
    for &(m, n, k) in &[(13, 35, 257), (1, 7, 3), (45, 33, 66), (1000, 20, 901)] {
        let a = values(&mut rng, m * k, 0.0);
        let packed = PackedInt8::quantize(MatRef::row_major(&values(&mut rng, k * n, 0.0), k, n));
        rows.requantize(MatRef::row_major(&a, m, k), &packed);
        assert_eq!((rows.rows(), rows.cols()), (m, k));
        let fresh = QuantizedRows::quantize(MatRef::row_major(&a, m, k), &packed);
        assert_eq!(rows.row_params(), fresh.row_params());
        let (mut got, mut want) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
        gemm_int8_quantized_then(&rows, &packed, None, None, &mut got);
        gemm_int8_quantized_then(&fresh, &packed, None, None, &mut want);
        assert_eq!(bits(&got), bits(&want), "m={m} n={n} k={k}");
    }
}

#[test]
#[should_panic(expected = "were not packed")]
fn rows_of_another_depth_are_refused() {
    let a = vec![1.0f32; 6];
    let w3 = PackedInt8::quantize(MatRef::row_major(&[1.0f32; 6], 3, 2));
    let w2 = PackedInt8::quantize(MatRef::row_major(&[1.0f32; 4], 2, 2));
    let rows = QuantizedRows::quantize(MatRef::row_major(&a, 2, 3), &w3);
    let mut out = vec![0f32; 4];
    gemm_int8_quantized_then(&rows, &w2, None, None, &mut out);
}
