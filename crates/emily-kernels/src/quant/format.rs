//! The block formats: their names, sizes and GGML type ids.

use super::QuantError;

/// Elements in one super-block of the K-quant formats.
pub const QK_K: usize = 256;

/// A block-quantized storage format for the rows of a weight matrix.
///
/// A row of `k` elements (`k` a multiple of [`BlockFormat::block_elems`]) is
/// stored as `k / block_elems` blocks of [`BlockFormat::block_bytes`] bytes,
/// one after another. The GGML formats (`Q*`) are byte-exact with the tensors
/// of a GGUF file, so its bytes are used in place. The affine formats
/// (`Int*G*`) are this crate's own group-wise scheme (each group of 32 or 64
/// elements stores an f16 scale `d` and an f16 bias `m`, and element
/// `x = d * q + m` with an unsigned code `q`), made from f16/bf16/f32 weights
/// on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockFormat {
    /// GGML `Q8_0`: 32 elements, f16 scale, 32 signed 8-bit codes (34 bytes).
    Q8_0,
    /// GGML `Q4_0`: 32 elements, f16 scale, 4-bit codes offset by 8 (18 bytes).
    Q4_0,
    /// GGML `Q4_1`: 32 elements, f16 scale and min, 4-bit codes (20 bytes).
    Q4_1,
    /// GGML `Q5_0`: 32 elements, f16 scale, 5-bit codes offset by 16 (22 bytes).
    Q5_0,
    /// GGML `Q5_1`: 32 elements, f16 scale and min, 5-bit codes (24 bytes).
    Q5_1,
    /// GGML `Q4_K`: 256 elements in 8 sub-blocks of 32 with 6-bit scales and
    /// mins under f16 super-scales, 4-bit codes (144 bytes).
    Q4K,
    /// GGML `Q5_K`: as `Q4_K` with 5-bit codes (176 bytes).
    Q5K,
    /// GGML `Q6_K`: 256 elements in 16 sub-blocks of 16 with 8-bit scales
    /// under an f16 super-scale, 6-bit codes offset by 32 (210 bytes).
    Q6K,
    /// Affine 8-bit, groups of 32: f16 scale, f16 bias, 32 codes (36 bytes).
    Int8G32,
    /// Affine 8-bit, groups of 64: f16 scale, f16 bias, 64 codes (68 bytes).
    Int8G64,
    /// Affine 4-bit, groups of 32: f16 scale, f16 bias, 16 bytes of codes
    /// (20 bytes; byte `j` holds element `j` low and `j + 16` high).
    Int4G32,
    /// Affine 4-bit, groups of 64: f16 scale, f16 bias, 32 bytes of codes
    /// (36 bytes; byte `j` holds element `j` low and `j + 32` high).
    Int4G64,
}

impl BlockFormat {
    /// Every format, GGML ones first.
    pub const ALL: [BlockFormat; 12] = [
        BlockFormat::Q8_0,
        BlockFormat::Q4_0,
        BlockFormat::Q4_1,
        BlockFormat::Q5_0,
        BlockFormat::Q5_1,
        BlockFormat::Q4K,
        BlockFormat::Q5K,
        BlockFormat::Q6K,
        BlockFormat::Int8G32,
        BlockFormat::Int8G64,
        BlockFormat::Int4G32,
        BlockFormat::Int4G64,
    ];

    /// Elements per block along a row.
    pub const fn block_elems(self) -> usize {
        match self {
            BlockFormat::Q4K | BlockFormat::Q5K | BlockFormat::Q6K => QK_K,
            BlockFormat::Int8G64 | BlockFormat::Int4G64 => 64,
            _ => 32,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q8_0 => 34,
            BlockFormat::Q4_0 => 18,
            BlockFormat::Q4_1 => 20,
            BlockFormat::Q5_0 => 22,
            BlockFormat::Q5_1 => 24,
            BlockFormat::Q4K => 144,
            BlockFormat::Q5K => 176,
            BlockFormat::Q6K => 210,
            BlockFormat::Int8G32 => 36,
            BlockFormat::Int8G64 => 68,
            BlockFormat::Int4G32 => 20,
            BlockFormat::Int4G64 => 36,
        }
    }

    /// The lower-case name used on the command line and in messages
    /// (`q8_0`, `q4_k`, `int4-g64` ...).
    pub const fn name(self) -> &'static str {
        match self {
            BlockFormat::Q8_0 => "q8_0",
            BlockFormat::Q4_0 => "q4_0",
            BlockFormat::Q4_1 => "q4_1",
            BlockFormat::Q5_0 => "q5_0",
            BlockFormat::Q5_1 => "q5_1",
            BlockFormat::Q4K => "q4_k",
            BlockFormat::Q5K => "q5_k",
            BlockFormat::Q6K => "q6_k",
            BlockFormat::Int8G32 => "int8-g32",
            BlockFormat::Int8G64 => "int8-g64",
            BlockFormat::Int4G32 => "int4-g32",
            BlockFormat::Int4G64 => "int4-g64",
        }
    }

    /// The format named `name` (case-insensitive), as [`BlockFormat::name`] spells it.
    pub fn from_name(name: &str) -> Option<BlockFormat> {
        BlockFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The `ggml_type` id a GGUF file uses for this format (`None` for the
    /// affine formats, which GGML does not have).
    pub const fn ggml_type(self) -> Option<u32> {
        match self {
            BlockFormat::Q4_0 => Some(2),
            BlockFormat::Q4_1 => Some(3),
            BlockFormat::Q5_0 => Some(6),
            BlockFormat::Q5_1 => Some(7),
            BlockFormat::Q8_0 => Some(8),
            BlockFormat::Q4K => Some(12),
            BlockFormat::Q5K => Some(13),
            BlockFormat::Q6K => Some(14),
            _ => None,
        }
    }

    /// The format of GGUF tensor type id `id`, if it is one of ours.
    pub fn from_ggml_type(id: u32) -> Option<BlockFormat> {
        BlockFormat::ALL
            .into_iter()
            .find(|f| f.ggml_type() == Some(id))
    }

    /// Whether this is one of the affine group formats (`Int*G*`).
    pub const fn is_affine(self) -> bool {
        matches!(
            self,
            BlockFormat::Int8G32
                | BlockFormat::Int8G64
                | BlockFormat::Int4G32
                | BlockFormat::Int4G64
        )
    }

    /// Blocks in a row of `k` elements; an error unless `k` is a multiple of
    /// [`BlockFormat::block_elems`].
    pub fn blocks_in_row(self, k: usize) -> Result<usize, QuantError> {
        let be = self.block_elems();
        if !k.is_multiple_of(be) {
            return Err(QuantError::RowLength {
                format: self,
                len: k,
            });
        }
        Ok(k / be)
    }

    /// Bytes of a row of `k` elements (checked: `k` a multiple of the block).
    pub fn row_bytes(self, k: usize) -> Result<usize, QuantError> {
        self.blocks_in_row(k)?
            .checked_mul(self.block_bytes())
            .ok_or(QuantError::Overflow {
                format: self,
                elems: k,
            })
    }

    /// Bytes of `elems` elements stored as whole rows of this format (checked;
    /// `elems` must be a multiple of the block).
    pub fn storage_bytes(self, elems: usize) -> Result<usize, QuantError> {
        self.row_bytes(elems)
    }
}

impl std::fmt::Display for BlockFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BlockFormat {
    type Err = QuantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BlockFormat::from_name(s).ok_or_else(|| QuantError::UnknownFormat(s.to_string()))
    }
}
