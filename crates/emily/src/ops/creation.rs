//! Creating tensors (from data, constants, ranges, seeded random numbers) and
//! reading their data back.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::Op;
use crate::error::{dtype_err, invalid, Error, Result};
use crate::shape::{checked_bytes, checked_numel};
use crate::{Array, DType, Device, Element, Tensor};

/// `shape`'s element count of f64 samples drawn by `sample` into a host
/// vector; an error (not an abort) when the shape is too large or the memory
/// is refused.
fn host_samples(
    op: &'static str,
    shape: &[usize],
    sample: impl FnMut(usize) -> f64,
) -> Result<Vec<f64>> {
    let bytes = checked_bytes(op, shape, DType::F64)?;
    let n = bytes / DType::F64.size_in_bytes();
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory { bytes })?;
    v.extend((0..n).map(sample));
    Ok(v)
}

impl Tensor {
    /// A tensor holding a copy of `data` with `shape`.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        if data.len() != checked_numel("from_slice", shape)? {
            return Err(invalid(
                "from_slice",
                format!("{} elements cannot have shape {shape:?}", data.len()),
            ));
        }
        Ok(Tensor::from_array(
            Array::from_slice(data, shape)?,
            Device::Cpu,
        ))
    }

    /// A tensor taking `data` with `shape`.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(&data, shape)
    }

    /// A tensor from raw little-endian bytes of `dtype`.
    pub fn from_bytes(bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
        Ok(Tensor::from_array(
            Array::from_bytes(bytes, shape, dtype)?,
            Device::Cpu,
        ))
    }

    /// A tensor whose every element is `value` (lazy: no buffer until eval).
    /// An error when the shape is too large to address.
    pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::from_op(Op::Full { value }, vec![], shape.to_vec(), dtype, device)
    }

    /// Zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype, Device::Cpu)
    }

    /// Ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype, Device::Cpu)
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar(value: f64, dtype: DType, device: Device) -> Tensor {
        Tensor::full(&[], value, dtype, device).expect("a scalar always has a valid shape")
    }

    /// Each element is its index along `axis`.
    pub fn iota(shape: &[usize], axis: usize, dtype: DType) -> Result<Tensor> {
        if axis >= shape.len() {
            return Err(invalid(
                "iota",
                format!("axis {axis} out of range for {shape:?}"),
            ));
        }
        Tensor::from_op(
            Op::Iota { axis },
            vec![],
            shape.to_vec(),
            dtype,
            Device::Cpu,
        )
    }

    /// `[0, 1, …, n-1]`.
    pub fn arange(n: usize, dtype: DType) -> Result<Tensor> {
        Tensor::iota(&[n], 0, dtype)
    }

    /// Seeded standard-normal samples scaled to `mean`/`std` (deterministic for a seed).
    pub fn randn(shape: &[usize], mean: f64, std: f64, seed: u64, dtype: DType) -> Result<Tensor> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let normal = |_| {
            mean + std * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        };
        Tensor::from_slice(&host_samples("randn", shape, normal)?, shape)?.cast(dtype)
    }

    /// Seeded uniform samples in `[low, high)`.
    pub fn rand_uniform(
        shape: &[usize],
        low: f64,
        high: f64,
        seed: u64,
        dtype: DType,
    ) -> Result<Tensor> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let uniform = |_| rng.gen_range(low..high);
        Tensor::from_slice(&host_samples("rand_uniform", shape, uniform)?, shape)?.cast(dtype)
    }

    /// The elements in row-major order (evaluates). `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(dtype_err(
                "to_vec",
                self.dtype(),
                format!(", requested {} (cast first)", T::DTYPE),
            ));
        }
        Ok(self.array()?.as_slice::<T>().to_vec())
    }

    /// The elements converted to f64 (any dtype; evaluates).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.cast(DType::F64)?.to_vec::<f64>()
    }

    /// The single element of a one-element tensor.
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(invalid(
                "to_scalar",
                format!("tensor of shape {:?} is not a scalar", self.shape()),
            ));
        }
        Ok(self.to_vec::<T>()?[0])
    }
}
