//! The fused transformer kernels on the device: RMSNorm / LayerNorm (one
//! block per row, 16-byte vector loads, warp-shuffle reductions), RoPE, and
//! attention (flash attention on tensor cores for f16 / bf16 prefill, a
//! CUDA-core kernel otherwise, split over the keys for decoding).

use std::sync::Arc;

use super::context::{arg, Gpu};
use super::elementwise::convert;
use super::sources::{ctype, Kernel, NORM, ROPE, SDPA_MMA, SDPA_SIMT};
use super::{alloc, ptr};
use crate::error::{invalid, Result};
use crate::fast::{FastOp, MaskKind, PositionsKind};
use crate::shape::numel;
use crate::{Array, DType};

/// Thread-vector counts the vector norm kernel is instantiated for.
const NORM_VPT: [usize; 4] = [1, 2, 4, 8];
/// Head sizes of the tensor-core attention kernel.
const MMA_DIMS: [usize; 5] = [64, 80, 96, 128, 256];

/// Whether a fused kernel handles `op` for these inputs.
pub(crate) fn supports(
    op: &FastOp,
    inputs: &[(&[usize], DType)],
) -> std::result::Result<(), String> {
    let d0 = inputs[0].1;
    if !matches!(d0, DType::F32 | DType::F16 | DType::BF16) {
        return Err(format!("no fused CUDA {} kernel for {d0}", op.name()));
    }
    match op {
        FastOp::RmsNorm { .. } | FastOp::LayerNorm { .. } => {
            if inputs.iter().any(|(_, d)| *d != d0) {
                return Err("norm weights of another dtype".into());
            }
        }
        FastOp::Sdpa { .. } => {
            if inputs[1].1 != d0 {
                return Err(format!("{} keys/values with {d0} queries", inputs[1].1));
            }
            let (d, dv) = (inputs[0].0[3], inputs[2].0[3]);
            if d > 256 || dv > 256 {
                return Err(format!("head size {d}/{dv} above 256"));
            }
        }
        FastOp::Rope { .. } => {}
        FastOp::RopeHeads { .. }
        | FastOp::SdpaSeqMajor { .. }
        | FastOp::Conv1dChannelsLast { .. }
        | FastOp::SumSquares
        | FastOp::SdpaCausalGrad { .. }
        | FastOp::RmsNormGrad { .. }
        | FastOp::SoftmaxLogSumExp { .. } => {
            return Err(format!("no fused CUDA {}: it runs composed", op.name()))
        }
    }
    Ok(())
}

pub(crate) fn execute(
    gpu: &Arc<Gpu>,
    op: &FastOp,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    match *op {
        FastOp::RmsNorm { eps, has_weight } => norm(
            gpu,
            &inputs[0],
            has_weight.then(|| &inputs[1]),
            None,
            eps,
            0,
        ),
        FastOp::LayerNorm {
            eps,
            has_weight,
            has_bias,
        } => {
            let w = has_weight.then(|| &inputs[1]);
            let b = has_bias.then(|| &inputs[1 + has_weight as usize]);
            norm(gpu, &inputs[0], w, b, eps, 1)
        }
        FastOp::Rope { .. } => rope(gpu, op, inputs, shape, dtype),
        FastOp::Sdpa {
            scale,
            mask,
            has_sinks,
            ..
        } => sdpa(gpu, scale, mask, has_sinks, inputs, shape, dtype),
        FastOp::RopeHeads { .. }
        | FastOp::SdpaSeqMajor { .. }
        | FastOp::Conv1dChannelsLast { .. }
        | FastOp::SumSquares
        | FastOp::SdpaCausalGrad { .. }
        | FastOp::RmsNormGrad { .. }
        | FastOp::SoftmaxLogSumExp { .. } => Err(invalid(
            op.name(),
            "no CUDA kernel (supports_fast declines it)",
        )),
    }
}

fn norm_vec_kernel(d: DType, vpt: usize) -> Kernel {
    Kernel::new(
        &NORM,
        "DEFINE_NORM_VEC",
        format!("norm_vec_{}_{vpt}", d.name()),
        &[ctype(d), &vpt.to_string()],
    )
}

