//! A raw output pointer the pool's workers share.

/// A raw pointer the worker closures of one `parallel::for_each_range` call
/// share; each worker writes only its own disjoint range through it.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: only used for disjoint writes within one `for_each_range` call,
// which returns before the pointed-to buffer is touched again.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the `Send` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
