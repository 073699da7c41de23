//! Reductions over the last axis of a `(rows, cols)` array and over the middle
//! axis of an `(outer, len, inner)` array (vectorised across `inner`).
//!
//! Sums accumulate in 32 independent f32 lanes over blocks of 256 elements,
//! then in 32 `f64` lanes; products accumulate in `f64`. A long row is
//! cut into fixed 65536-element segments whose partial results combine in
//! order, so results do not depend on the number of threads. Semantics:
//! Max / Min propagate NaN; ArgMax / ArgMin give the first index of the
//! extreme (the first NaN if there is one); LogSumExp subtracts the max
//! (rows of -inf give -inf, a +inf entry gives +inf). Empty reductions give
//! the identity: 0, 1, -inf, +inf, index 0, -inf.
//!
//! One concept per file: `lanes` holds the vectorised loops over one run of
//! values, `last_axis` and `middle_axis` the two layouts' drivers, and
//! `reference` the scalar `f64` versions the tests compare against.

mod lanes;
mod last_axis;
mod middle_axis;
mod reference;

pub(crate) use lanes::{extreme, flush, fold_lanes};
pub use last_axis::{arg_reduce_last_axis_f32, reduce_last_axis_f32};
pub use middle_axis::{arg_reduce_middle_axis_f32, reduce_middle_axis_f32};
pub use reference::{reduce_last_axis_f64, reduce_middle_axis_f64};

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Maximum (NaN if any element is NaN).
    Max,
    /// Minimum (NaN if any element is NaN).
    Min,
    /// Product.
    Prod,
    /// Index of the first maximum (of the first NaN, if any).
    ArgMax,
    /// Index of the first minimum (of the first NaN, if any).
    ArgMin,
    /// `log(sum(exp(x)))`, computed stably.
    LogSumExp,
}

impl ReduceOp {
    /// Every op, in declaration order.
    pub const ALL: [ReduceOp; 7] = [
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
        ReduceOp::ArgMax,
        ReduceOp::ArgMin,
        ReduceOp::LogSumExp,
    ];

    /// Whether the result is an index.
    pub fn is_arg(self) -> bool {
        matches!(self, ReduceOp::ArgMax | ReduceOp::ArgMin)
    }

    fn cost(self) -> usize {
        match self {
            ReduceOp::LogSumExp => 4,
            ReduceOp::ArgMax | ReduceOp::ArgMin | ReduceOp::Prod => 2,
            _ => 1,
        }
    }

    /// The result of an empty reduction.
    fn identity(self) -> f64 {
        match self {
            ReduceOp::Sum | ReduceOp::ArgMax | ReduceOp::ArgMin => 0.0,
            ReduceOp::Prod => 1.0,
            ReduceOp::Max | ReduceOp::LogSumExp => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
        }
    }
}

/// Independent accumulators (a multiple of every vector width).
pub(crate) const LANES: usize = 32;
/// Elements summed in f32 lanes before the block sum joins the f64 total.
pub(crate) const BLOCK: usize = 256;
/// A long row splits over threads in segments of this many elements.
pub(super) const SEGMENT: usize = 1 << 16;
/// Columns per middle-axis pass (each row contributes one contiguous run of
/// this length; the accumulators stay in L1/L2), the granularity at which
/// columns split over threads, and the rows summed in f32 before f64.
pub(crate) const WIDE: usize = 2048;
pub(crate) const COL_UNIT: usize = 64;
pub(crate) const TILE_ROWS: usize = 64;
