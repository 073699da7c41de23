//! How a decoding batch reorders its rows when some leave: the rows that
//! stay fill the leavers' places from the batch's end, so a departure moves
//! one row's buffers in place ([`emily::Tensor::retain_rows`]) rather than
//! every row after it. Shared by Whisper's and the language model's
//! continuous batches and by the callers that keep per-row items beside them.

/// The rows `keep` marks, as old indices in their new order: each keeps its
/// place, except that the places of dropped rows below the new count go to
/// the kept rows past it, last first (every row then moves down or stays,
/// as [`emily::Tensor::retain_rows`] moves rows in place).
pub fn fill_from_the_end(keep: &[bool]) -> Vec<usize> {
    let n = keep.iter().filter(|&&k| k).count();
    // As many kept rows past the new count as dropped ones below it.
    let mut tail = (n..keep.len()).rev().filter(|&i| keep[i]);
    let mut order = Vec::with_capacity(n);
    for (i, &k) in keep[..n].iter().enumerate() {
        order.extend(if k { Some(i) } else { tail.next() });
    }
    order
}

/// A caller's per-row items (`items[i]` for batch row `i`) split as a batch
/// that kept the rows `order` (from [`fill_from_the_end`]): the kept ones in
/// the new row order, and the dropped ones in their old order.
pub fn regroup_rows<T>(items: Vec<T>, order: &[usize]) -> (Vec<T>, Vec<T>) {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let kept: Vec<T> = order
        .iter()
        .filter_map(|&i| slots.get_mut(i)?.take())
        .collect();
    debug_assert_eq!(kept.len(), order.len(), "an order names each item once");
    (kept, slots.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Departures below the new count take the last kept rows, every row
    /// moving down or staying; the caller's items follow the same order.
    #[test]
    fn dropped_rows_are_filled_from_the_end() {
        let cases: [(&[bool], &[usize]); 6] = [
            (&[true, false, true, true], &[0, 3, 2]),
            (&[false, true], &[1]),
            (&[true, true, false], &[0, 1]),
            (&[false, false, true, true, false, true], &[5, 3, 2]),
            (&[true, true], &[0, 1]),
            (&[false, false], &[]),
        ];
        for (keep, want) in cases {
            let order = fill_from_the_end(keep);
            assert_eq!(order, want, "{keep:?}");
            assert!(order.iter().enumerate().all(|(i, &k)| k >= i && keep[k]));
            let items: Vec<usize> = (0..keep.len()).map(|i| 10 * i).collect();
            let (kept, gone) = regroup_rows(items, &order);
            assert_eq!(kept, order.iter().map(|&i| 10 * i).collect::<Vec<_>>());
            let dropped: Vec<usize> = (0..keep.len())
                .filter(|&i| !keep[i])
                .map(|i| 10 * i)
                .collect();
            assert_eq!(gone, dropped, "{keep:?}");
        }
    }
}
