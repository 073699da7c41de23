//! Element types.

use emily_kernels::quant::BlockFormat;
use half::{bf16, f16};

use crate::error::{shape_err, Result};

/// The element type of a tensor.
///
/// Floating types compute in `f32` on the CPU except `F64`, which exists for
/// float64 reference computations in tests. Block-quantised weights
/// ([`DType::Quantized`]: GGUF's Q4/Q5/Q6/Q8 blocks and the affine int4/int8
/// groups) store whole blocks along the last axis; their buffer size comes
/// from [`DType::storage_bytes`], the one place that turns a shape into bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float (the default compute type).
    F32,
    /// 64-bit IEEE float (references).
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// Unsigned byte.
    U8,
    /// Boolean, stored as one byte (0 or 1).
    Bool,
    /// Block-quantised weights: each row (the last axis, a multiple of the
    /// format's block) is a run of blocks in `BlockFormat`'s byte layout.
    /// Such tensors are the weight of `matmul` (as `x · wᵀ`), the table of
    /// `gather`, and the input or output of `cast`; other ops refuse them.
    Quantized(BlockFormat),
}

impl DType {
    /// Every dtype with one value per element (all but the quantised ones).
    pub const ELEMENTS: [DType; 8] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes a contiguous row-major array of `shape` takes in this dtype, or
    /// an `Error::Shape` when the element count overflows `usize` or the
    /// bytes exceed `isize::MAX` (the most any allocation can hold).
    ///
    /// Every buffer size in the crate comes from here (never from
    /// `numel * size_in_bytes`; [`crate::shape::checked_bytes`] is this with
    /// the op's name in the error): a block-quantised dtype stores whole
    /// blocks of elements along the last axis, so its size is
    /// `rows * ceil(last / block) * bytes_per_block`, and only this function
    /// needs to know.
    pub fn storage_bytes(self, shape: &[usize]) -> Result<usize> {
        let n = crate::shape::checked_numel("storage", shape)?;
        if let DType::Quantized(format) = self {
            return quantized_bytes(format, shape, n);
        }
        match n.checked_mul(self.size_in_bytes()) {
            Some(b) if b <= isize::MAX as usize => Ok(b),
            _ => Err(shape_err(
                "storage",
                format!("shape {shape:?} of {self} needs more than isize::MAX bytes"),
            )),
        }
    }

    /// Bytes per element (the element stride of strided kernels). Quantised
    /// types have no per-element stride (a block holds many elements in a few
    /// bytes); they report 1, the alignment their blocks need, and every size
    /// of theirs comes from [`DType::storage_bytes`].
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 | DType::Bool | DType::Quantized(_) => 1,
        }
    }

    /// The block format of a quantised type.
    pub fn block_format(self) -> Option<BlockFormat> {
        match self {
            DType::Quantized(f) => Some(f),
            _ => None,
        }
    }

    /// True for the block-quantised types.
    pub fn is_quantized(self) -> bool {
        matches!(self, DType::Quantized(_))
    }

    /// True for F32, F64, F16 and BF16.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// True for the integer types (not Bool).
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64 | DType::U8)
    }

    /// True for types the CPU computes through `f32` (F32, F16, BF16).
    pub fn computes_in_f32(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// Short lowercase name (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::Bool => "bool",
            DType::Quantized(f) => f.name(),
        }
    }

    /// The dtype named `name` as [`DType::name`] spells it (`f32`, `q4_0`,
    /// `int4-g64` ...).
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ELEMENTS
            .into_iter()
            .find(|d| d.name() == name)
            .or_else(|| BlockFormat::from_name(name).map(DType::Quantized))
    }
}

/// Bytes of `shape` (`n` elements) stored as rows of `format` blocks: the
/// last axis must be a whole number of blocks.
fn quantized_bytes(format: BlockFormat, shape: &[usize], n: usize) -> Result<usize> {
    let Some(&last) = shape.last() else {
        return Err(shape_err(
            "storage",
            format!("a {format} tensor needs at least one axis (blocks run along the last)"),
        ));
    };
    let row = format.row_bytes(last).map_err(|_| {
        shape_err(
            "storage",
            format!(
                "shape {shape:?} of {format}: the last axis must be a multiple of the {}-element block",
                format.block_elems()
            ),
        )
    })?;
    let rows = n.checked_div(last).unwrap_or(0);
    match rows.checked_mul(row) {
        Some(b) if b <= isize::MAX as usize => Ok(b),
        _ => Err(shape_err(
            "storage",
            format!("shape {shape:?} of {format} needs more than isize::MAX bytes"),
        )),
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be stored in a tensor.
pub trait Element: bytemuck::Pod + Send + Sync + std::fmt::Debug + 'static {
    /// The tensor dtype of this type.
    const DTYPE: DType;
    /// Converts to f64 (lossless for every type but i64 beyond 2^53).
    fn to_f64(self) -> f64;
    /// Converts from f64 (rounding / truncating as `as` does).
    fn from_f64(v: f64) -> Self;
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    };
}
element!(f32, DType::F32);
element!(f64, DType::F64);
element!(i32, DType::I32);
element!(i64, DType::I64);
element!(u8, DType::U8);

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

/// A boolean element: one byte, 0 or 1 (`bool` itself is not `Pod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Bool(pub u8);

impl Element for Bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        (self.0 != 0) as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        Bool((v != 0.0) as u8)
    }
}
