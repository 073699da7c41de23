//! Data movement on the device: every layout op is one strided copy of raw
//! element bits (permute, broadcast, slice, concat, pad); gather, slice
//! update, scatter-add and the uniform generator have kernels of their own.
//! Kernels that find a bad index report it through the device's error word
//! (an error at the next read back).

use std::sync::Arc;

use super::codegen::MAX_RANK;
use super::context::{arg, Gpu};
use super::elementwise::{convert, fill};
use super::sources::{bits_type, ctype, Kernel, LAYOUT};
use super::{alloc, ptr};
use crate::error::{invalid, Error, Result};
use crate::shape::{collapse_dims, contiguous_strides, numel};
use crate::{Array, DType};

const BLOCK: u32 = 256;

fn copy_kernel(dtype: DType) -> Kernel {
    let bits = bits_type(dtype);
    Kernel::new(&LAYOUT, "DEFINE_COPY", format!("copy_{bits}"), &[bits])
}

/// Copies the `shape` elements at `src + src_off + idx·src_st` to
/// `dst + dst_off + idx·dst_st` (element units).
#[allow(clippy::too_many_arguments)]
fn copy(
    gpu: &Arc<Gpu>,
    op: &'static str,
    dtype: DType,
    dst: u64,
    dst_off: usize,
    dst_st: &[usize],
    src: u64,
    src_off: usize,
    src_st: &[usize],
    shape: &[usize],
) -> Result<()> {
    let n = numel(shape);
    if n == 0 {
        return Ok(());
    }
    let (cshape, cst) = collapse_dims(shape, &[src_st.to_vec(), dst_st.to_vec()]);
    if cshape.len() > MAX_RANK {
        return Err(Error::Backend {
            op,
            device: gpu.device(),
            msg: format!("a copy over {} axes (at most {MAX_RANK})", cshape.len()),
        });
    }
    // struct StridedCopy { int rank; i64 n, src_off, dst_off, shape[8], src_st[8], dst_st[8]; }
    let mut p = [0i64; 4 + 3 * MAX_RANK];
    p[0] = cshape.len() as i64;
    p[1] = n as i64;
    p[2] = src_off as i64;
    p[3] = dst_off as i64;
    for d in 0..cshape.len() {
        p[4 + d] = cshape[d] as i64;
        p[4 + MAX_RANK + d] = cst[0][d] as i64;
        p[4 + 2 * MAX_RANK + d] = cst[1][d] as i64;
    }
    let f = gpu.function(op, &copy_kernel(dtype))?;
    gpu.launch_over(
        op,
        &f,
        n,
        BLOCK,
        &mut [arg(&dst), arg(&src), p.as_ptr() as *mut std::ffi::c_void],
    )
}

/// A contiguous copy of `x` read through `src_st` from `src_off`.
fn gather_view(
    gpu: &Arc<Gpu>,
    op: &'static str,
    x: &Array,
    src_off: usize,
    src_st: &[usize],
    shape: &[usize],
) -> Result<Array> {
    let (out, o) = alloc(gpu, shape, x.dtype())?;
    let xs = ptr(op, x)?;
    copy(
        gpu,
        op,
        x.dtype(),
        o,
        0,
        &contiguous_strides(shape),
        xs,
        src_off,
        src_st,
        shape,
    )?;
    Ok(out)
}

pub(crate) fn permute(gpu: &Arc<Gpu>, x: &Array, perm: &[usize], shape: &[usize]) -> Result<Array> {
    let st = contiguous_strides(x.shape());
    let src: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    gather_view(gpu, "permute", x, 0, &src, shape)
}

pub(crate) fn broadcast(gpu: &Arc<Gpu>, x: &Array, shape: &[usize]) -> Result<Array> {
    let src = crate::shape::broadcast_strides(x.shape(), shape);
    gather_view(gpu, "broadcast", x, 0, &src, shape)
}

pub(crate) fn slice(
    gpu: &Arc<Gpu>,
    x: &Array,
    starts: &[usize],
    steps: &[usize],
    shape: &[usize],
) -> Result<Array> {
    let st = contiguous_strides(x.shape());
    let off = starts.iter().zip(&st).map(|(a, s)| a * s).sum();
    let src: Vec<usize> = st.iter().zip(steps).map(|(s, k)| s * k).collect();
    gather_view(gpu, "slice", x, off, &src, shape)
}

