//! CTranslate2's quantized weights.
//!
//! CTranslate2's converter (`--quantization int8`, `int8_float16`,
//! `int8_float32`, `int8_bfloat16`) stores every linear, convolution and
//! embedding `…/weight` as `i8` codes with a float32 `…/weight_scale`, one
//! scale per output row (a convolution's `(out, in, k)` counts as `out` rows
//! of `in·k`):
//!
//! ```text
//! amax  = max |w| over the row   (0 -> 127, so an all-zero row gets scale 1)
//! scale = 127 / amax             (f32)
//! q     = rint(w · scale)        (round half to even, i8)
//! w     = q / scale              (dequantized)
//! ```
//!
//! `int16` stores `i16` codes with one scalar scale `2^10 / max|w|` over the
//! whole tensor. Every other float tensor is kept in the model's float type
//! (`int8_float16`: f16). [`dequantize_variables`] turns each quantized
//! variable back into a float tensor of the model's float type, which the
//! rest of the loader treats like any other: with `--compute-type int8` the
//! matrices are requantized per output row for the int8 engines, which
//! recovers these very codes (`max|q| = 127` in every row, and the float
//! round trip is far below half a step). [`quantize_int8`] is the converter's
//! rule, for writing such models ([`super::write_model_bin`]).

use std::path::Path;

use half::f16;

use super::Ct2Error;
use crate::weights::{DType, TensorRecord, Weights};

/// The suffix of a quantization scale's name.
const SCALE: &str = "_scale";

/// `vars` with every quantized variable (an integer tensor `X` next to a
/// float `X_scale`) replaced by its dequantized values in the model's float
/// type (f16 if any float tensor of the file is f16, else f32), and the
/// scales and the `aliases` (alias, target) left out: an alias is its target
/// (CTranslate2 writes the tied `decoder/projection/weight` as an alias of
/// the embedding, without a scale of its own). Returns the new store and how
/// many variables were dequantized. Errors name the variable: a scale
/// without its tensor, a scale of the wrong size or a non-positive /
/// non-finite scale, an asymmetric (`_zero`) quantization, which CTranslate2
/// only uses for other model families.
pub(crate) fn dequantize_variables(
    vars: &Weights,
    aliases: &[(String, String)],
    path: &Path,
) -> Result<(Weights, usize), Ct2Error> {
    let bad = |tensor: &str, reason: String| Ct2Error::Mapping {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        reason,
    };
    let float = if vars.iter().any(|(_, r)| r.dtype() == DType::F16) {
        DType::F16
    } else {
        DType::F32
    };
    let mut out = Weights::new(path);
    let mut count = 0;
    for (name, record) in vars.iter() {
        if aliases.iter().any(|(alias, _)| alias == name) {
            continue;
        }
        if name.ends_with("_zero") && record.numel() > 1 {
            return Err(bad(
                name,
                "asymmetric (zero-point) quantization is not supported".into(),
            ));
        }
        if let Some(base) = name.strip_suffix(SCALE) {
            if !vars.contains(base) {
                return Err(bad(name, format!("a quantization scale without `{base}`")));
            }
            continue;
        }
        let scale_name = format!("{name}{SCALE}");
        let quantized = matches!(record.dtype(), DType::I8 | DType::I16) && record.numel() > 1;
        match (quantized, vars.contains(&scale_name)) {
            (true, true) => {
                let scales = vars.get(&scale_name)?;
                let values = dequantize(name, record, scales).map_err(|r| bad(&scale_name, r))?;
                out.insert(name, float_record(name, record.shape(), &values, float)?);
                count += 1;
            }
            (false, true) => {
                return Err(bad(
                    name,
                    format!("has a quantization scale but is {}", record.dtype()),
                ))
            }
            (true, false) if name.ends_with("/weight") => {
                return Err(bad(
                    name,
                    format!("{} weights need `{scale_name}`", record.dtype()),
                ))
            }
            _ => out.insert(name, record.clone()),
        }
    }
    Ok((out, count))
}

