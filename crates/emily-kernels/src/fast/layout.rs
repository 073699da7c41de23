//! Element strides of the 4-D `(batch, head, seq, feature)` tensors that RoPE and
//! attention read and write.

/// Element strides of a `(batch, head, seq, feature)` tensor whose feature axis is
/// contiguous (stride 1). Element `(b, h, t, i)` lives at
/// `b * batch + h * head + t * seq + i`.
///
/// [`HeadStrides::bhsd`] describes a contiguous `(B, H, T, D)` buffer and
/// [`HeadStrides::bshd`] a contiguous `(B, T, H, D)` one (the layout a model has
/// right after its Q/K/V projections, before any transpose). Any other strides
/// (e.g. a view into a larger KV cache) are allowed as long as distinct
/// elements of an *output* tensor never alias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadStrides {
    /// Elements between consecutive batch entries.
    pub batch: usize,
    /// Elements between consecutive heads.
    pub head: usize,
    /// Elements between consecutive sequence positions.
    pub seq: usize,
}

impl HeadStrides {
    /// Strides of a contiguous `(batch, heads, seq, dim)` buffer.
    pub const fn bhsd(heads: usize, seq: usize, dim: usize) -> Self {
        Self {
            batch: heads * seq * dim,
            head: seq * dim,
            seq: dim,
        }
    }

    /// Strides of a contiguous `(batch, seq, heads, dim)` buffer.
    pub const fn bshd(heads: usize, seq: usize, dim: usize) -> Self {
        Self {
            batch: seq * heads * dim,
            head: dim,
            seq: heads * dim,
        }
    }

    /// Offset of the first feature of `(b, h, t)`.
    #[inline(always)]
    pub const fn offset(&self, b: usize, h: usize, t: usize) -> usize {
        b * self.batch + h * self.head + t * self.seq
    }

    /// The smallest slice length that holds every element of a
    /// `(batch, heads, seq, dim)` tensor with these strides (0 if any extent is 0).
    pub const fn required_len(&self, batch: usize, heads: usize, seq: usize, dim: usize) -> usize {
        if batch == 0 || heads == 0 || seq == 0 || dim == 0 {
            return 0;
        }
        self.offset(batch - 1, heads - 1, seq - 1) + dim
    }
}

impl HeadStrides {
    /// Whether the `(batch, heads, seq, dim)` elements addressed by these strides
    /// are pairwise distinct, by a sufficient nesting test: ordered by stride, each
    /// axis (of extent > 1) must step over the whole span of the axes inside it.
    /// Contiguous `bhsd` / `bshd` layouts and slices of them pass.
    pub fn is_disjoint(&self, batch: usize, heads: usize, seq: usize, dim: usize) -> bool {
        let mut axes = [(self.batch, batch), (self.head, heads), (self.seq, seq)];
        axes.sort_unstable();
        let mut span = dim; // elements covered by the inner axes so far
        for (stride, extent) in axes {
            if extent <= 1 {
                continue;
            }
            if stride < span {
                return false;
            }
            span += stride * (extent - 1);
        }
        true
    }
}

/// A raw output pointer shared by the workers of one kernel call, each of which
/// writes a disjoint set of elements (checked with [`HeadStrides::is_disjoint`]
/// before the call).
pub(crate) struct SharedOut<T = f32>(pub(crate) *mut T);

impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}

// SAFETY: the kernels only write through this pointer at offsets that no other
// worker writes, inside the bounds of the `&mut [T]` it was made from.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The `len` elements at `offset` as a mutable slice.
    ///
    /// # Safety
    /// `offset + len` must lie inside the original buffer, and no other live
    /// reference may overlap this range.
    #[inline(always)]
    pub(crate) unsafe fn slice<'a>(self, offset: usize, len: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}