fn norm_scalar_kernel(d: DType) -> Kernel {
    Kernel::new(
        &NORM,
        "DEFINE_NORM_SCALAR",
        format!("norm_scalar_{}", d.name()),
        &[ctype(d)],
    )
}

fn norm(
    gpu: &Arc<Gpu>,
    x: &Array,
    w: Option<&Array>,
    b: Option<&Array>,
    eps: f32,
    mode: i32,
) -> Result<Array> {
    let dtype = x.dtype();
    let d = *x.shape().last().unwrap_or(&1);
    let rows = numel(x.shape()) / d.max(1);
    let (out, o) = alloc(gpu, x.shape(), dtype)?;
    let xp = ptr("norm", x)?;
    let wp = w.map(|w| ptr("norm", w)).transpose()?.unwrap_or(0);
    let bp = b.map(|b| ptr("norm", b)).transpose()?.unwrap_or(0);
    let per_vec = 16 / dtype.size_in_bytes();
    let grid = rows.min(gpu.sm_count as usize * 32).max(1) as u32;
    let rows64 = rows as i64;
    if d.is_multiple_of(per_vec) {
        let nvec = d / per_vec;
        let block = nvec.div_ceil(32).clamp(1, 8) * 32;
        let vpt = nvec.div_ceil(block);
        if let Some(&vpt) = NORM_VPT.iter().find(|&&v| v >= vpt) {
            let f = gpu.function("norm", &norm_vec_kernel(dtype, vpt))?;
            let d32 = d as i32;
            return gpu
                .launch(
                    "norm",
                    &f,
                    (grid, 1, 1),
                    block as u32,
                    0,
                    &mut [
                        arg(&o),
                        arg(&xp),
                        arg(&wp),
                        arg(&bp),
                        arg(&rows64),
                        arg(&d32),
                        arg(&eps),
                        arg(&mode),
                    ],
                )
                .map(|_| out);
        }
    }
    let f = gpu.function("norm", &norm_scalar_kernel(dtype))?;
    let d64 = d as i64;
    gpu.launch(
        "norm",
        &f,
        (grid, 1, 1),
        256,
        0,
        &mut [
            arg(&o),
            arg(&xp),
            arg(&wp),
            arg(&bp),
            arg(&rows64),
            arg(&d64),
            arg(&eps),
            arg(&mode),
        ],
    )?;
    Ok(out)
}

fn rope(
    gpu: &Arc<Gpu>,
    op: &FastOp,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let FastOp::Rope {
        dims,
        traditional,
        base,
        scale,
        positions,
        has_freqs,
    } = *op
    else {
        return Err(invalid("rope", "not a rope op"));
    };
    let r = shape.len();
    let (t, d) = (shape[r - 2], shape[r - 1]);
    let batch = numel(shape) / (t * d).max(1);
    let x = &inputs[0];
    let (pos_kind, offset, pos) = match positions {
        PositionsKind::Offset(o) => (0i32, o as i64, None),
        PositionsKind::OffsetTensor => (1, 0, Some(&inputs[1])),
        PositionsKind::PerToken => (2, 0, Some(&inputs[1])),
    };
    let pos_i64: i32 = pos.is_some_and(|p| p.dtype() == DType::I64) as i32;
    if pos.is_some_and(|p| !matches!(p.dtype(), DType::I32 | DType::I64)) {
        return Err(invalid("rope", "positions must be i32 or i64"));
    }
    let pp = pos.map(|p| ptr("rope", p)).transpose()?.unwrap_or(0);
    let freqs = if has_freqs {
        Some(convert(gpu, &inputs[inputs.len() - 1], DType::F64)?)
    } else {
        None
    };
    let fp = freqs
        .as_ref()
        .map(|f| ptr("rope", f))
        .transpose()?
        .unwrap_or(0);
    let k = Kernel::new(
        &ROPE,
        "DEFINE_ROPE",
        format!("rope_{}", dtype.name()),
        &[ctype(dtype)],
    );
    let f = gpu.function("rope", &k)?;
    let (out, o) = alloc(gpu, shape, dtype)?;
    let xp = ptr("rope", x)?;
    let v = [batch, t, d, dims].map(|v| v as i64);
    let trad = traditional as i32;
    let log_step = -2.0 * (base as f64).ln() / dims as f64;
    let scale = scale as f64;
    let items = dims / 2 + (d - dims);
    gpu.launch_over(
        "rope",
        &f,
        t * items,
        128,
        &mut [
            arg(&o),
            arg(&xp),
            arg(&v[0]),
            arg(&v[1]),
            arg(&v[2]),
            arg(&v[3]),
            arg(&trad),
            arg(&log_step),
            arg(&scale),
            arg(&pos_kind),
            arg(&offset),
            arg(&pp),
            arg(&pos_i64),
            arg(&fp),
            arg(&gpu.err_flag),
        ],
    )?;
    Ok(out)
}

