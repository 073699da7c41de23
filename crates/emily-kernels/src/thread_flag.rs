//! A per-thread switch set for the length of one call.

use std::cell::Cell;
use std::thread::LocalKey;

/// Runs `f` with the thread-local `flag` set to `value`, restoring its
/// previous value afterwards — also when `f` panics, so a pool thread that
/// goes on to other work does not keep the setting.
pub(crate) fn with_flag<T>(
    flag: &'static LocalKey<Cell<bool>>,
    value: bool,
    f: impl FnOnce() -> T,
) -> T {
    struct Restore(&'static LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|c| c.replace(value)));
    f()
}
