//! Quantized formats and kernels against independent float64 readings of
//! random blocks, on every kernel implementation this CPU has.

mod activation;
mod blocks;
mod gemm;
mod gemm_q8;
mod gemv;
mod product;
mod reference;
