//! Whole rows: dequantize and quantize any number of consecutive blocks, split
//! over the pool when large.

use super::affine::{dequant_int4, dequant_int8, quant_int4, quant_int8};
use super::kquants::{
    dequant_q4_k, dequant_q5_k, dequant_q6_k, quant_q4_k, quant_q5_k, quant_q6_k,
};
use super::legacy::{
    dequant_q4_0, dequant_q4_1, dequant_q5_0, dequant_q5_1, dequant_q8_0, quant_q4_0, quant_q4_1,
    quant_q5_0, quant_q5_1, quant_q8_0,
};
use super::{BlockFormat, QuantError};
use crate::parallel;

/// Checks that `bytes` bytes hold exactly `elems` elements of `format`.
fn check_sizes(format: BlockFormat, bytes: usize, elems: usize) -> Result<(), QuantError> {
    let want = format.row_bytes(elems)?;
    if want != bytes {
        return Err(QuantError::ByteLength {
            format,
            bytes,
            elems,
        });
    }
    Ok(())
}

/// Dequantizes whole blocks of `format` from `bytes` into `out`
/// (`out.len()` elements; `bytes.len()` must be exactly their size).
/// Runs on the calling thread; see [`dequantize`] for large inputs.
pub fn dequantize_row(
    format: BlockFormat,
    bytes: &[u8],
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_sizes(format, bytes.len(), out.len())?;
    dequantize_blocks(format, bytes, out);
    Ok(())
}

crate::simd_dispatch! {
    /// Dequantizes `out.len() / block_elems` blocks (sizes already checked).
    fn dequantize_blocks(format: BlockFormat, bytes: &[u8], out: &mut [f32]) {
        let blocks = bytes
            .chunks_exact(format.block_bytes())
            .zip(out.chunks_exact_mut(format.block_elems()));
        match format {
            BlockFormat::Q8_0 => blocks.for_each(|(b, y)| dequant_q8_0(b, y)),
            BlockFormat::Q4_0 => blocks.for_each(|(b, y)| dequant_q4_0(b, y)),
            BlockFormat::Q4_1 | BlockFormat::Int4G32 => blocks.for_each(|(b, y)| dequant_q4_1(b, y)),
            BlockFormat::Q5_0 => blocks.for_each(|(b, y)| dequant_q5_0(b, y)),
            BlockFormat::Q5_1 => blocks.for_each(|(b, y)| dequant_q5_1(b, y)),
            BlockFormat::Q4K => blocks.for_each(|(b, y)| dequant_q4_k(b, y)),
            BlockFormat::Q5K => blocks.for_each(|(b, y)| dequant_q5_k(b, y)),
            BlockFormat::Q6K => blocks.for_each(|(b, y)| dequant_q6_k(b, y)),
            BlockFormat::Int8G32 => blocks.for_each(|(b, y)| dequant_int8::<32>(b, y)),
            BlockFormat::Int8G64 => blocks.for_each(|(b, y)| dequant_int8::<64>(b, y)),
            BlockFormat::Int4G64 => blocks.for_each(|(b, y)| dequant_int4::<64>(b, y)),
        }
    }
}

/// Quantizes `x` (a whole number of blocks) into `out`, which must be exactly
/// its size in `format`. Runs on the calling thread; see [`quantize`].
///
/// Fails on NaN or infinite input and on a block whose range f16 scales
/// cannot hold, naming the block.
pub fn quantize_row(format: BlockFormat, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    check_sizes(format, out.len(), x.len())?;
    quantize_blocks(format, x, out, 0)
}

/// Quantizes the blocks of `x` into `out` (sizes checked); `first_block` is the
/// index of the first block, for error messages.
fn quantize_blocks(
    format: BlockFormat,
    x: &[f32],
    out: &mut [u8],
    first_block: usize,
) -> Result<(), QuantError> {
    let quant: fn(&[f32], &mut [u8]) -> Result<(), &'static str> = match format {
        BlockFormat::Q8_0 => quant_q8_0,
        BlockFormat::Q4_0 => quant_q4_0,
        BlockFormat::Q4_1 | BlockFormat::Int4G32 => quant_q4_1,
        BlockFormat::Q5_0 => quant_q5_0,
        BlockFormat::Q5_1 => quant_q5_1,
        BlockFormat::Q4K => quant_q4_k,
        BlockFormat::Q5K => quant_q5_k,
        BlockFormat::Q6K => quant_q6_k,
        BlockFormat::Int8G32 => quant_int8::<32>,
        BlockFormat::Int8G64 => quant_int8::<64>,
        BlockFormat::Int4G64 => quant_int4::<64>,
    };
    let blocks = x
        .chunks_exact(format.block_elems())
        .zip(out.chunks_exact_mut(format.block_bytes()));
    for (i, (x, b)) in blocks.enumerate() {
        quant(x, b).map_err(|why| QuantError::Unrepresentable {
            format,
            block: first_block + i,
            why,
        })?;
    }
    Ok(())
}

/// Dequantizes whole blocks of `format` into a new vector (split over the pool
/// when large). `bytes.len()` must be a whole number of blocks.
pub fn dequantize(format: BlockFormat, bytes: &[u8]) -> Result<Vec<f32>, QuantError> {
    let blocks = bytes.len() / format.block_bytes();
    let elems = blocks
        .checked_mul(format.block_elems())
        .ok_or(QuantError::Overflow {
            format,
            elems: blocks,
        })?;
    let mut out = vec![0f32; elems];
    dequantize_into(format, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize_row`] for any size, split over the pool when large.
pub fn dequantize_into(
    format: BlockFormat,
    bytes: &[u8],
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_sizes(format, bytes.len(), out.len())?;
    let (be, bb) = (format.block_elems(), format.block_bytes());
    parallel::for_each_row_block_mut(out, be, be, |first, y| {
        let b = &bytes[first * bb..first * bb + (y.len() / be) * bb];
        dequantize_blocks(format, b, y);
    });
    Ok(())
}

/// Quantizes `x` (a whole number of blocks) into a new byte vector in
/// `format` (split over the pool when large); errors as [`quantize_row`].
pub fn quantize(format: BlockFormat, x: &[f32]) -> Result<Vec<u8>, QuantError> {
    let bytes = format.row_bytes(x.len())?;
    let mut out = vec![0u8; bytes];
    quantize_into(format, x, &mut out)?;
    Ok(out)
}

/// [`quantize_row`] for any size, split over the pool when large; the error
/// names the first bad block.
pub fn quantize_into(format: BlockFormat, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    check_sizes(format, out.len(), x.len())?;
    let (be, bb) = (format.block_elems(), format.block_bytes());
    let first_error = std::sync::Mutex::new(None::<QuantError>);
    // Quantizing costs a few times more per element than a copy.
    parallel::for_each_row_block_mut(out, bb, be * 4, |first, b| {
        let blocks = b.len() / bb;
        let xs = &x[first * be..(first + blocks) * be];
        if let Err(e) = quantize_blocks(format, xs, b, first) {
            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
            let earlier = matches!(&*slot, Some(QuantError::Unrepresentable { block, .. })
                if matches!(e, QuantError::Unrepresentable { block: b2, .. } if *block < b2));
            if !earlier {
                *slot = Some(e);
            }
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
