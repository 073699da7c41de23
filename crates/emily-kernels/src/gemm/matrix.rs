//! A read-only strided matrix view: the A operand of a GEMM, or the source a
//! weight matrix is packed from.

/// `rows × cols` elements of `data`, element `(i, j)` at
/// `data[i * row_stride + j * col_stride]`. A row-major matrix has
/// `col_stride == 1`; its transpose is the same data with the strides swapped.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A view with explicit strides.
    ///
    /// # Panics
    /// If the last element `(rows - 1, cols - 1)` lies outside `data` (or its
    /// index overflows).
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1).checked_mul(row_stride).and_then(|r| {
                (cols - 1)
                    .checked_mul(col_stride)
                    .and_then(|c| r.checked_add(c))
            });
            assert!(
                matches!(last, Some(l) if l < data.len()),
                "MatRef: {rows}x{cols} with strides ({row_stride}, {col_stride}) does not fit in {} elements",
                data.len()
            );
        }
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A row-major `rows × cols` matrix.
    ///
    /// # Panics
    /// If `data.len() < rows * cols`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose of a row-major `cols × rows` matrix (e.g. the `k × n`
    /// view of PyTorch `Linear` weights stored `n × k`).
    ///
    /// # Panics
    /// If `data.len() < rows * cols`.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, 1, rows)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`.
    ///
    /// # Panics
    /// If `i >= rows` or `j >= cols`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> T {
        assert!(
            i < self.rows && j < self.cols,
            "MatRef::get({i}, {j}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// Column `j` as a slice when the rows are contiguous (the transposed
    /// view of weights stored `n × k`).
    #[inline]
    pub(crate) fn col_slice(&self, j: usize) -> Option<&'a [T]> {
        (self.row_stride == 1 && j < self.cols && self.rows > 0)
            .then(|| &self.data[j * self.col_stride..][..self.rows])
    }

    /// Row `i` as a slice when the columns are contiguous.
    #[inline]
    pub(crate) fn row_slice(&self, i: usize) -> Option<&'a [T]> {
        (self.col_stride == 1 && i < self.rows && self.cols > 0)
            .then(|| &self.data[i * self.row_stride..][..self.cols])
    }
}
