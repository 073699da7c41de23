//! Zeros from the CPU backend's `full(+0.0)`: a fresh mapping is left
//! unwritten, a reused buffer is filled. (Its own test binary: the large
//! buffers it holds would disturb other tests' process-wide memory counts.)

use emily::{DType, Tensor};

/// Zeros are zero in every element type whether their buffer is a fresh
/// mapping (left unwritten) or one a dirty tensor gave back to the pool;
/// `full(-0.0)` keeps its sign bit (it is not the all-zero pattern).
#[test]
fn zeros_read_zero_on_fresh_and_reused_buffers() {
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::I32, DType::U8] {
        for shape in [&[3usize, 5][..], &[300, 1024], &[1024, 2048]] {
            for _ in 0..2 {
                let z = Tensor::zeros(shape, dtype)
                    .unwrap()
                    .cast(DType::F64)
                    .unwrap();
                assert!(z.to_vec::<f64>().unwrap().iter().all(|&v| v == 0.0));
                // A dirty buffer of the same size back to the pool.
                let ones = Tensor::full(shape, 1.0, dtype, emily::Device::Cpu).unwrap();
                drop(ones.eval().unwrap());
            }
        }
    }
    let neg = Tensor::full(&[300, 1024], -0.0, DType::F32, emily::Device::Cpu).unwrap();
    assert!(neg
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.to_bits() == 0x8000_0000));
}
