//! Tests of the elementwise, reduction, softmax and cast kernels against `f64`
//! references on seeded random inputs (one test binary for all of them).

mod binary;
mod cast;
mod common;
mod math;
mod reduce;
mod softmax;
mod unary;
