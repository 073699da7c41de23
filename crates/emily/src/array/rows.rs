//! Rows along the leading axis of a host array removed or appended in its
//! own buffer: what a batch of sequences (a server's decoder batch, whose
//! caches hold one row per sequence) does at every join and departure.
//! Copying the whole batch each time cost more than the joining row's own
//! prefill (tiny.en: 13 ms to join a fourth row, 5 ms to drop one).

use std::sync::Arc;

use super::Array;
use crate::memory::HostBuffer;
use crate::storage::Storage;

/// Whether `keep` names rows of an array of `rows` rows, each at most once,
/// none coming from above its new place (`keep[i] >= i`): what keeping rows
/// in one buffer needs, written in order of their new places. Rows in
/// order qualify, and so do rows whose holes are filled from the end (a
/// departure moving the last row into the gap).
pub(crate) fn moves_down_below(keep: &[usize], rows: usize) -> bool {
    let mut seen = vec![false; rows];
    keep.iter().enumerate().all(|(i, &k)| {
        let fresh = k < rows && k >= i && !seen[k];
        if fresh {
            seen[k] = true;
        }
        fresh
    })
}

impl Array {
    /// Bytes of one row along the leading axis (`None` for a scalar or a
    /// block-quantized type, whose rows need not be whole bytes).
    fn row_bytes(&self) -> Option<usize> {
        if self.shape.is_empty() || self.dtype.is_quantized() {
            return None;
        }
        Some(self.shape[1..].iter().product::<usize>() * self.dtype.size_in_bytes())
    }

    fn with_rows(mut self, rows: usize) -> Array {
        let mut shape = self.shape.to_vec();
        shape[0] = rows;
        self.shape = shape.into();
        self
    }

    /// Rows `keep` (in range, each once, none from above its new place:
    /// [`moves_down_below`]) moved into place in this array's buffer and
    /// the rest dropped, when it is host memory nobody else holds; the
    /// array comes back unchanged otherwise. The buffer keeps its
    /// allocation, so rows appended later fit in place.
    pub(crate) fn retain_rows_in_place(mut self, keep: &[usize]) -> Result<Array, Array> {
        let Some(rb) = self.row_bytes() else {
            return Err(self);
        };
        if !moves_down_below(keep, self.shape[0]) {
            return Err(self);
        }
        let Some(buf) = self.host_buffer_mut() else {
            return Err(self);
        };
        let bytes = buf.bytes_mut();
        for (i, &src) in keep.iter().enumerate() {
            if src != i {
                bytes.copy_within(src * rb..(src + 1) * rb, i * rb);
            }
        }
        buf.truncate(keep.len() * rb);
        Ok(self.with_rows(keep.len()))
    }