/// The float values `q / scale` of quantized `codes` (per first-axis row for
/// one scale per row, the whole tensor for a single scale); an error message
/// for a bad scale tensor.
fn dequantize(name: &str, codes: &TensorRecord, scales: &TensorRecord) -> Result<Vec<f32>, String> {
    if !scales.dtype().is_float() {
        return Err(format!("scales of `{name}` are {}", scales.dtype()));
    }
    let scale = scales.to_f32_vec();
    if let Some(s) = scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("scale {s} is not a positive finite number"));
    }
    let rows = codes.shape().first().copied().unwrap_or(1).max(1);
    let row_len = codes.numel() / rows;
    let per_row = match scale.len() {
        1 => row_len * rows,
        n if n == rows => row_len,
        n => {
            return Err(format!(
                "{n} scales for `{name}` of shape {:?} (expected 1 or {rows})",
                codes.shape()
            ))
        }
    };
    let q = codes.to_f32_vec();
    let mut values = vec![0f32; q.len()];
    for ((out, q), s) in values
        .chunks_mut(per_row.max(1))
        .zip(q.chunks(per_row.max(1)))
        .zip(&scale)
    {
        for (o, &c) in out.iter_mut().zip(q) {
            *o = c / s;
        }
    }
    Ok(values)
}

