//! Creating tensors (from data, constants, ranges, seeded random numbers),
//! moving them between devices and reading their data back.
//!
//! Every constructor has a form without a device (the CPU) and an `_on` form
//! taking one; data is imported by the device's backend
//! ([`crate::backend::Backend::upload`]) and read back through the backend
//! that owns it.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::Op;
use crate::error::{dtype_err, invalid, Error, Result};
use crate::shape::{checked_bytes, checked_numel};
use crate::{backend, Array, DType, Device, Element, Tensor};

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
        Tensor::from_slice_on(data, shape, Device::Cpu)
    }

    /// A tensor on `device` holding a copy of `data` with `shape`.
    pub fn from_slice_on<T: Element>(
        data: &[T],
        shape: &[usize],
        device: Device,
    ) -> Result<Tensor> {
        if data.len() != checked_numel("from_slice", shape)? {
            return Err(invalid(
                "from_slice",
                format!("{} elements cannot have shape {shape:?}", data.len()),
            ));
        }
        Tensor::from_bytes_on(bytemuck::cast_slice(data), shape, T::DTYPE, device)
    }

    /// A tensor taking `data` with `shape`.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(&data, shape)
    }

    /// A tensor on `device` taking `data` with `shape`.
    pub fn from_vec_on<T: Element>(
        data: Vec<T>,
        shape: &[usize],
        device: Device,
    ) -> Result<Tensor> {
        Tensor::from_slice_on(&data, shape, device)
    }

    /// A tensor from raw little-endian bytes of `dtype`.
    pub fn from_bytes(bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::from_bytes_on(bytes, shape, dtype, Device::Cpu)
    }

    /// A tensor on `device` from raw little-endian bytes of `dtype`.
    pub fn from_bytes_on(
        bytes: &[u8],
        shape: &[usize],
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        Ok(Tensor::from_array(
            backend::get(device).upload(bytes, shape, dtype)?,
        ))
    }

    /// A CPU tensor reading `owner`'s bytes at `offset` in place (memory-mapped
    /// weights: no copy unless the bytes are misaligned for `dtype`).
    pub fn from_external(
        owner: crate::array::ExternalBytes,
        offset: usize,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        Ok(Tensor::from_array(Array::from_external(
            owner, offset, shape, dtype,
        )?))
    }

    /// A tensor whose every element is `value` (lazy: no buffer until eval).
    /// An error when the shape is too large to address.
    pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::from_op(Op::Full { value }, vec![], shape.to_vec(), dtype, device)
    }

    /// Zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::zeros_on(shape, dtype, Device::Cpu)
    }

    /// Zeros on `device`.
    pub fn zeros_on(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype, device)
    }

    /// Ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::ones_on(shape, dtype, Device::Cpu)
    }

    /// Ones on `device`.
    pub fn ones_on(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype, device)
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar(value: f64, dtype: DType, device: Device) -> Tensor {
        Tensor::full(&[], value, dtype, device).expect("a scalar always has a valid shape")
    }

    /// Each element is its index along `axis`.
    pub fn iota(shape: &[usize], axis: usize, dtype: DType) -> Result<Tensor> {
        Tensor::iota_on(shape, axis, dtype, Device::Cpu)
    }

    /// Each element is its index along `axis`, on `device`.
    pub fn iota_on(shape: &[usize], axis: usize, dtype: DType, device: Device) -> Result<Tensor> {
        if axis >= shape.len() {
            return Err(invalid(
                "iota",
                format!("axis {axis} out of range for {shape:?}"),
            ));
        }
        Tensor::from_op(Op::Iota { axis }, vec![], shape.to_vec(), dtype, device)
    }

    /// `[0, 1, …, n-1]`.
    pub fn arange(n: usize, dtype: DType) -> Result<Tensor> {
        Tensor::arange_on(n, dtype, Device::Cpu)
    }

    /// `[0, 1, …, n-1]` on `device`.
    pub fn arange_on(n: usize, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::from_op(Op::Iota { axis: 0 }, vec![], vec![n], dtype, device)
    }

    /// Seeded standard-normal samples scaled to `mean`/`std` (deterministic for a seed).
    pub fn randn(shape: &[usize], mean: f64, std: f64, seed: u64, dtype: DType) -> Result<Tensor> {
        Tensor::randn_on(shape, mean, std, seed, dtype, Device::Cpu)
    }

    /// [`Tensor::randn`] on `device` (the same values on every device).
    pub fn randn_on(
        shape: &[usize],
        mean: f64,
        std: f64,
        seed: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let normal = |_| {
            mean + std * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        };
        Tensor::from_slice_on(&host_samples("randn", shape, normal)?, shape, device)?.cast(dtype)
    }

    /// Seeded uniform samples in `[low, high)`.
    pub fn rand_uniform(
        shape: &[usize],
        low: f64,
        high: f64,
        seed: u64,
        dtype: DType,
    ) -> Result<Tensor> {
        Tensor::rand_uniform_on(shape, low, high, seed, dtype, Device::Cpu)
    }

    /// [`Tensor::rand_uniform`] on `device` (the same values on every device).
    pub fn rand_uniform_on(
        shape: &[usize],
        low: f64,
        high: f64,
        seed: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let uniform = |_| rng.gen_range(low..high);
        let samples = host_samples("rand_uniform", shape, uniform)?;
        Tensor::from_slice_on(&samples, shape, device)?.cast(dtype)
    }

    /// This tensor on `device`: itself when it is already there, otherwise
    /// evaluated and copied (read back through its backend, imported by the
    /// target's). Eager, so not for use inside a function being compiled.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let array = self.array()?;
        let bytes = array.to_host_bytes()?;
        Tensor::from_bytes_on(&bytes, self.shape(), self.dtype(), device)
    }

    /// The elements in row-major order (evaluates; reads through the owning
    /// backend). `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(dtype_err(
                "to_vec",
                self.dtype(),
                format!(", requested {} (cast first)", T::DTYPE),
            ));
        }
        let array = self.array()?;
        let bytes = array.to_host_bytes()?;
        Ok(match bytemuck::try_cast_slice::<u8, T>(&bytes) {
            Ok(elements) => elements.to_vec(),
            Err(_) => {
                // A backend's host copy need not be aligned for `T`.
                let mut out = vec![T::zeroed(); self.numel()];
                bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&bytes);
                out
            }
        })
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