/// `struct SdpaParams` of the kernels, as 14 words.
fn sdpa_params(
    dims: [usize; 7],
    window: i64,
    ms: [usize; 4],
    mask_kind: i32,
    splits: i32,
    scale: f32,
) -> [i64; 14] {
    let mut p = [0i64; 14];
    for (i, v) in dims.iter().enumerate() {
        p[i] = *v as i64;
    }
    p[7] = window;
    for (i, v) in ms.iter().enumerate() {
        p[8 + i] = *v as i64;
    }
    p[12] = (mask_kind as u32 as i64) | ((splits as u32 as i64) << 32);
    p[13] = scale.to_bits() as i64;
    p
}

fn simt_kernel(d: DType, dvpl: usize) -> Kernel {
    let c = if d == DType::F64 { "double" } else { "float" };
    Kernel::new(
        &SDPA_SIMT,
        "DEFINE_SDPA_SIMT",
        format!("sdpa_simt_{}_{dvpl}", d.name()),
        &[ctype(d), c, &dvpl.to_string()],
    )
}

fn combine_kernel(d: DType) -> Kernel {
    Kernel::new(
        &SDPA_SIMT,
        "DEFINE_SDPA_COMBINE",
        format!("sdpa_combine_{}", d.name()),
        &[ctype(d)],
    )
}

fn mma_kernel(d: DType, hd: usize) -> Kernel {
    let bn = mma_keys(hd);
    let bf = (d == DType::BF16) as i32;
    Kernel::new(
        &SDPA_MMA,
        "DEFINE_SDPA_MMA",
        format!("sdpa_mma_{}_{hd}_{bn}", d.name()),
        &[&hd.to_string(), &bn.to_string(), &bf.to_string()],
    )
}

fn mma_keys(hd: usize) -> usize {
    if hd > 128 {
        32
    } else {
        64
    }
}

