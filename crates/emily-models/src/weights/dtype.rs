//! Element types of stored weight tensors.

use std::fmt;

/// The element type of a stored tensor, as found in CTranslate2 `model.bin` and
/// safetensors files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16 (the upper half of a binary32).
    BF16,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// The CTranslate2 `model.bin` code of this type (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16).
    pub fn ct2_code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        }
    }

    /// The type with CTranslate2 code `code`, if there is one.
    pub fn from_ct2_code(code: u8) -> Option<DType> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    /// The safetensors equivalent of this type.
    pub fn to_safetensors(self) -> safetensors::Dtype {
        match self {
            DType::F32 => safetensors::Dtype::F32,
            DType::F16 => safetensors::Dtype::F16,
            DType::BF16 => safetensors::Dtype::BF16,
            DType::I8 => safetensors::Dtype::I8,
            DType::I16 => safetensors::Dtype::I16,
            DType::I32 => safetensors::Dtype::I32,
        }
    }

    /// The type matching a safetensors dtype, if this crate supports it.
    pub fn from_safetensors(dtype: safetensors::Dtype) -> Option<DType> {
        Some(match dtype {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::I8 => DType::I8,
            safetensors::Dtype::I16 => DType::I16,
            safetensors::Dtype::I32 => DType::I32,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
        };
        f.write_str(name)
    }
}

/// Widen little-endian elements of type `dtype` in `bytes` to f32, appending to `out`.
///
/// `bytes.len()` must be a multiple of the element size (checked by the callers that
/// build tensor records). Unaligned input is handled.
pub(crate) fn widen_to_f32(dtype: DType, bytes: &[u8], out: &mut Vec<f32>) {
    use half::slice::HalfFloatSliceExt;
    let n = bytes.len() / dtype.size_in_bytes();
    out.reserve(n);
    match dtype {
        DType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        DType::F16 => match bytemuck::try_cast_slice::<u8, half::f16>(bytes) {
            // Aligned: the vectorised (F16C where available) conversion.
            Ok(halfs) if cfg!(target_endian = "little") => {
                let start = out.len();
                out.resize(start + n, 0.0);
                halfs.convert_to_f32_slice(&mut out[start..]);
            }
            // Unaligned (a CTranslate2 file puts tensors at odd offsets):
            // copied to an aligned block at a time, then converted as above.
            _ => {
                let mut block = [half::f16::ZERO; 4096];
                for chunk in bytes.chunks(2 * block.len()) {
                    let halfs = &mut block[..chunk.len() / 2];
                    bytemuck::cast_slice_mut::<half::f16, u8>(halfs).copy_from_slice(chunk);
                    if cfg!(target_endian = "big") {
                        halfs
                            .iter_mut()
                            .for_each(|h| *h = half::f16::from_bits(h.to_bits().swap_bytes()));
                    }
                    let start = out.len();
                    out.resize(start + halfs.len(), 0.0);
                    halfs.convert_to_f32_slice(&mut out[start..]);
                }
            }
        },
        DType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        DType::I8 => out.extend(bytes.iter().map(|&b| b as i8 as f32)),
        DType::I16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32),
        ),
        DType::I32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_exact() {
        let h = [half::f16::from_f32(1.5), half::f16::from_f32(-0.25)];
        let mut bytes: Vec<u8> = Vec::new();
        // Prefix one byte so the f16 data is (likely) unaligned too.
        for offset in 0..2 {
            bytes.clear();
            bytes.extend(std::iter::repeat_n(0u8, offset));
            for x in h {
                bytes.extend(x.to_le_bytes());
            }
            let mut out = Vec::new();
            widen_to_f32(DType::F16, &bytes[offset..], &mut out);
            assert_eq!(out, vec![1.5, -0.25]);
        }
        let mut out = Vec::new();
        widen_to_f32(
            DType::BF16,
            &half::bf16::from_f32(3.0).to_le_bytes(),
            &mut out,
        );
        widen_to_f32(DType::I16, &(-7i16).to_le_bytes(), &mut out);
        widen_to_f32(DType::I8, &[0xff], &mut out);
        assert_eq!(out, vec![3.0, -7.0, -1.0]);
    }

    #[test]
    fn unaligned_f16_widens_exactly_across_blocks() {
        // Pseudo-random bit patterns (NaN and infinity included), more than
        // two conversion blocks and an odd tail, aligned and not.
        let n = 2 * 4096 + 77;
        let halfs: Vec<half::f16> = (0..n as u32)
            .map(|i| half::f16::from_bits((i.wrapping_mul(2_654_435_761) >> 16) as u16))
            .collect();
        for offset in 0..2 {
            let mut bytes = vec![0u8; offset];
            bytes.extend(halfs.iter().flat_map(|h| h.to_le_bytes()));
            let mut out = vec![7.0];
            widen_to_f32(DType::F16, &bytes[offset..], &mut out);
            assert_eq!(out.len(), n + 1);
            assert_eq!(out[0], 7.0, "appends");
            for (i, (got, h)) in out[1..].iter().zip(&halfs).enumerate() {
                let want = h.to_f32();
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "offset {offset}, element {i}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn ct2_codes_round_trip() {
        for code in 0..6 {
            assert_eq!(DType::from_ct2_code(code).unwrap().ct2_code(), code);
        }
        assert_eq!(DType::from_ct2_code(6), None);
    }
}