pub(crate) fn concat(
    gpu: &Arc<Gpu>,
    inputs: &[Array],
    axis: usize,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let (out, o) = alloc(gpu, shape, dtype)?;
    let ost = contiguous_strides(shape);
    let mut at = 0usize;
    for a in inputs {
        let src = contiguous_strides(a.shape());
        copy(
            gpu,
            "concat",
            dtype,
            o,
            at * ost[axis],
            &ost,
            ptr("concat", a)?,
            0,
            &src,
            a.shape(),
        )?;
        at += a.shape()[axis];
    }
    Ok(out)
}

pub(crate) fn pad(
    gpu: &Arc<Gpu>,
    x: &Array,
    pads: &[(usize, usize)],
    value: f64,
    shape: &[usize],
) -> Result<Array> {
    let (out, o) = alloc(gpu, shape, x.dtype())?;
    fill(gpu, o, numel(shape), value, x.dtype())?;
    let ost = contiguous_strides(shape);
    let off = pads.iter().zip(&ost).map(|((b, _), s)| b * s).sum();
    let src = contiguous_strides(x.shape());
    copy(
        gpu,
        "pad",
        x.dtype(),
        o,
        off,
        &ost,
        ptr("pad", x)?,
        0,
        &src,
        x.shape(),
    )?;
    Ok(out)
}

/// (outer, dim, inner) of `shape` around `axis`.
fn split(shape: &[usize], axis: usize) -> (i64, i64, i64) {
    (
        numel(&shape[..axis]) as i64,
        shape[axis] as i64,
        numel(&shape[axis + 1..]) as i64,
    )
}

fn index_ctype(op: &'static str, d: DType) -> Result<&'static str> {
    match d {
        DType::I32 | DType::I64 | DType::U8 => Ok(ctype(d)),
        _ => Err(invalid(op, format!("indices must be integers, got {d}"))),
    }
}

pub(crate) fn gather(
    gpu: &Arc<Gpu>,
    x: &Array,
    idx: &Array,
    axis: usize,
    shape: &[usize],
) -> Result<Array> {
    let (outer, dim, inner) = split(x.shape(), axis);
    let nidx = idx.numel() as i64;
    let bits = bits_type(x.dtype());
    let ic = index_ctype("gather", idx.dtype())?;
    let k = Kernel::new(
        &LAYOUT,
        "DEFINE_GATHER",
        format!("gather_{bits}_{ic}"),
        &[bits, ic],
    );
    let f = gpu.function("gather", &k)?;
    let (out, o) = alloc(gpu, shape, x.dtype())?;
    let (xp, ip) = (ptr("gather", x)?, ptr("gather", idx)?);
    let n = numel(shape);
    gpu.launch_over(
        "gather",
        &f,
        n,
        BLOCK,
        &mut [
            arg(&o),
            arg(&xp),
            arg(&ip),
            arg(&outer),
            arg(&dim),
            arg(&inner),
            arg(&nidx),
            arg(&gpu.err_flag),
        ],
    )?;
    Ok(out)
}

pub(crate) fn slice_update(
    gpu: &Arc<Gpu>,
    target: Array,
    update: &Array,
    offset: &Array,
    axis: usize,
) -> Result<Array> {
    let shape = target.shape().to_vec();
    let dtype = target.dtype();
    // Written in place when nobody else holds the target (a KV cache).
    let out = match target.donate(&shape, dtype) {
        Ok(t) => t,
        Err(t) => {
            let src = contiguous_strides(&shape);
            gather_view(gpu, "slice_update", &t, 0, &src, &shape)?
        }
    };
    let (outer, dim, inner) = split(&shape, axis);
    let len = update.shape()[axis] as i64;
    let bits = bits_type(dtype);
    let ic = index_ctype("slice_update", offset.dtype())?;
    let k = Kernel::new(
        &LAYOUT,
        "DEFINE_SLICE_UPDATE",
        format!("slice_update_{bits}_{ic}"),
        &[bits, ic],
    );
    let f = gpu.function("slice_update", &k)?;
    let (tp, up, op) = (
        ptr("slice_update", &out)?,
        ptr("slice_update", update)?,
        ptr("slice_update", offset)?,
    );
    let n = update.numel();
    gpu.launch_over(
        "slice_update",
        &f,
        n,
        BLOCK,
        &mut [
            arg(&tp),
            arg(&up),
            arg(&op),
            arg(&outer),
            arg(&dim),
            arg(&inner),
            arg(&len),
            arg(&gpu.err_flag),
        ],
    )?;
    Ok(out)
}

/// The accumulation dtype of scatter-add (f32 for f32 and half data, f64
/// for f64 and integers, rounded back once at the end as the reference does).
fn scatter_acc(d: DType) -> DType {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => DType::F32,
        _ => DType::F64,
    }
}