    /// This array followed by `more` along the leading axis (host arrays of
    /// the same dtype and trailing shape): written into this array's buffer
    /// when nobody else holds it and its allocation has room, else into a
    /// new one with room for `reserve` rows in all. The array comes back
    /// (`Ok(Err(self))`) when the arrays are not all host data of one dtype
    /// and trailing shape; an error only when memory is refused.
    pub(crate) fn append_rows(
        mut self,
        more: &[Array],
        reserve: usize,
    ) -> crate::Result<Result<Array, Array>> {
        let Some(rb) = self.row_bytes() else {
            return Ok(Err(self));
        };
        let fits = |a: &Array| {
            a.dtype == self.dtype
                && a.shape.len() == self.shape.len()
                && a.shape[1..] == self.shape[1..]
                && a.host_bytes().is_some()
        };
        if !more.iter().all(fits) || self.host_bytes().is_none() {
            return Ok(Err(self));
        }
        let old = self.shape[0];
        let total = old + more.iter().map(|a| a.shape[0]).sum::<usize>();
        let in_place = self
            .host_buffer_mut()
            .is_some_and(|b| b.capacity() >= total * rb);
        let mut out = if in_place {
            self
        } else {
            let mut fresh = HostBuffer::new(reserve.max(total) * rb)?;
            fresh.truncate(old * rb);
            fresh.bytes_mut().copy_from_slice(self.bytes());
            Array {
                storage: Arc::new(Storage::Host(fresh)),
                shape: self.shape.clone(),
                dtype: self.dtype,
            }
        };
        let buf = out.host_buffer_mut().expect("a buffer only `out` holds");
        assert!(buf.extend(total * rb), "room checked or reserved above");
        let bytes = buf.bytes_mut();
        let mut at = old * rb;
        for a in more {
            let src = a.bytes();
            bytes[at..at + src.len()].copy_from_slice(src);
            at += src.len();
        }
        Ok(Ok(out.with_rows(total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(a: &Array) -> Vec<Vec<f32>> {
        let cols: usize = a.shape()[1..].iter().product();
        a.as_slice::<f32>()
            .chunks(cols)
            .map(<[f32]>::to_vec)
            .collect()
    }

    /// `rows` rows of 1 KiB (so the buffers' size classes have no room
    /// beyond what a test reserves).
    fn random(rows: usize, seed: u32) -> Array {
        // A small LCG: distinct values per row and seed.
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let data: Vec<f32> = (0..rows * 256)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect();
        Array::from_slice(&data, &[rows, 16, 16]).unwrap()
    }

    /// Rows in order, and holes filled from the end (a departure's swap),
    /// land in place in the same buffer.
    #[test]
    fn retained_rows_move_down_in_the_same_buffer() {
        for keep in [&[0, 2, 3][..], &[0, 4, 2], &[3, 1], &[4, 3, 2], &[1]] {
            let a = random(5, 1);
            let want: Vec<_> = keep.iter().map(|&r| rows(&a)[r].clone()).collect();
            let id = a.buffer_id();
            let kept = a.retain_rows_in_place(keep).expect("unique host array");
            assert_eq!(kept.shape(), &[keep.len(), 16, 16]);
            assert_eq!(kept.buffer_id(), id);
            assert_eq!(rows(&kept), want, "{keep:?}");
        }
    }

    #[test]
    fn retain_refuses_shared_buffers_and_bad_indices() {
        let a = random(4, 2);
        let other = a.clone();
        let a = a.retain_rows_in_place(&[1]).expect_err("shared buffer");
        drop(other);
        let a = a
            .retain_rows_in_place(&[1, 0])
            .expect_err("row 0 from above");
        let a = a.retain_rows_in_place(&[2, 2]).expect_err("a row twice");
        let a = a.retain_rows_in_place(&[0, 4]).expect_err("out of range");
        assert_eq!(a.retain_rows_in_place(&[]).unwrap().shape(), &[0, 16, 16]);
    }

    #[test]
    fn appended_rows_fill_reserved_room_in_place_then_move_when_full() {
        let (a, b, c) = (random(3, 3), random(1, 4), random(2, 5));
        let mut want = rows(&a);
        want.extend(rows(&b));
        // A buffer exactly full: the first append moves to one with room for 4.
        let grown = a.append_rows(&[b], 4).unwrap().expect("host arrays");
        assert_eq!(rows(&grown), want);
        let id = grown.buffer_id();
        // Drop a row, then append one: it fits where the dropped one was.
        let kept = grown.retain_rows_in_place(&[0, 1, 3]).unwrap();
        let one = random(1, 6);
        let mut want: Vec<_> = [0, 1, 3].iter().map(|&r| want[r].clone()).collect();
        want.extend(rows(&one));
        let refilled = kept.append_rows(&[one], 4).unwrap().unwrap();
        assert_eq!(refilled.buffer_id(), id, "appended in place");
        assert_eq!(rows(&refilled), want);
        // Two more rows exceed the room: a new buffer holds all six.
        want.extend(rows(&c));
        let moved = refilled.append_rows(&[c], 8).unwrap().unwrap();
        assert_ne!(moved.buffer_id(), id);
        assert_eq!(moved.shape(), &[6, 16, 16]);
        assert_eq!(rows(&moved), want);
    }

    #[test]
    fn append_refuses_other_shapes_and_types() {
        let a = random(2, 7);
        let wide = Array::from_slice(&[0f32; 512], &[2, 256]).unwrap();
        let a = a
            .append_rows(&[wide], 4)
            .unwrap()
            .expect_err("trailing shape");
        let ints = Array::from_slice(&[0i32; 256], &[1, 16, 16]).unwrap();
        a.append_rows(&[ints], 4).unwrap().expect_err("dtype");
    }
}
