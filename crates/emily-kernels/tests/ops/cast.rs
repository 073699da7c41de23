//! Casts: exhaustive for 16-bit sources, random bits and edge values otherwise.

use crate::common::{inputs, rng, SIZES};
use emily_kernels::cast;
use half::{bf16, f16};
use rand::Rng;

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Random f32 bit patterns plus the values where rounding is delicate.
fn f32_cases(n: usize) -> Vec<f32> {
    let mut r = rng(77);
    let mut v: Vec<f32> = (0..n).map(|_| f32::from_bits(r.gen())).collect();
    v.extend(inputs(78, n, 100.0, true));
    v.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        65504.0,
        65520.0,
        65519.99,
        6e-8,
        3e-8,
        2.9e-8,
        1.0 + f32::EPSILON,
    ]);
    // Exact halfway cases for bf16 (low 16 bits 0x8000), even and odd.
    v.extend((0..1000u32).map(|i| f32::from_bits((0x3f80 + i) << 16 | 0x8000)));
    v.extend([
        f32::from_bits(0x7f7f_ffff),
        f32::from_bits(0x7f7f_8000),
        f32::from_bits(0xff7f_8000),
    ]);
    v
}

/// The bf16 bits nearest to finite `x` (ties to even), from first principles.
fn nearest_bf16(x: f32) -> u16 {
    let t = (x.to_bits() >> 16) as u16;
    let val = |b: u16| {
        let v = f32::from_bits((b as u32) << 16) as f64;
        // One step past the largest finite bf16 is 2^128 in magnitude.
        if v.is_infinite() {
            2f64.powi(128).copysign(v)
        } else {
            v
        }
    };
    let (dl, dh) = ((x as f64 - val(t)).abs(), (x as f64 - val(t + 1)).abs());
    if dl < dh || (dl == dh && t.is_multiple_of(2)) {
        t
    } else {
        t + 1
    }
}

#[test]
fn sixteen_bit_to_f32_exhaustive() {
    let bits: Vec<u16> = (0..=u16::MAX).collect();
    let h: Vec<f16> = bits.iter().map(|&b| f16::from_bits(b)).collect();
    let b: Vec<bf16> = bits.iter().map(|&b| bf16::from_bits(b)).collect();
    let mut out = vec![0.0f32; bits.len()];
    cast::f16_to_f32(&h, &mut out);
    assert!(h.iter().zip(&out).all(|(h, &o)| same_f32(h.to_f32(), o)));
    cast::f16_to_f32_par(&h, &mut out);
    assert!(h.iter().zip(&out).all(|(h, &o)| same_f32(h.to_f32(), o)));
    cast::bf16_to_f32(&b, &mut out);
    assert!(b
        .iter()
        .zip(&out)
        .all(|(b, &o)| o.to_bits() == (b.to_bits() as u32) << 16));
    cast::bf16_to_f32_par(&b, &mut out);
    assert!(b
        .iter()
        .zip(&out)
        .all(|(b, &o)| o.to_bits() == (b.to_bits() as u32) << 16));
}

#[test]
fn f32_to_sixteen_bit_rounds_like_half() {
    let x = f32_cases(1 << 20);
    let mut h = vec![f16::ZERO; x.len()];
    let mut b = vec![bf16::ZERO; x.len()];
    for par in [false, true] {
        if par {
            cast::f32_to_f16_par(&x, &mut h);
            cast::f32_to_bf16_par(&x, &mut b);
        } else {
            cast::f32_to_f16(&x, &mut h);
            cast::f32_to_bf16(&x, &mut b);
        }
        for i in 0..x.len() {
            let wh = f16::from_f64(x[i] as f64);
            let ok_h = h[i].to_bits() == wh.to_bits() || (h[i].is_nan() && wh.is_nan());
            assert!(ok_h, "f16({:e}) = {:?}, want {wh:?}", x[i], h[i]);
            if x[i].is_finite() {
                assert_eq!(b[i].to_bits(), nearest_bf16(x[i]), "bf16({:e})", x[i]);
            } else {
                assert!(b[i].is_nan() == x[i].is_nan() && (x[i].is_nan() || b[i].to_f32() == x[i]));
            }
            assert_eq!(
                b[i].to_bits(),
                bf16::from_f32(x[i]).to_bits(),
                "bf16 bits of {:e}",
                x[i]
            );
        }
    }
}

#[test]
fn plain_casts_follow_as_semantics() {
    for &n in &SIZES[..5] {
        let x = inputs(n as u64, n, 1e3, true);
        let mut d64 = vec![0.0f64; n];
        cast::f32_to_f64(&x, &mut d64);
        assert!(x
            .iter()
            .zip(&d64)
            .all(|(&a, &b)| (a.is_nan() && b.is_nan()) || a as f64 == b));
        let mut back = vec![0.0f32; n];
        cast::f64_to_f32(&d64, &mut back);
        assert!(x.iter().zip(&back).all(|(&a, &b)| same_f32(a, b)));

        let mut i32s = vec![0i32; n];
        cast::f32_to_i32(&x, &mut i32s);
        assert!(x.iter().zip(&i32s).all(|(&a, &b)| a as i32 == b));
        cast::i32_to_f32(&i32s, &mut back);
        assert!(i32s.iter().zip(&back).all(|(&a, &b)| a as f32 == b));

        let mut i64s = vec![0i64; n];
        cast::f32_to_i64(&x, &mut i64s);
        assert!(x.iter().zip(&i64s).all(|(&a, &b)| a as i64 == b));
        cast::i64_to_f32(&i64s, &mut back);
        assert!(i64s.iter().zip(&back).all(|(&a, &b)| a as f32 == b));

        let mut u8s = vec![0u8; n];
        cast::f32_to_u8(&x, &mut u8s);
        assert!(x.iter().zip(&u8s).all(|(&a, &b)| a as u8 == b));
        cast::u8_to_f32(&u8s, &mut back);
        assert!(u8s.iter().zip(&back).all(|(&a, &b)| a as f32 == b));

        cast::f32_to_bool(&x, &mut u8s);
        assert!(x.iter().zip(&u8s).all(|(&a, &b)| b == (a != 0.0) as u8));
    }
    let extremes = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3e9,
        -3e9,
        1e20,
        -1e20,
        255.9,
        -0.9,
    ];
    let mut i = [0i32; 9];
    cast::f32_to_i32(&extremes, &mut i);
    assert_eq!(
        i,
        [
            0,
            i32::MAX,
            i32::MIN,
            i32::MAX,
            i32::MIN,
            i32::MAX,
            i32::MIN,
            255,
            0
        ]
    );
    let mut u = [0u8; 9];
    cast::f32_to_u8(&extremes, &mut u);
    assert_eq!(u, [0, 255, 0, 255, 0, 255, 0, 255, 0]);
}
