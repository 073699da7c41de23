//! The index of a row's largest value: greedy decoding's choice for Whisper
//! and the language models, on logit rows of 50–150 thousand entries, so
//! vectorised (lane-wise maxima, then the first position holding the
//! maximum) rather than a scalar scan with a branch per entry.

/// The index of the largest value (the lowest index among ties; NaN
/// ignored; 0 when every value is NaN).
pub fn argmax(values: &[f32]) -> u32 {
    /// Lanes of the running maximum (one AVX-512 vector of f32).
    const LANES: usize = 16;
    // Lane-wise maxima first (independent lanes, so the compiler keeps them
    // in vector registers), then the first position holding the maximum.
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            if v > *m {
                *m = v;
            }
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let first = values
        .chunks(LANES)
        .position(|c| c.contains(&max))
        .unwrap_or(0);
    values[first * LANES..]
        .iter()
        .position(|&v| v == max)
        .map_or(0, |i| (first * LANES + i) as u32)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::argmax;

    /// The first index of the largest non-NaN value, the slow way.
    fn reference(v: &[f32]) -> u32 {
        let mut best: Option<usize> = None;
        for (i, &x) in v.iter().enumerate() {
            if !x.is_nan() && best.is_none_or(|b| x > v[b]) {
                best = Some(i);
            }
        }
        best.unwrap_or(0) as u32
    }

    #[test]
    fn argmax_takes_the_first_largest_and_skips_nan() {
        let mut rng = StdRng::seed_from_u64(5);
        for len in [1, 2, 7, 16, 17, 77, 1000, 4099] {
            for _ in 0..20 {
                // Few distinct values, so ties are common; some NaN and -inf.
                let v: Vec<f32> = (0..len)
                    .map(|_| match rng.gen_range(0..20) {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        k => (k % 7) as f32 - 3.0,
                    })
                    .collect();
                assert_eq!(argmax(&v), reference(&v), "{v:?}");
            }
        }
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[f32::NAN, f32::NEG_INFINITY]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
