//! Whether quantized products may quantize their activations (the default)
//! or must keep them in f32, per thread.
//!
//! With 8-bit activations (as llama.cpp's CPU path) a product is within the
//! activations' rounding of the exact one, which moves a language model's
//! NLL by ~1e-2 nats; scoring against f64 references needs the exact product
//! with the dequantized weights, which [`with_exact_products`] asks for.

use std::cell::Cell;

thread_local! {
    static EXACT: Cell<bool> = const { Cell::new(false) };
}

/// Whether quantized products on this thread keep their activations in f32.
pub fn exact_products() -> bool {
    EXACT.with(Cell::get)
}

/// Runs `f` with [`exact_products`] set to `exact` on this thread (restored
/// afterwards, also on panic). The choice is made where a product starts, so
/// code that hands a forward pass to another thread passes it on.
pub fn with_exact_products<T>(exact: bool, f: impl FnOnce() -> T) -> T {
    crate::thread_flag::with_flag(&EXACT, exact, f)
}