#[allow(clippy::too_many_arguments)]
fn sdpa(
    gpu: &Arc<Gpu>,
    scale: f32,
    mask: MaskKind,
    has_sinks: bool,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let (b, hq, tq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (hkv, tk, dv) = (ks[1], ks[2], vs[3]);
    let g = hq / hkv.max(1);
    let full = [b, hq, tq, tk];
    let (mask_kind, window) = match mask {
        MaskKind::None => (0, -1),
        MaskKind::Causal => (1, -1),
        MaskKind::Additive => (2, -1),
        MaskKind::Boolean => (3, -1),
        MaskKind::CausalBand { window } => (4, window.map_or(-1, |w| w as i64)),
    };
    let extra = inputs.get(3).filter(|_| mask_kind >= 2);
    let mut ms = [0usize; 4];
    let mut mask_arr = None;
    if let Some(m) = extra.filter(|_| mask_kind == 2 || mask_kind == 3) {
        ms.copy_from_slice(&crate::shape::broadcast_strides(m.shape(), &full));
        mask_arr = Some(if mask_kind == 2 {
            convert(gpu, m, dtype)?
        } else {
            m.clone()
        });
    }
    let band = if mask_kind == 4 {
        Some(convert(gpu, &inputs[3], DType::I64)?)
    } else {
        None
    };
    let mp = mask_arr
        .as_ref()
        .map(|m| ptr("sdpa", m))
        .transpose()?
        .unwrap_or(0);
    let bp = band
        .as_ref()
        .map(|m| ptr("sdpa", m))
        .transpose()?
        .unwrap_or(0);
    let sinks = has_sinks.then(|| &inputs[inputs.len() - 1]);
    let sinks = sinks.map(|s| convert(gpu, s, dtype)).transpose()?;
    let sp = sinks
        .as_ref()
        .map(|s| ptr("sdpa", s))
        .transpose()?
        .unwrap_or(0);
    let (qp, kp, vp) = (ptr("sdpa", q)?, ptr("sdpa", k)?, ptr("sdpa", v)?);
    let (out, o) = alloc(gpu, shape, dtype)?;
    let dims = [b, hq, hkv, tq, tk, d, dv];

    // Tensor cores: half types, prefill-sized query blocks.
    let half = matches!(dtype, DType::F16 | DType::BF16);
    if half && d == dv && MMA_DIMS.contains(&d) && tq * g > 16 {
        let p = sdpa_params(dims, window, ms, mask_kind, 1, scale);
        let f = gpu.function("sdpa", &mma_kernel(dtype, d))?;
        let shared = ((64 + 2 * mma_keys(d)) * (d + 8) * 2) as u32;
        gpu.launch(
            "sdpa",
            &f,
            (tq.div_ceil(64) as u32, hq as u32, b as u32),
            128,
            shared,
            &mut [
                arg(&o),
                arg(&qp),
                arg(&kp),
                arg(&vp),
                arg(&mp),
                arg(&bp),
                arg(&sp),
                p.as_ptr() as *mut _,
            ],
        )?;
        return Ok(out);
    }

    let dvpl = [1usize, 2, 4, 8]
        .into_iter()
        .find(|&x| x * 32 >= dv)
        .unwrap_or(8);
    let csize = if dtype == DType::F64 { 8 } else { 4 };
    let shared = ((16 * (d + 1) + 32 * (d + 1) + 32 * dv) * csize) as u32;
    let f = gpu.function("sdpa", &simt_kernel(dtype, dvpl))?;
    // Decoding (g heads x tq queries of a kv head fit one block): each key is
    // read once per kv head and the keys are split across blocks, whose
    // partial states `sdpa_combine` merges. Prefill: 16 queries a block.
    let grouped = (g * tq <= 16) as i32;
    let splits = if grouped == 1 {
        let per = (2 * gpu.sm_count as usize).div_ceil((b * hkv).max(1));
        per.clamp(1, tk.div_ceil(64).max(1))
    } else {
        1
    };
    let p = sdpa_params(dims, window, ms, mask_kind, splits as i32, scale);
    let slots = b * hkv * 16 * splits;
    let ws = if grouped == 1 {
        Some(alloc(gpu, &[2 * slots + slots * dv], DType::F32)?)
    } else {
        None
    };
    let wsp = ws.as_ref().map_or(0, |w| w.1);
    let grid = if grouped == 1 {
        (splits as u32, (b * hkv) as u32, 1)
    } else {
        (tq.div_ceil(16) as u32, (b * hq) as u32, 1)
    };
    let pp = p.as_ptr() as *mut std::ffi::c_void;
    let mut args = [&o, &qp, &kp, &vp, &mp, &bp, &sp, &wsp].map(arg).to_vec();
    args.extend([pp, arg(&grouped)]);
    gpu.launch("sdpa", &f, grid, 512, shared, &mut args)?;
    if grouped == 1 {
        let c = gpu.function("sdpa", &combine_kernel(dtype))?;
        let rows = b * hkv * g * tq;
        let grid = (gpu.grid_for(rows * 32, 256), 1, 1);
        gpu.launch(
            "sdpa",
            &c,
            grid,
            256,
            0,
            &mut [arg(&o), arg(&wsp), arg(&sp), pp],
        )?;
    }
    Ok(out)
}

/// Every norm, rope and attention instantiation.
pub(crate) fn catalogue(push: &mut dyn FnMut(Kernel)) {
    for d in [DType::F32, DType::F16, DType::BF16] {
        for vpt in NORM_VPT {
            push(norm_vec_kernel(d, vpt));
        }
        push(norm_scalar_kernel(d));
        push(Kernel::new(
            &ROPE,
            "DEFINE_ROPE",
            format!("rope_{}", d.name()),
            &[ctype(d)],
        ));
        for dvpl in [1, 2, 4, 8] {
            push(simt_kernel(d, dvpl));
        }
        push(combine_kernel(d));
    }
    for d in [DType::F16, DType::BF16] {
        for hd in MMA_DIMS {
            push(mma_kernel(d, hd));
        }
    }
}
