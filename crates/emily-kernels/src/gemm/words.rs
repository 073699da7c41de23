//! Word storage aligned to cache lines, for every operand a tile or vector
//! load reads whole 64-byte rows from: an AMX tile row that straddles two
//! lines costs two L1 accesses, and on the Xeon with AMX a packed A 32 bytes
//! off its line slowed the bf16 tile loop by ~40 % (a probe: 18 vs 25–28
//! cycles per `tdpbf16ps`); aligning it took 1500 × 1536 × 384 bf16 from
//! 916–927 to 1,022–1,031 GFLOP/s at one thread, 1,761–1,863 to 2,022–2,029
//! at two.

/// One 64-byte cache line of words.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u32; 16]);

/// Zero-initialised, 64-byte aligned `u32` storage of a settable length.
#[derive(Clone, Debug, Default)]
pub(crate) struct Words {
    lines: Vec<Line>,
    len: usize,
}

impl Words {
    /// No words (allocates nothing; usable in a `const` thread-local).
    pub(crate) const fn new() -> Self {
        Words {
            lines: Vec::new(),
            len: 0,
        }
    }

    /// `len` zero words.
    pub(crate) fn zeroed(len: usize) -> Self {
        Words {
            lines: vec![Line([0; 16]); len.div_ceil(16)],
            len,
        }
    }

    /// Sets the length to `len` as [`Vec::resize`] with zeros would: words
    /// kept are unchanged, words added are zero. Never gives memory back,
    /// so a buffer reused across calls allocates only when it grows.
    pub(crate) fn resize(&mut self, len: usize) {
        let (old, held) = (self.len, self.lines.len() * 16);
        if len > held {
            self.lines.resize(len.div_ceil(16), Line([0; 16]));
        }
        self.len = len;
        if len > old {
            let end = len.min(held);
            if end > old {
                self.as_mut_slice()[old..end].fill(0);
            }
        }
    }

    /// Words this buffer holds without reallocating.
    pub(crate) fn capacity(&self) -> usize {
        self.lines.capacity() * 16
    }

    pub(crate) fn as_slice(&self) -> &[u32] {
        // SAFETY: `lines` holds at least `len` contiguous, initialised u32s.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u32] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// 64-byte aligned `f32` storage with `Vec`'s `clear` / `resize` and a
/// slice's methods: for buffers whose rows are whole vectors (a vector load
/// or store that straddles two lines costs two accesses; the attention's
/// score and output tiles were 48 and 32 bytes off).
#[derive(Clone, Debug, Default)]
pub(crate) struct Floats(Words);

impl Floats {
    /// Sets the length to 0 (keeping the memory).
    pub(crate) fn clear(&mut self) {
        self.0.resize(0);
    }

    /// Sets the length to `len` as [`Vec::resize`] does: floats kept are
    /// unchanged, floats added are `value`.
    pub(crate) fn resize(&mut self, len: usize, value: f32) {
        let old = self.0.as_slice().len();
        self.0.resize(len);
        if len > old && value.to_bits() != 0 {
            self[old..].fill(value);
        }
    }
}

impl std::ops::Deref for Floats {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        bytemuck::cast_slice(self.0.as_slice())
    }
}

impl std::ops::DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        bytemuck::cast_slice_mut(self.0.as_mut_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::{Floats, Words};

    #[test]
    fn floats_resize_as_a_vec_does_on_cache_lines() {
        let mut f = Floats::default();
        f.resize(3, 1.5);
        f[1] = -2.0;
        f.resize(20, 0.25);
        assert_eq!(&f[..4], &[1.5, -2.0, 1.5, 0.25]);
        assert!(f[4..].iter().all(|&x| x == 0.25));
        assert_eq!(f.as_ptr() as usize % 64, 0);
        f.clear();
        f.resize(2, 0.0);
        assert_eq!(&f[..], &[0.0, 0.0]);
    }

    #[test]
    fn resize_keeps_words_zeroes_new_ones_and_stays_aligned() {
        let mut w = Words::zeroed(5);
        w.as_mut_slice().copy_from_slice(&[1, 2, 3, 4, 5]);
        w.resize(3);
        assert_eq!(w.as_slice(), &[1, 2, 3]);
        w.resize(40);
        assert_eq!(&w.as_slice()[..3], &[1, 2, 3]);
        assert!(w.as_slice()[3..].iter().all(|&x| x == 0));
        assert_eq!(w.as_slice().as_ptr() as usize % 64, 0);
        w.resize(0);
        assert!(w.as_slice().is_empty());
        assert!(w.capacity() >= 40);
    }
}
