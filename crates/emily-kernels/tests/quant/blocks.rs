//! Block layouts: dequantization against the independent reading, quantizer
//! error bounds, sizes and bad input.

use emily_kernels::quant::{
    dequantize, dequantize_row, quantize, quantize_row, BlockFormat, QuantError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::reference::{random_blocks, read};

/// Dequantized values agree with the f64 reading to f32 round-off.
fn assert_matches_reading(format: BlockFormat, bytes: &[u8], got: &[f32]) {
    let want = read(format, bytes);
    assert_eq!(got.len(), want.len());
    for (i, (&g, &(w, mag))) in got.iter().zip(&want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= 4.0 * f32::EPSILON as f64 * mag,
            "{format}: element {i} = {g}, expected {w} (err {err:e})"
        );
    }
}

#[test]
fn dequantize_matches_independent_reading() {
    let mut rng = StdRng::seed_from_u64(9);
    for format in BlockFormat::ALL {
        for blocks in [1, 3, 7] {
            let bytes = random_blocks(&mut rng, format, blocks);
            let mut got = vec![f32::NAN; blocks * format.block_elems()];
            dequantize_row(format, &bytes, &mut got).unwrap();
            assert_matches_reading(format, &bytes, &got);
        }
    }
}

#[test]
fn parallel_dequantize_matches_row_at_odd_block_counts() {
    let mut rng = StdRng::seed_from_u64(10);
    for format in BlockFormat::ALL {
        // 4099 blocks crosses the parallel threshold for every format.
        for blocks in [1, 77, 4099] {
            let bytes = random_blocks(&mut rng, format, blocks);
            let got = dequantize(format, &bytes).unwrap();
            assert_matches_reading(format, &bytes, &got);
        }
    }
}

/// The largest error bound quantization may have on one block of `x`, from
/// the format's step: the code spacing its scale allows for the block's
/// range, with room for f16 scales and (for K formats) quantized sub-scales.
fn error_bound(format: BlockFormat, x: &[f32]) -> f32 {
    use BlockFormat::*;
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let (lo, hi) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let f16_slack = 2.0 * amax * 2f32.powi(-10);
    let sub_range = |n: usize, with_zero: bool| {
        x.chunks(n)
            .map(|s| {
                let (l, h) = s
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                        (l.min(v), h.max(v))
                    });
                if with_zero {
                    h - l.min(0.0)
                } else {
                    h - l
                }
            })
            .fold(0f32, f32::max)
    };
    f16_slack
        + match format {
            Q8_0 => 0.5 * amax / 127.0,
            // Symmetric formats: the largest magnitude takes the most negative
            // code, so its opposite may clamp a full step short.
            Q4_0 => amax / 8.0,
            Q5_0 => amax / 16.0,
            Q4_1 | Int4G32 | Int4G64 => 0.5 * (hi - lo) / 15.0,
            Q5_1 => 0.5 * (hi - lo) / 31.0,
            Int8G32 | Int8G64 => 0.5 * (hi - lo) / 255.0,
            // 6-bit sub-scales: a sub-block's step may be up to half a
            // super-step short, clamping its top by `levels` half-steps.
            Q4K => sub_range(32, true) * (0.5 / 15.0 + 15.0 / 126.0 / 15.0) + amax / 63.0,
            Q5K => sub_range(32, true) * (0.5 / 31.0 + 31.0 / 126.0 / 31.0) + amax / 63.0,
            Q6K => amax / 32.0 * (0.5 + 32.0 / 256.0 + 0.02),
        }
}

