//! Reading and writing single elements of reference buffers, and walking
//! multi-indices, without any vector code.

use half::{bf16, f16};

use super::array;
use crate::error::{Error, Result};
use crate::shape::{broadcast_strides, contiguous_strides, numel};
use crate::{Array, DType};

/// A read-only view of one input: bytes, shape and dtype.
pub(crate) struct View<'a> {
    bytes: &'a [u8],
    /// The input's shape.
    pub shape: &'a [usize],
    /// The input's dtype.
    pub dtype: DType,
}

impl<'a> View<'a> {
    /// Views `bytes` as an array of `shape`/`dtype`.
    pub fn new(bytes: &'a [u8], shape: &'a [usize], dtype: DType) -> View<'a> {
        View {
            bytes,
            shape,
            dtype,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(self.shape)
    }

    /// Element `i` (row-major) as f64.
    pub fn get(&self, i: usize) -> f64 {
        match self.dtype {
            DType::Quantized(f) => super::quant::get(self.bytes, self.shape, f, i),
            _ => decode(self.raw(i), self.dtype),
        }
    }

    /// The bytes of element `i`.
    pub fn raw(&self, i: usize) -> &'a [u8] {
        let size = self.dtype.size_in_bytes();
        &self.bytes[i * size..(i + 1) * size]
    }

    /// Element `i` as an integer index (for gather and offsets).
    pub fn index(&self, i: usize) -> i64 {
        let b = self.raw(i);
        match self.dtype {
            DType::I64 => i64::from_le_bytes(b.try_into().expect("8 bytes")),
            DType::I32 => i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64,
            _ => self.get(i) as i64,
        }
    }

    /// Strides to read this view at the multi-indices of `target` (numpy
    /// broadcasting: broadcast axes get stride 0).
    pub fn strides_for(&self, target: &[usize]) -> Vec<usize> {
        broadcast_strides(self.shape, target)
    }
}

/// An output being written element by element.
pub(crate) struct Out {
    bytes: Vec<u8>,
    shape: Vec<usize>,
    dtype: DType,
}

impl Out {
    /// A zero-filled output of `shape`/`dtype` (an error, not an abort, when
    /// the memory is refused).
    pub fn new(shape: &[usize], dtype: DType) -> Result<Out> {
        let len = dtype.storage_bytes(shape)?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(len)
            .map_err(|_| Error::OutOfMemory { bytes: len })?;
        bytes.resize(len, 0);
        Ok(Out {
            bytes,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// An output starting as a copy of `x`.
    pub fn copy_of(x: &View) -> Out {
        Out {
            bytes: x.bytes.to_vec(),
            shape: x.shape.to_vec(),
            dtype: x.dtype,
        }
    }

    /// Writes `v` at element `i`, rounded to the output's dtype.
    pub fn set(&mut self, i: usize, v: f64) {
        let size = self.dtype.size_in_bytes();
        encode(v, self.dtype, &mut self.bytes[i * size..(i + 1) * size]);
    }

    /// Writes the raw bytes of one element at element `i`.
    pub fn set_raw(&mut self, i: usize, raw: &[u8]) {
        let size = self.dtype.size_in_bytes();
        self.bytes[i * size..(i + 1) * size].copy_from_slice(raw);
    }

    /// The output written so far, as an input view.
    pub fn view(&self) -> View<'_> {
        View::new(&self.bytes, &self.shape, self.dtype)
    }

    /// The finished reference array.
    pub fn finish(self) -> Result<Array> {
        array(self.bytes, &self.shape, self.dtype)
    }
}

/// One element's bytes as f64.
pub(crate) fn decode(b: &[u8], dtype: DType) -> f64 {
    let two = || [b[0], b[1]];
    let four = || [b[0], b[1], b[2], b[3]];
    let eight = || [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    match dtype {
        DType::F32 => f32::from_le_bytes(four()) as f64,
        DType::F64 => f64::from_le_bytes(eight()),
        DType::F16 => f16::from_le_bytes(two()).to_f64(),
        DType::BF16 => bf16::from_le_bytes(two()).to_f64(),
        DType::I32 => i32::from_le_bytes(four()) as f64,
        DType::I64 => i64::from_le_bytes(eight()) as f64,
        DType::U8 => b[0] as f64,
        DType::Bool => (b[0] != 0) as u8 as f64,
        DType::Quantized(f) => unreachable!("{f} elements are read by block (View::get)"),
    }
}

/// Writes `v` rounded to `dtype` into one element's bytes: floats round to
/// nearest, integers truncate and saturate (NaN gives 0), nonzero is true.
pub(crate) fn encode(v: f64, dtype: DType, out: &mut [u8]) {
    match dtype {
        DType::F32 => out.copy_from_slice(&(v as f32).to_le_bytes()),
        DType::F64 => out.copy_from_slice(&v.to_le_bytes()),
        DType::F16 => out.copy_from_slice(&f16::from_f64(v).to_le_bytes()),
        DType::BF16 => out.copy_from_slice(&bf16::from_f64(v).to_le_bytes()),
        DType::I32 => out.copy_from_slice(&(v as i32).to_le_bytes()),
        DType::I64 => out.copy_from_slice(&(v as i64).to_le_bytes()),
        DType::U8 => out[0] = v as u8,
        DType::Bool => out[0] = (v != 0.0) as u8,
        DType::Quantized(f) => unreachable!("{f} is written a block at a time (cast)"),
    }
}

/// `v` rounded as storing it in `dtype` would round it.
pub(crate) fn round_to(v: f64, dtype: DType) -> f64 {
    let mut b = [0u8; 8];
    let size = dtype.size_in_bytes();
    encode(v, dtype, &mut b[..size]);
    decode(&b[..size], dtype)
}

/// The element offset, under `strides`, of the `i`-th row-major multi-index
/// of `shape`.
pub(crate) fn offset(mut i: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut off = 0;
    for d in (0..shape.len()).rev() {
        off += (i % shape[d]) * strides[d];
        i /= shape[d];
    }
    off
}

/// The `i`-th row-major multi-index of `shape`.
pub(crate) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// The row-major element index of a multi-index of `shape`.
pub(crate) fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    let strides = contiguous_strides(shape);
    idx.iter().zip(&strides).map(|(i, s)| i * s).sum()
}