pub(crate) fn scatter_add(
    gpu: &Arc<Gpu>,
    target: &Array,
    idx: &Array,
    updates: &Array,
    axis: usize,
) -> Result<Array> {
    let dtype = target.dtype();
    let acc = scatter_acc(dtype);
    let t = convert(gpu, target, acc)?;
    // A private copy to accumulate into.
    let t = if t.buffer_id() == target.buffer_id() {
        let src = contiguous_strides(t.shape());
        gather_view(gpu, "scatter_add", &t, 0, &src, t.shape())?
    } else {
        t
    };
    let u = convert(gpu, updates, acc)?;
    let (outer, dim, inner) = split(t.shape(), axis);
    let nidx = idx.numel() as i64;
    let ic = index_ctype("scatter_add", idx.dtype())?;
    let ac = ctype(acc);
    let k = Kernel::new(
        &LAYOUT,
        "DEFINE_SCATTER_ADD",
        format!("scatter_add_{ac}_{ic}"),
        &[ac, ic],
    );
    let f = gpu.function("scatter_add", &k)?;
    let (tp, ip, upp) = (
        ptr("scatter_add", &t)?,
        ptr("scatter_add", idx)?,
        ptr("scatter_add", &u)?,
    );
    let n = (outer * inner) as usize;
    gpu.launch_over(
        "scatter_add",
        &f,
        n,
        BLOCK,
        &mut [
            arg(&tp),
            arg(&ip),
            arg(&upp),
            arg(&outer),
            arg(&dim),
            arg(&inner),
            arg(&nidx),
            arg(&gpu.err_flag),
        ],
    )?;
    convert(gpu, &t, dtype)
}

pub(crate) fn random_uniform(
    gpu: &Arc<Gpu>,
    key: &Array,
    stream: u64,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let code: i32 = match dtype {
        DType::F32 => 0,
        DType::F64 => 1,
        DType::F16 => 2,
        DType::BF16 => 3,
        d => return Err(invalid("random_uniform", format!("not a float dtype: {d}"))),
    };
    let kc = index_ctype("random_uniform", key.dtype())?;
    let t = ctype(dtype);
    let k = Kernel::new(
        &LAYOUT,
        "DEFINE_RANDOM",
        format!("random_{}_{kc}", dtype.name()),
        &[t, kc],
    );
    let f = gpu.function("random_uniform", &k)?;
    let (out, o) = alloc(gpu, shape, dtype)?;
    let kp = ptr("random_uniform", key)?;
    let n = numel(shape) as i64;
    gpu.launch_over(
        "random_uniform",
        &f,
        n as usize,
        BLOCK,
        &mut [arg(&o), arg(&kp), arg(&stream), arg(&n), arg(&code)],
    )?;
    Ok(out)
}

/// Every layout kernel instantiation the backend can launch.
pub(crate) fn catalogue(push: &mut dyn FnMut(Kernel)) {
    super::elementwise::catalogue(push);
    for bits in ["u8", "u16", "u32", "u64"] {
        push(Kernel::new(
            &LAYOUT,
            "DEFINE_COPY",
            format!("copy_{bits}"),
            &[bits],
        ));
        for ic in ["int", "i64", "u8"] {
            push(Kernel::new(
                &LAYOUT,
                "DEFINE_GATHER",
                format!("gather_{bits}_{ic}"),
                &[bits, ic],
            ));
            push(Kernel::new(
                &LAYOUT,
                "DEFINE_SLICE_UPDATE",
                format!("slice_update_{bits}_{ic}"),
                &[bits, ic],
            ));
        }
    }
    for ac in ["float", "double"] {
        for ic in ["int", "i64", "u8"] {
            push(Kernel::new(
                &LAYOUT,
                "DEFINE_SCATTER_ADD",
                format!("scatter_add_{ac}_{ic}"),
                &[ac, ic],
            ));
        }
    }
    for d in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        for kc in ["int", "i64"] {
            push(Kernel::new(
                &LAYOUT,
                "DEFINE_RANDOM",
                format!("random_{}_{kc}", d.name()),
                &[ctype(d), kc],
            ));
        }
    }
}