#[test]
fn quantize_then_dequantize_is_within_the_step() {
    let mut rng = StdRng::seed_from_u64(11);
    for format in BlockFormat::ALL {
        let be = format.block_elems();
        for blocks in [1, 5] {
            for scale in [1e-3f32, 1.0, 300.0] {
                let x: Vec<f32> = (0..blocks * be)
                    .map(|i| {
                        // Normal data plus one block of all-positive values.
                        let v: f32 = rng.sample(StandardNormal);
                        let v = if i / be == 1 { v.abs() + 0.5 } else { v };
                        v * scale
                    })
                    .collect();
                let mut q = vec![0u8; format.row_bytes(x.len()).unwrap()];
                quantize_row(format, &x, &mut q).unwrap();
                let mut y = vec![0f32; x.len()];
                dequantize_row(format, &q, &mut y).unwrap();
                let mut sq = 0f64;
                for (b, (xb, yb)) in x.chunks(be).zip(y.chunks(be)).enumerate() {
                    let bound = error_bound(format, xb);
                    for (j, (&a, &c)) in xb.iter().zip(yb).enumerate() {
                        let err = (a - c).abs();
                        sq += (err as f64).powi(2);
                        assert!(
                            err <= bound,
                            "{format} scale {scale}: block {b} element {j}: {a} -> {c} (err {err:e} > {bound:e})"
                        );
                    }
                }
                // Round-to-nearest: the RMS error is well under the bound.
                let rms = (sq / x.len() as f64).sqrt() as f32;
                let typical = error_bound(format, &x[..be]);
                assert!(
                    rms < 0.7 * typical,
                    "{format}: rms error {rms:e} vs bound {typical:e}"
                );
                assert_eq!(
                    quantize(format, &x).unwrap(),
                    q,
                    "{format}: quantize vs quantize_row"
                );
            }
        }
    }
}

#[test]
fn values_on_the_grid_come_back_exactly() {
    let mut rng = StdRng::seed_from_u64(12);
    let d = 2f32.powi(-5);
    for (format, lo, hi) in [
        (BlockFormat::Q8_0, -127, 127),
        (BlockFormat::Q4_1, 0, 15),
        (BlockFormat::Q5_1, 0, 31),
        (BlockFormat::Int8G64, 0, 255),
        (BlockFormat::Int4G64, 0, 15),
    ] {
        let be = format.block_elems();
        let mut codes: Vec<i32> = (0..3 * be).map(|_| rng.gen_range(lo..=hi)).collect();
        for b in 0..3 {
            codes[b * be] = lo;
            codes[b * be + 1] = hi;
        }
        let x: Vec<f32> = codes.iter().map(|&c| c as f32 * d + 1.0).collect();
        let x: Vec<f32> = if lo < 0 {
            codes.iter().map(|&c| c as f32 * d).collect()
        } else {
            x
        };
        let y = dequantize(format, &quantize(format, &x).unwrap()).unwrap();
        assert_eq!(x, y, "{format}");
    }
}

#[test]
fn zero_blocks_stay_zero() {
    for format in BlockFormat::ALL {
        let x = vec![0f32; 2 * format.block_elems()];
        let y = dequantize(format, &quantize(format, &x).unwrap()).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{format}: {y:?}");
    }
}

#[test]
fn sizes_names_and_ggml_ids() {
    for format in BlockFormat::ALL {
        assert_eq!(BlockFormat::from_name(format.name()), Some(format));
        assert_eq!(format.name().parse::<BlockFormat>().unwrap(), format);
        if let Some(id) = format.ggml_type() {
            assert_eq!(BlockFormat::from_ggml_type(id), Some(format));
        }
        let be = format.block_elems();
        assert_eq!(format.row_bytes(3 * be).unwrap(), 3 * format.block_bytes());
        assert!(matches!(
            format.row_bytes(be + 1),
            Err(QuantError::RowLength { len, .. }) if len == be + 1
        ));
    }
    assert_eq!(BlockFormat::from_ggml_type(0), None);
    assert_eq!(BlockFormat::from_ggml_type(15), None);
    assert_eq!(BlockFormat::Q4K.block_bytes(), 144);
    let e = "q3_k".parse::<BlockFormat>().unwrap_err();
    assert!(e.to_string().contains("q3_k"), "{e}");
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let f = BlockFormat::Q4_0;
    let mut out = vec![0f32; 32];
    let e = dequantize_row(f, &[0u8; 17], &mut out).unwrap_err();
    assert!(e.to_string().contains("17 bytes"), "{e}");
    let e = dequantize_row(f, &[0u8; 18], &mut out[..31]).unwrap_err();
    assert!(e.to_string().contains("31 elements"), "{e}");
    assert!(dequantize(f, &[0u8; 19]).is_err());
    let mut x = vec![1f32; 96];
    x[70] = f32::NAN;
    let e = quantize(f, &x).unwrap_err();
    assert!(
        matches!(e, QuantError::Unrepresentable { block: 2, .. }),
        "{e}"
    );
    let e = quantize(BlockFormat::Int8G32, &[1e9f32, -1e9].repeat(16)).unwrap_err();
    assert!(e.to_string().contains("f16"), "{e}");
    let mut q = vec![0u8; 17];
    assert!(quantize_row(f, &[0f32; 32], &mut q).is_err());
}