fn float_record(
    name: &str,
    shape: &[usize],
    values: &[f32],
    dtype: DType,
) -> Result<TensorRecord, Ct2Error> {
    let bytes: Vec<u8> = match dtype {
        DType::F16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    Ok(TensorRecord::from_bytes(
        name,
        shape.to_vec(),
        dtype,
        bytes,
    )?)
}

/// CTranslate2's int8 rule for one weight (`rows` rows of the flattened
/// values): per row `scale = 127 / max|w|` (a zero row gets `amax = 127`),
/// `q = rint(w · scale)` with ties to even. Returns the codes and the scales.
pub fn quantize_int8(values: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let row_len = values.len().checked_div(rows).unwrap_or(0);
    let mut codes = vec![0i8; values.len()];
    let mut scales = Vec::with_capacity(rows);
    for (row, out) in values
        .chunks(row_len.max(1))
        .zip(codes.chunks_mut(row_len.max(1)))
        .take(rows)
    {
        scales.push(quantize_row(row, out));
    }
    codes.truncate(scales.len() * row_len);
    (codes, scales)
}

/// The int8 rule for one row: writes its codes to `out` (as long as `row`)
/// and returns its scale.
pub(crate) fn quantize_row(row: &[f32], out: &mut [i8]) -> f32 {
    let mut amax = abs_max(row);
    if amax == 0.0 {
        amax = 127.0;
    }
    let amax = amax.max(127.0 / f32::MAX);
    let scale = 127.0 / amax;
    codes_at_scale(row, scale, out);
    scale
}

emily_kernels::simd_dispatch! {
    /// `out[j] = rint(row[j] · scale)` clamped to the i8 range, on the
    /// widest vectors this CPU has (a Whisper token table is 20–27 M values).
    fn codes_at_scale(row: &[f32], scale: f32, out: &mut [i8]) {
        for (q, &v) in out.iter_mut().zip(row) {
            let r = round_ties_even_small(v * scale);
            // NaN → 0 as `as i8` gives, by a select: the saturating cast
            // itself does not vectorise (one scalar conversion per value).
            let r = if r.is_nan() { 0.0 } else { r.clamp(-128.0, 127.0) };
            // SAFETY: `r` is a whole number in -128..=127.
            *q = unsafe { r.to_int_unchecked::<i32>() } as i8;
        }
    }
}

emily_kernels::simd_dispatch! {
    /// `max |v|` over `row` (NaN ignored, as `f32::max` does).
    fn abs_max(row: &[f32]) -> f32 {
        abs_max_lanes(row)
    }
}

/// [`abs_max`] in independent lanes so that it vectorises.
#[inline(always)]
fn abs_max_lanes(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for chunk in &mut chunks {
        for (m, v) in lanes.iter_mut().zip(chunk) {
            *m = m.max(v.abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
    lanes.iter().fold(tail, |m, &v| m.max(v))
}

/// `x.round_ties_even()` for `|x| ≤ 2²²` (and NaN, which stays NaN) without
/// a libm call: adding and subtracting 1.5·2²³ rounds to an integer in the
/// FPU's round-to-nearest-even mode, exactly, and vectorises. A row's
/// `w · scale` is at most 127 in magnitude.
fn round_ties_even_small(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    (x + SHIFT) - SHIFT
}

/// Elements of one GGML `Q8_0` block.
const Q8_0_BLOCK: usize = 32;

/// [`quantize_int8`] of `rows` rows laid out as GGML `Q8_0` blocks (per
/// block: the f16 step `d`, then 32 `i8` codes; `w ≈ d·q`): every block of a
/// row carries that row's codes and step `d = 1/scale` (rounded to f16, a
/// relative change below 2⁻¹¹), so CTranslate2's int8 weights are kept as
/// they are and multiplied by the quantized GEMV. `None` when the rows are
/// not whole blocks of 32.
pub fn int8_rows_as_q8_0(values: &[f32], rows: usize) -> Option<Vec<u8>> {
    let row_len = values.len().checked_div(rows)?;
    if row_len == 0 || row_len % Q8_0_BLOCK != 0 || row_len * rows != values.len() {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * (Q8_0_BLOCK + 2));
    let mut codes = vec![0i8; row_len];
    for row in values.chunks(row_len) {
        push_q8_0_row(row, &mut codes, &mut out);
    }
    Some(out)
}

/// [`int8_rows_as_q8_0`] of a 2-D float record (f32, f16 or bf16), widened a
/// few rows at a time instead of as a whole (the 51,865-row token embedding
/// would take 80 MB of f32). `None` when the record is not 2-D or its rows
/// are not whole blocks of 32.
pub fn record_as_q8_0(record: &TensorRecord) -> Option<Vec<u8>> {
    let [rows, row_len] = record.shape() else {
        return None;
    };
    let (rows, row_len) = (*rows, *row_len);
    if row_len == 0 || row_len % Q8_0_BLOCK != 0 || !record.dtype().is_float() {
        return None;
    }
    let mut out = Vec::with_capacity(rows * row_len / Q8_0_BLOCK * (Q8_0_BLOCK + 2));
    let mut codes = vec![0i8; row_len];
    let mut values = Vec::new();
    let row_bytes = row_len * record.dtype().size_in_bytes();
    let batch = (64 * 1024 / row_len).max(1);
    for bytes in record.bytes().chunks(batch * row_bytes) {
        values.clear();
        crate::weights::widen_to_f32(record.dtype(), bytes, &mut values);
        for row in values.chunks(row_len) {
            push_q8_0_row(row, &mut codes, &mut out);
        }
    }
    Some(out)
}

/// Appends one row's `Q8_0` blocks to `out` (`codes`: scratch of the row's
/// length; the row is whole blocks).
fn push_q8_0_row(row: &[f32], codes: &mut [i8], out: &mut Vec<u8>) {
    let scale = quantize_row(row, codes);
    let step = f16::from_f32(1.0 / scale).to_le_bytes();
    for block in codes.chunks(Q8_0_BLOCK) {
        out.extend(step);
        out.extend(block.iter().map(|&q| q as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, shape: Vec<usize>, dtype: DType, bytes: Vec<u8>) -> TensorRecord {
        TensorRecord::from_bytes(name, shape, dtype, bytes).unwrap()
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn int8_rule_matches_the_converter() {
        // Row 0: amax 2 -> scale 63.5; 0.5*63.5 = 31.75 -> 32, -2 -> -127,
        // 1/127 * 63.5 = 0.5 -> 0 (ties to even). Row 1 is all zero.
        let (q, s) = quantize_int8(&[0.5, -2.0, 1.0 / 127.0, 0.0, 0.0, 0.0], 2);
        assert_eq!(q, [32, -127, 0, 0, 0, 0]);
        assert_eq!(s, [63.5, 1.0]);
    }

    #[test]
    fn q8_0_blocks_carry_the_row_codes_and_step() {
        let w: Vec<f32> = (0..128)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let (q, s) = quantize_int8(&w, 2);
        let blocks = int8_rows_as_q8_0(&w, 2).unwrap();
        assert_eq!(blocks.len(), 4 * 34);
        for (b, block) in blocks.chunks(34).enumerate() {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            assert!((d * s[b / 2] - 1.0).abs() < 1e-3, "block {b}: step {d}");
            let codes: Vec<i8> = block[2..].iter().map(|&c| c as i8).collect();
            assert_eq!(codes, q[b * 32..(b + 1) * 32]);
        }
        assert_eq!(int8_rows_as_q8_0(&w[..120], 2), None, "rows of 60");
        assert_eq!(int8_rows_as_q8_0(&w, 0), None);
    }

    #[test]
    fn vectorised_rule_matches_libm_rounding() {
        // Random rows of odd-sized tails, ties (k + 0.5 after scaling) and
        // zero rows: codes equal `round_ties_even` of the scaled values.
        let mut state = 0x9e37_79b9u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32 * 2.0 - 1.0
        };
        for row_len in [1, 7, 77, 1000] {
            let mut w: Vec<f32> = (0..3 * row_len).map(|_| next()).collect();
            w[row_len..2 * row_len].fill(0.0);
            w[0] = 1.0; // amax 1: scale 127, so x.5 / 127 are exact ties
            if row_len > 2 {
                w[1] = 0.5 / 127.0;
                w[2] = -2.5 / 127.0;
            }
            let (q, s) = quantize_int8(&w, 3);
            for (i, (&code, &v)) in q.iter().zip(&w).enumerate() {
                let want = (v * s[i / row_len]).round_ties_even().clamp(-128.0, 127.0) as i8;
                assert_eq!(code, want, "row length {row_len}, element {i}");
            }
        }
    }

    #[test]
    fn f16_records_become_the_same_blocks_as_their_values() {
        let values: Vec<f32> = (0..5 * 96)
            .map(|i| ((i * 7919) % 257) as f32 / 64.0 - 2.0)
            .collect();
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        let rec = record("w", vec![5, 96], DType::F16, bytes);
        let want = int8_rows_as_q8_0(&rec.to_f32_vec(), 5).unwrap();
        assert_eq!(record_as_q8_0(&rec).unwrap(), want);
        let f32_rec = record("w", vec![5, 96], DType::F32, f32s(&values));
        assert_eq!(
            record_as_q8_0(&f32_rec).unwrap(),
            int8_rows_as_q8_0(&values, 5).unwrap()
        );
        let odd = record("w", vec![2, 20], DType::F32, f32s(&values[..40]));
        assert_eq!(record_as_q8_0(&odd), None, "rows of 20");
    }

    #[test]
    fn dequantizes_per_row_and_drops_scales() {
        let w: Vec<f32> = (0..12)
            .map(|i| ((i * 7919) % 23) as f32 / 7.0 - 1.5)
            .collect();
        let (q, s) = quantize_int8(&w, 3);
        let mut vars = Weights::new("m.bin");
        let bytes = q.iter().map(|&c| c as u8).collect();
        vars.insert("l/weight", record("l/weight", vec![3, 4], DType::I8, bytes));
        vars.insert("l/weight_scale", record("s", vec![3], DType::F32, f32s(&s)));
        vars.insert(
            "l/bias",
            record("b", vec![3], DType::F32, f32s(&[1.0, 2.0, 3.0])),
        );
        let (out, n) = dequantize_variables(&vars, &[], Path::new("m.bin")).unwrap();
        assert_eq!(n, 1);
        assert!(!out.contains("l/weight_scale"));
        // An alias of a quantized tensor (no scale of its own) is left out.
        vars.insert("tied/weight", vars.get("l/weight").unwrap().clone());
        let aliases = [("tied/weight".to_string(), "l/weight".to_string())];
        let (with_alias, _) = dequantize_variables(&vars, &aliases, Path::new("m.bin")).unwrap();
        assert!(!with_alias.contains("tied/weight") && with_alias.contains("l/weight"));
        let got = out.get("l/weight").unwrap();
        assert_eq!(got.dtype(), DType::F32);
        for (r, (a, b)) in got.to_f32_vec().iter().zip(&w).enumerate() {
            // Within half a quantization step of the row.
            assert!((a - b).abs() <= 0.5 / s[r / 4] + 1e-6, "{r}: {a} vs {b}");
        }
    }

    #[test]
    fn bad_scales_are_errors_naming_the_variable() {
        let codes = || record("w", vec![2, 2], DType::I8, vec![1, 2, 3, 4]);
        let cases: [(&str, TensorRecord, &str); 3] = [
            (
                "wrong count",
                record("s", vec![3], DType::F32, f32s(&[1.0; 3])),
                "3 scales",
            ),
            (
                "zero",
                record("s", vec![2], DType::F32, f32s(&[1.0, 0.0])),
                "not a positive",
            ),
            (
                "nan",
                record("s", vec![2], DType::F32, f32s(&[f32::NAN, 1.0])),
                "not a positive",
            ),
        ];
        for (what, scale, want) in cases {
            let mut vars = Weights::new("m.bin");
            vars.insert("x/weight", codes());
            vars.insert("x/weight_scale", scale);
            let err = dequantize_variables(&vars, &[], Path::new("m.bin"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("x/weight_scale") && err.contains(want),
                "{what}: {err}"
            );
        }
        let mut vars = Weights::new("m.bin");
        vars.insert("x/weight", codes());
        let err = dequantize_variables(&vars, &[], Path::new("m.bin"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/weight") && err.contains("need"), "{err}");
        let mut vars = Weights::new("m.bin");
        vars.insert(
            "y/weight_scale",
            record("s", vec![2], DType::F32, f32s(&[1.0, 1.0])),
        );
        let err = dequantize_variables(&vars, &[], Path::new("m.bin"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without `y/weight`"), "{err}");
    }
}
