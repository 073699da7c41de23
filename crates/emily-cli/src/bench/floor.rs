//! The machine's floors: copy bandwidth with every thread.

use emily_kernels::huge_pages::HugePageSlice;
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

/// Independent read-bandwidth samples [`read_bandwidth`] takes.
const READ_SAMPLES: usize = 5;

/// Streaming read bandwidth: the median of [`READ_SAMPLES`] samples and
/// their spread, in GB/s (bytes read per second).
#[derive(Clone, Copy, Debug)]
pub struct ReadBandwidth {
    /// The median sample: the floor's rate.
    pub median: f64,
    /// The slowest sample.
    pub min: f64,
    /// The fastest sample.
    pub max: f64,
}

/// Measured read bandwidth in GB/s (bytes read per second) over 256 MiB,
/// summed in chunks split across the pool's threads: the floor of a
/// bandwidth-bound kernel such as a decoder step's GEMV. The buffer sits on
/// transparent huge pages, as the int8 decoder weights do (on 4 KiB pages
/// the read is slower, and a floor taken there would flatter a step that
/// streams huge pages). The median of
/// [`READ_SAMPLES`] samples (each the median of 7 timed passes), so one
/// sample taken while a neighbour left the memory bus idle (a 2-thread
/// sample once read twice the others) cannot set the floor.
pub fn read_bandwidth() -> ReadBandwidth {
    let n = 64 << 20; // f32 elements = 256 MiB
                      // SAFETY: zero bytes are a valid f32.
    let mut src = unsafe { HugePageSlice::<f32>::zeroed(n) };
    src.iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i % 7) as f32);
    let chunk = n / (parallel::num_threads() * 4);
    let mut total = 0.0f32;
    let mut samples: Vec<f64> = (0..READ_SAMPLES)
        .map(|_| {
            let secs = median_secs(0.3, || {
                total += parallel::pool()
                    .install(|| src.par_chunks(chunk).map(sum_streaming).sum::<f32>())
            });
            (n * 4) as f64 / secs / 1e9
        })
        .collect();
    std::hint::black_box(total);
    samples.sort_by(f64::total_cmp);
    ReadBandwidth {
        median: samples[READ_SAMPLES / 2],
        min: samples[0],
        max: samples[READ_SAMPLES - 1],
    }
}

/// The median read bandwidth of [`read_bandwidth`] in GB/s.
pub fn read_bandwidth_gbs() -> f64 {
    read_bandwidth().median
}

/// The sum of `c`, with 32 independent partial sums so that the loads, not
/// the chains of adds, are the limit even on one core with 128-bit adds.
fn sum_streaming(c: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for block in c.chunks_exact(32) {
        for (a, v) in acc.iter_mut().zip(block) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>()
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
