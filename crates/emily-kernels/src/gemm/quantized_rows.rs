//! f32 activation rows quantized and packed once for the int8 engine, then
//! multiplied by any number of weights of the same depth.
//!
//! [`super::gemm_int8`] quantizes its activations on every call. Several
//! products of one input — a layer's query, key and value projections, or
//! the key and value projections of every decoder layer over one encoder
//! output — would quantize the same rows again each time; a
//! [`QuantizedRows`] holds them quantized (per row, [`super::quantize_row_u8`])
//! in the packed layout the engine reads, so each product only multiplies.
//! The products are bit-identical to [`super::gemm_int8`]'s: the rows are
//! quantized the same way whichever weight they meet.

use super::driver::{self, AOperand, Gemm};
use super::prepack::{self, Blocking};
use super::quantize::RowQuant;
use super::words::Words;
use super::{
    check_engine, check_shapes, dequantize_row, Engine, MatRef, PackedInt8, Precision, RowEpilogue,
    MAX_INT8_DEPTH,
};

/// Activation rows quantized to u8 (one scale and zero point per row) and
/// packed for one int8 engine and depth.
pub struct QuantizedRows {
    engine: Engine,
    blocking: Blocking,
    rows: usize,
    cols: usize,
    words: Words,
    quant: Vec<RowQuant>,
}

impl std::fmt::Debug for QuantizedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantizedRows({}x{}, {})",
            self.rows,
            self.cols,
            self.engine.name()
        )
    }
}

impl QuantizedRows {
    /// Quantizes the rows of `a` for products with weights packed like `b`
    /// (any [`PackedInt8`] of the same depth) on the best engine.
    ///
    /// # Panics
    /// If `a` has not `b.k()` columns or `a.cols() > MAX_INT8_DEPTH`.
    pub fn quantize(a: MatRef<'_, f32>, b: &PackedInt8) -> QuantizedRows {
        QuantizedRows::quantize_on(Engine::best(Precision::Int8), a, b)
    }

    /// [`Self::quantize`] for a given engine.
    ///
    /// # Panics
    /// As [`Self::quantize`], or if the engine does not run int8 here.
    pub fn quantize_on(engine: Engine, a: MatRef<'_, f32>, b: &PackedInt8) -> QuantizedRows {
        QuantizedRows::quantize_into(engine, a, b, Words::default())
    }

    /// Quantizes `a` as [`Self::quantize_on`] into `words` (a buffer kept
    /// from an earlier call: resized, every word rewritten).
    pub(crate) fn quantize_into(
        engine: Engine,
        a: MatRef<'_, f32>,
        b: &PackedInt8,
        mut words: Words,
    ) -> QuantizedRows {
        check_engine(engine, Precision::Int8);
        let (rows, cols) = (a.rows(), a.cols());
        assert_eq!(
            cols,
            b.k(),
            "gemm_int8: A has {cols} columns but B has {} rows",
            b.k()
        );
        assert!(
            cols <= MAX_INT8_DEPTH,
            "gemm_int8: depth {cols} exceeds {MAX_INT8_DEPTH}"
        );
        let blocking = driver::blocking(engine, &b.layout);
        let quant = prepack::quantize_pack(a, blocking, &mut words);
        QuantizedRows {
            engine,
            blocking,
            rows,
            cols,
            words,
            quant,
        }
    }

    /// [`Self::quantize`] into this value's buffers, so a caller that keeps
    /// one allocates (and faults in) no fresh memory per input.
    ///
    /// # Panics
    /// As [`Self::quantize`].
    pub fn requantize(&mut self, a: MatRef<'_, f32>, b: &PackedInt8) {
        let words = std::mem::take(&mut self.words);
        *self = QuantizedRows::quantize_into(Engine::best(Precision::Int8), a, b, words);
    }

    /// Rows quantized.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (the products' depth).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether these rows can be multiplied by `b`: the same depth, packed
    /// in the layout `b`'s products read.
    pub fn fits(&self, b: &PackedInt8) -> bool {
        self.cols == b.k() && self.blocking == driver::blocking(self.engine, &b.layout)
    }

    /// Each row's scale and zero point.
    pub fn row_params(&self) -> &[RowQuant] {
        &self.quant
    }

    /// The packed words, handed back for reuse.
    pub(crate) fn into_words(self) -> Words {
        self.words
    }
}

/// `out ≈ a · b` for rows quantized once ([`QuantizedRows`]) and int8
/// weights, `bias[j]` added by the dequantizing pass and then `then` run
/// over the finished rows, on the engine the rows were packed for: equal,
/// bit for bit, to [`super::gemm_int8_bias_then`] on the f32 rows.
///
/// # Panics
/// If `a` does not [`QuantizedRows::fits`] `b`, `out.len()` is not
/// `a.rows() · b.n()` or `bias` is not `b.n()` long.
pub fn gemm_int8_quantized_then(
    a: &QuantizedRows,
    b: &PackedInt8,
    bias: Option<&[f32]>,
    then: Option<RowEpilogue<'_>>,
    out: &mut [f32],
) {
    assert!(
        a.fits(b),
        "gemm_int8: {a:?} were not packed for a {}x{} weight",
        b.k(),
        b.n()
    );
    let m = a.rows;
    check_shapes("gemm_int8", m, a.cols, b.k(), b.n(), out.len());
    if let Some(bias) = bias {
        assert_eq!(
            bias.len(),
            b.n(),
            "gemm_int8: bias has {} elements, expected {}",
            bias.len(),
            b.n()
        );
    }
    if m == 0 || b.n() == 0 {
        return;
    }
    let (quant, sums, scales) = (&a.quant, &b.col_sums, &b.scales);
    let epilogue = |i: usize, j0: usize, row: &mut [u32]| {
        let RowQuant { scale, zero_point } = quant[i];
        let nc = row.len();
        let (sums, scales) = (&sums[j0..j0 + nc], &scales[j0..j0 + nc]);
        match bias {
            Some(bias) => dequantize_row(row, zero_point, scale, sums, scales, &bias[j0..j0 + nc]),
            None => dequantize_row(row, zero_point, scale, sums, scales, &[]),
        }
        if let Some(then) = then {
            then(i, j0, bytemuck::cast_slice_mut(row));
        }
    };
    Gemm {
        engine: a.engine,
        precision: Precision::Int8,
        m,
        a: AOperand::Packed(a.words.as_slice()),
        b_layout: b.layout,
        b: b.data.as_slice(),
        epilogue: Some(&epilogue),
    }
    .run(bytemuck::cast_slice_mut(out));
}
