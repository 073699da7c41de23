//! A minimal reader for NumPy `.npy` files (format versions 1–3), enough for the
//! reference arrays the tests compare against.
//!
//! Layout: the magic `\x93NUMPY`, a major and minor version byte, the header length
//! (`u16` in version 1, `u32` in versions 2 and 3), then a Python dict literal such
//! as `{'descr': '<f4', 'fortran_order': False, 'shape': (80, 3000), }`, then the
//! raw array data.

use std::path::{Path, PathBuf};

/// Errors reading a `.npy` file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a `.npy` array this reader handles.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A `.npy` array converted to f32, in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The array shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The values, widened or narrowed to f32.
    pub data: Vec<f32>,
}

/// Read the `.npy` file at `path` as f32 (little-endian `f4`, `f8`, `i2`, `i4`, `i8`).
pub fn read_npy(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(&bytes).map_err(|reason| NpyError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// The value of `key` in the header dict, up to the next `,` outside parentheses.
fn header_field<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    let pattern = format!("'{key}':");
    let start = header
        .find(&pattern)
        .ok_or(format!("header lacks `{key}`"))?
        + pattern.len();
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    };
    Ok(rest[..end.ok_or(format!("header field `{key}` is unterminated"))?].trim())
}

/// Parse `.npy` bytes.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    if header_field(header, "fortran_order")? != "False" {
        return Err("Fortran-order arrays are not supported".into());
    }
    let descr = header_field(header, "descr")?.trim_matches(|c| c == '\'' || c == '"');
    let shape: Vec<usize> = header_field(header, "shape")?
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad shape entry `{s}`")))
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    let size = match descr {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        "<i2" => 2,
        other => return Err(format!("unsupported dtype `{other}`")),
    };
    let data = &bytes[end..];
    if count.checked_mul(size) != Some(data.len()) {
        return Err(format!(
            "{} data bytes do not hold shape {shape:?} of {descr}",
            data.len()
        ));
    }
    let data = data
        .chunks_exact(size)
        .map(|c| match descr {
            "<f4" => f32::from_le_bytes(c.try_into().unwrap()),
            "<f8" => f64::from_le_bytes(c.try_into().unwrap()) as f32,
            "<i2" => i16::from_le_bytes(c.try_into().unwrap()) as f32,
            "<i4" => i32::from_le_bytes(c.try_into().unwrap()) as f32,
            _ => i64::from_le_bytes(c.try_into().unwrap()) as f32,
        })
        .collect();
    Ok(NpyArray { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn parses_shapes_and_types() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse_npy(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &data,
        ))
        .unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data[5], 6.0);
        let b = parse_npy(&npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
            &2.5f64.to_le_bytes(),
        ))
        .unwrap();
        assert_eq!((b.shape, b.data), (vec![1], vec![2.5]));
        assert!(parse_npy(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &data[..8]
        ))
        .is_err());
        assert!(parse_npy(b"garbage").is_err());
    }
}
