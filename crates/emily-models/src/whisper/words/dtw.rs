//! The numeric half of word alignment: normalising the alignment heads'
//! cross-attention over tokens, a median filter along time, and dynamic time
//! warping of the (tokens × frames) cost matrix.
//!
//! The rules are CTranslate2's `WhisperReplica::align` (OpenAI's
//! `find_alignment` differs only in the edge handling of the median filter):
//! each head's weights are standardised over the token axis (mean 0, biased
//! standard deviation 1), filtered along time with reflected edges, averaged
//! over the heads, and the path through the negated matrix with the least
//! cost is found (ties: a diagonal step only when strictly cheaper, then a
//! token step only when strictly cheaper, else a frame step).

/// Standardises `x` (`heads × tokens × frames`, row-major) over the token axis:
/// every `(head, frame)` column gets mean 0 and standard deviation 1 (biased;
/// a constant column becomes zeros).
pub fn standardize_over_tokens(x: &mut [f32], heads: usize, tokens: usize, frames: usize) {
    debug_assert_eq!(x.len(), heads * tokens * frames);
    if tokens == 0 || frames == 0 {
        return;
    }
    for h in x.chunks_exact_mut(tokens * frames) {
        for f in 0..frames {
            let column = (0..tokens).map(|t| h[t * frames + f] as f64);
            let mean = column.clone().sum::<f64>() / tokens as f64;
            let var = column.map(|v| (v - mean) * (v - mean)).sum::<f64>() / tokens as f64;
            let std = var.sqrt();
            for t in 0..tokens {
                let v = &mut h[t * frames + f];
                *v = if std > 0.0 {
                    ((*v as f64 - mean) / std) as f32
                } else {
                    0.0
                };
            }
        }
    }
}

/// Median filter of odd `width` along each row of `rows` (`len` values per
/// row), reflecting at the edges (index `-k` reads `k`, `len - 1 + k` reads
/// `len - 1 - k`). Rows no longer than `width / 2` are left as they are.
pub fn median_filter(rows: &mut [f32], len: usize, width: usize) {
    let half = width / 2;
    if width < 2 || len <= half {
        return;
    }
    let mut window = vec![0f32; 2 * half + 1];
    let mut out = vec![0f32; len];
    for row in rows.chunks_exact_mut(len) {
        for (j, o) in out.iter_mut().enumerate() {
            for (k, w) in window.iter_mut().enumerate() {
                let at = j as isize + k as isize - half as isize;
                let mut read = at.unsigned_abs();
                if read >= len {
                    read = 2 * (len - 1) - read;
                }
                *w = row[read];
            }
            let (_, median, _) = window.select_nth_unstable_by(half, f32::total_cmp);
            *o = *median;
        }
        row.copy_from_slice(&out);
    }
}

/// The monotone path from `(0, 0)` to `(n - 1, m - 1)` through the `n × m`
/// matrix `x` (row-major) that maximises the summed values (dynamic time
/// warping on `-x`), as `(row, column)` pairs in order. Empty when `x` is.
pub fn negative_dtw(x: &[f32], n: usize, m: usize) -> Vec<(usize, usize)> {
    debug_assert_eq!(x.len(), n * m);
    if n == 0 || m == 0 {
        return Vec::new();
    }
    // cost[i][j]: the cheapest path ending at cell (i - 1, j - 1); row and
    // column 0 are the border. step[i][j]: 0 diagonal, 1 from the row above,
    // 2 from the column to the left.
    let w = m + 1;
    let mut cost = vec![f32::INFINITY; (n + 1) * w];
    let mut step = vec![0u8; (n + 1) * w];
    cost[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let diag = cost[(i - 1) * w + j - 1];
            let up = cost[(i - 1) * w + j];
            let left = cost[i * w + j - 1];
            let (c, s) = if diag < up && diag < left {
                (diag, 0)
            } else if up < diag && up < left {
                (up, 1)
            } else {
                (left, 2)
            };
            cost[i * w + j] = c - x[(i - 1) * m + j - 1];
            step[i * w + j] = s;
        }
    }
    let (mut i, mut j) = (n, m);
    let mut path = Vec::with_capacity(n + m);
    while i > 0 || j > 0 {
        path.push((i.saturating_sub(1), j.saturating_sub(1)));
        // The border leads back to the origin: along row 0 leftwards, along
        // column 0 upwards.
        let s = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            step[i * w + j]
        };
        match s {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_filter_reflects_at_the_edges() {
        let mut row = vec![5.0, 1.0, 9.0, 2.0, 7.0];
        median_filter(&mut row, 5, 3);
        // j=0 reads [1, 5, 1]; j=4 reads [2, 7, 2].
        assert_eq!(row, vec![1.0, 5.0, 2.0, 7.0, 2.0]);
        let mut short = vec![3.0, 1.0];
        median_filter(&mut short, 2, 7);
        assert_eq!(short, vec![3.0, 1.0]);
    }

    #[test]
    fn standardized_columns_have_zero_mean_and_unit_deviation() {
        let mut x: Vec<f32> = (0..2 * 3 * 4).map(|i| ((i * 7) % 11) as f32).collect();
        standardize_over_tokens(&mut x, 2, 3, 4);
        for h in 0..2 {
            for f in 0..4 {
                let col: Vec<f32> = (0..3).map(|t| x[h * 12 + t * 4 + f]).collect();
                let mean: f32 = col.iter().sum::<f32>() / 3.0;
                let var: f32 = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 3.0;
                assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{col:?}");
            }
        }
    }

    #[test]
    fn dtw_follows_the_bright_band() {
        // Three tokens over seven frames; token t is bright in its own frames.
        let owner = [0, 0, 1, 1, 1, 2, 2];
        let (n, m) = (3, 7);
        let x: Vec<f32> = (0..n * m)
            .map(|k| if owner[k % m] == k / m { 1.0 } else { -1.0 })
            .collect();
        let path = negative_dtw(&x, n, m);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(n - 1, m - 1)));
        for (a, b) in path.iter().zip(&path[1..]) {
            assert!(b.0 >= a.0 && b.1 >= a.1 && (b.0 - a.0) + (b.1 - a.1) >= 1);
        }
        for &(t, f) in &path {
            assert_eq!(owner[f], t, "path {path:?}");
        }
        assert!(negative_dtw(&[], 0, 0).is_empty());
    }
}
