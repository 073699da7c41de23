//! Errors of the quantization functions.

use super::BlockFormat;

/// What went wrong quantizing or dequantizing a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// A row length that is not a whole number of blocks.
    #[error("{format}: a row of {len} elements is not a multiple of the {}-element block", format.block_elems())]
    RowLength {
        /// The format.
        format: BlockFormat,
        /// The offending length in elements.
        len: usize,
    },
    /// Block bytes and element count that do not match.
    #[error("{format}: {bytes} bytes do not hold {elems} elements ({} bytes per {} elements)", format.block_bytes(), format.block_elems())]
    ByteLength {
        /// The format.
        format: BlockFormat,
        /// Bytes given.
        bytes: usize,
        /// Elements given.
        elems: usize,
    },
    /// A size computation that overflows `usize`.
    #[error("{format}: size of {elems} elements overflows")]
    Overflow {
        /// The format.
        format: BlockFormat,
        /// Elements asked for.
        elems: usize,
    },
    /// An input value the format cannot represent (NaN, infinity, or a range
    /// whose scale overflows f16).
    #[error("{format}: cannot quantize block {block}: {why}")]
    Unrepresentable {
        /// The format.
        format: BlockFormat,
        /// Index of the block within the row.
        block: usize,
        /// What was wrong.
        why: &'static str,
    },
    /// An output buffer of the wrong size.
    #[error("quantized matmul: output has {len} elements, expected m*n = {m}*{n}")]
    OutputLength {
        /// Activation rows.
        m: usize,
        /// Weight rows.
        n: usize,
        /// Elements given.
        len: usize,
    },
    /// An activation buffer of the wrong size.
    #[error("quantized matmul: activations have {len} elements, expected m*k = {m}*{k}")]
    InputLength {
        /// Activation rows.
        m: usize,
        /// Values per row.
        k: usize,
        /// Elements given.
        len: usize,
    },
    /// A kernel implementation this CPU does not have.
    #[error("quantized matmul: this CPU cannot run the {0} kernels")]
    UnavailableIsa(&'static str),
    /// A format name we do not know.
    #[error("unknown quantization format {0:?} (known: q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, int8-g32, int8-g64, int4-g32, int4-g64)")]
    UnknownFormat(String),
}
