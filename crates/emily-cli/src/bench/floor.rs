//! The machine's floors: copy bandwidth with every thread.

use emily_kernels::parallel;
use rayon::prelude::*;

use super::timer::median_secs;

/// Measured copy bandwidth in GB/s (bytes read + bytes written per second)
/// over 256 MiB, split across the pool's threads.
pub fn copy_bandwidth_gbs() -> f64 {
    let n = 64 << 20; // f32 elements = 256 MiB
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let chunk = n / (parallel::num_threads() * 4);
    let secs = median_secs(1.0, || {
        parallel::pool().install(|| {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
        })
    });
    2.0 * (n * 4) as f64 / secs / 1e9
}

/// Measured read bandwidth in GB/s (bytes read per second) over 256 MiB,
/// summed in chunks split across the pool's threads: the floor of a
/// bandwidth-bound kernel such as a decoder step's GEMV.
pub fn read_bandwidth_gbs() -> f64 {
    let n = 64 << 20; // f32 elements = 256 MiB
    let src: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let chunk = n / (parallel::num_threads() * 4);
    let mut total = 0.0f32;
    let secs = median_secs(1.0, || {
        total += parallel::pool().install(|| {
            src.par_chunks(chunk)
                .map(|c| {
                    // Eight independent sums keep the loads, not the adds, the limit.
                    let mut acc = [0f32; 8];
                    for block in c.chunks_exact(8) {
                        for (a, v) in acc.iter_mut().zip(block) {
                            *a += v;
                        }
                    }
                    acc.iter().sum::<f32>()
                })
                .sum::<f32>()
        })
    });
    std::hint::black_box(total);
    (n * 4) as f64 / secs / 1e9
}

/// `c = a · b` for row-major f32 matrices, calling the `gemm` crate directly
/// on the pool's threads (the reference our matmul is compared with).
pub fn gemm_f32(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let threads = parallel::num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices hold the row-major matrices the strides describe.
    parallel::pool().install(|| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    });
}

/// Measured f32 GEMM throughput at 1024³ through the `gemm` crate (GFLOP/s).
pub fn gemm_gflops() -> f64 {
    let n = 1024;
    let a = vec![1.0f32; n * n];
    let b = vec![1.0f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let secs = median_secs(1.0, || gemm_f32(n, n, n, &a, &b, &mut c));
    2.0 * (n * n * n) as f64 / secs / 1e9
}
