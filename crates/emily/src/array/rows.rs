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
    /// and trailing shape; an error only when memory is refused. With
    /// `zero_pad` each of `more` may also be shorter than this array along
    /// any trailing axis: its elements land at the same indices and the
    /// rest of its new rows are zeros (a sequence's
    /// cache prefilled for its first positions joining a batch's caches of
    /// the whole context, without a copy of the context's zeros).
    pub(crate) fn append_rows_padded(
        mut self,
        more: &[Array],
        reserve: usize,
        zero_pad: bool,
    ) -> crate::Result<Result<Array, Array>> {
        let Some(rb) = self.row_bytes() else {
            return Ok(Err(self));
        };
        let fits = |a: &Array| {
            let trailing = a.shape.len() == self.shape.len()
                && if zero_pad {
                    a.shape[1..]
                        .iter()
                        .zip(&self.shape[1..])
                        .all(|(m, s)| m <= s)
                } else {
                    a.shape[1..] == self.shape[1..]
                };
            a.dtype == self.dtype && trailing && a.host_bytes().is_some()
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
        let row_shape = out.shape[1..].to_vec();
        let elem = out.dtype.size_in_bytes();
        let buf = out.host_buffer_mut().expect("a buffer only `out` holds");
        assert!(buf.extend(total * rb), "room checked or reserved above");
        let bytes = buf.bytes_mut();
        let mut at = old * rb;
        for a in more {
            let src = a.bytes();
            if a.shape[1..] == row_shape[..] {
                bytes[at..at + src.len()].copy_from_slice(src);
            } else {
                let per_row = src.len() / a.shape[0].max(1);
                for (r, row) in src.chunks_exact(per_row.max(1)).enumerate() {
                    let dst = &mut bytes[at + r * rb..at + (r + 1) * rb];
                    place_padded(dst, row, &row_shape, &a.shape[1..], elem);
                }
            }
            at += a.shape[0] * rb;
        }
        Ok(Ok(out.with_rows(total)))
    }
}

/// Writes `src` (one row of shape `src_shape`, each extent at most
/// `dst_shape`'s) into `dst` (one row of `dst_shape`) at the same indices,
/// zeros elsewhere. Past the last axis where the shapes differ both are
/// contiguous, so each index of the axes before it is one copy and one fill
/// (a cache `(heads, positions, dim)`: a copy and a fill per head).
fn place_padded(dst: &mut [u8], src: &[u8], dst_shape: &[usize], src_shape: &[usize], elem: usize) {
    let Some(axis) = (0..dst_shape.len())
        .rev()
        .find(|&d| dst_shape[d] != src_shape[d])
    else {
        dst.copy_from_slice(src);
        return;
    };
    let run = dst_shape[axis + 1..].iter().product::<usize>() * elem;
    let (dst_block, src_block) = (dst_shape[axis] * run, src_shape[axis] * run);
    let outer = &dst_shape[..axis];
    let mut index = vec![0usize; outer.len()];
    for d in dst.chunks_exact_mut(dst_block.max(1)) {
        if index.iter().zip(src_shape).all(|(i, n)| i < n) {
            let s = index
                .iter()
                .zip(src_shape)
                .fold(0, |acc, (&i, &n)| acc * n + i);
            d[..src_block].copy_from_slice(&src[s * src_block..(s + 1) * src_block]);
            d[src_block..].fill(0);
        } else {
            d.fill(0);
        }
        // The next index, last axis fastest.
        for (i, &n) in index.iter_mut().zip(outer).rev() {
            *i += 1;
            if *i < n {
                break;
            }
            *i = 0;
        }
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
        let grown = a
            .append_rows_padded(&[b], 4, false)
            .unwrap()
            .expect("host arrays");
        assert_eq!(rows(&grown), want);
        let id = grown.buffer_id();
        // Drop a row, then append one: it fits where the dropped one was.
        let kept = grown.retain_rows_in_place(&[0, 1, 3]).unwrap();
        let one = random(1, 6);
        let mut want: Vec<_> = [0, 1, 3].iter().map(|&r| want[r].clone()).collect();
        want.extend(rows(&one));
        let refilled = kept.append_rows_padded(&[one], 4, false).unwrap().unwrap();
        assert_eq!(refilled.buffer_id(), id, "appended in place");
        assert_eq!(rows(&refilled), want);
        // Two more rows exceed the room: a new buffer holds all six.
        want.extend(rows(&c));
        let moved = refilled
            .append_rows_padded(&[c], 8, false)
            .unwrap()
            .unwrap();
        assert_ne!(moved.buffer_id(), id);
        assert_eq!(moved.shape(), &[6, 16, 16]);
        assert_eq!(rows(&moved), want);
    }

    #[test]
    fn append_refuses_other_shapes_and_types() {
        let a = random(2, 7);
        let wide = Array::from_slice(&[0f32; 512], &[2, 256]).unwrap();
        let a = a
            .append_rows_padded(&[wide], 4, false)
            .unwrap()
            .expect_err("trailing shape");
        let ints = Array::from_slice(&[0i32; 256], &[1, 16, 16]).unwrap();
        a.append_rows_padded(&[ints], 4, false)
            .unwrap()
            .expect_err("dtype");
    }

    /// A shorter row joins with zeros past its extents, in place and into a
    /// new buffer, at an axis in the middle and at the last.
    #[test]
    fn padded_rows_land_at_their_indices_with_zeros_around() {
        let full = |a: &Array| a.as_slice::<f32>().to_vec();
        for (dims, small) in [
            ([4, 5, 3], [4, 2, 3]),
            ([4, 5, 3], [3, 5, 2]),
            ([4, 5, 3], [1, 1, 1]),
        ] {
            let n: usize = small.iter().product();
            let data: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.25).collect();
            let row = Array::from_slice(&data, &[1, small[0], small[1], small[2]]).unwrap();
            let mut want = vec![0f32; dims.iter().product()];
            for (i, &v) in data.iter().enumerate() {
                let (a, b, c) = (
                    i / (small[1] * small[2]),
                    i / small[2] % small[1],
                    i % small[2],
                );
                want[(a * dims[1] + b) * dims[2] + c] = v;
            }
            let base = Array::from_slice(&vec![7f32; 2 * 60], &[2, 4, 5, 3]).unwrap();
            let grown = base
                .append_rows_padded(std::slice::from_ref(&row), 4, true)
                .unwrap()
                .expect("host arrays");
            assert_eq!(grown.shape(), &[3, 4, 5, 3]);
            assert_eq!(&full(&grown)[..120], &[7f32; 120][..]);
            assert_eq!(&full(&grown)[120..], &want[..], "{small:?}, new buffer");
            let id = grown.buffer_id();
            let again = grown.append_rows_padded(&[row], 4, true).unwrap().unwrap();
            assert_eq!(again.buffer_id(), id, "in place");
            assert_eq!(&full(&again)[180..], &want[..], "{small:?}, in place");
        }
        let base = random(1, 8);
        let longer = Array::from_slice(&[0f32; 17 * 16], &[1, 17, 16]).unwrap();
        let base = base
            .append_rows_padded(&[longer], 4, true)
            .unwrap()
            .expect_err("longer than the rows");
        let short = Array::from_slice(&[0f32; 16], &[1, 1, 16]).unwrap();
        base.append_rows_padded(&[short], 4, false)
            .unwrap()
            .expect_err("not padded");
    }
}
