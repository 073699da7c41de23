//! Reductions and softmax on the device. A reduction over a block of
//! adjacent axes is an (outer, len, inner) fold: a warp per row when the axis
//! is innermost (a whole block per row for few long rows), a thread per
//! column otherwise; other axis sets are permuted to the end first.

use std::sync::Arc;

use super::context::{arg, Gpu};
use super::layout::permute;
use super::sources::{compute_type, ctype, Kernel, REDUCE};
use super::{alloc, ptr};
use crate::error::Result;
use crate::ops::Reduction;
use crate::shape::numel;
use crate::{Array, DType};

fn code(op: Reduction) -> &'static str {
    match op {
        Reduction::Sum | Reduction::Mean => "RED_SUM",
        Reduction::Max => "RED_MAX",
        Reduction::Min => "RED_MIN",
        Reduction::Prod => "RED_PROD",
        Reduction::ArgMax => "RED_ARGMAX",
        Reduction::ArgMin => "RED_ARGMIN",
        Reduction::LogSumExp => "RED_LSE",
    }
}

fn reduce_kernel(variant: &str, op: Reduction, t: DType, o: DType) -> Kernel {
    let c = compute_type(t);
    let mac = format!("DEFINE_REDUCE_{variant}");
    let name = format!(
        "reduce_{}_{}_{}_{}",
        variant.to_lowercase(),
        code(op).to_lowercase(),
        t.name(),
        o.name()
    );
    Kernel::new(&REDUCE, &mac, name, &[ctype(t), c, ctype(o), code(op)])
}

/// Reduces `x` over sorted `axes` to an array of `shape`/`dtype`.
pub(crate) fn reduce(
    gpu: &Arc<Gpu>,
    op: Reduction,
    x: &Array,
    axes: &[usize],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let s = x.shape();
    let block = axes.windows(2).all(|w| w[1] == w[0] + 1);
    let (outer, len, inner, src) = if axes.is_empty() {
        (numel(s), 1, 1, x.clone())
    } else if block {
        let (a, b) = (axes[0], axes[axes.len() - 1]);
        (
            numel(&s[..a]),
            numel(&s[a..=b]),
            numel(&s[b + 1..]),
            x.clone(),
        )
    } else {
        let mut perm: Vec<usize> = (0..s.len()).filter(|i| !axes.contains(i)).collect();
        perm.extend_from_slice(axes);
        let pshape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        let len = numel(&pshape[s.len() - axes.len()..]);
        let px = permute(gpu, x, &perm, &pshape)?;
        (numel(&pshape) / len.max(1), len, 1, px)
    };
    let t = src.dtype();
    let (out, o) = alloc(gpu, shape, dtype)?;
    let xp = ptr("reduce", &src)?;
    let scale = if op == Reduction::Mean {
        1.0 / len.max(1) as f64
    } else {
        1.0
    };
    let (sf, sd) = (scale as f32, scale);
    let sarg = if compute_type(t) == "float" {
        arg(&sf)
    } else {
        arg(&sd)
    };
    let (o64, l64, i64_) = (outer as i64, len as i64, inner as i64);
    if inner == 1 {
        let rows = outer;
        if rows < gpu.sm_count as usize * 8 && len >= 2048 {
            let f = gpu.function("reduce", &reduce_kernel("LONG_ROWS", op, t, dtype))?;
            let grid = rows.min(65535) as u32;
            gpu.launch(
                "reduce",
                &f,
                (grid, 1, 1),
                1024,
                0,
                &mut [arg(&o), arg(&xp), arg(&o64), arg(&l64), sarg],
            )
        } else {
            let f = gpu.function("reduce", &reduce_kernel("ROWS", op, t, dtype))?;
            gpu.launch_over(
                "reduce",
                &f,
                rows * 32,
                256,
                &mut [arg(&o), arg(&xp), arg(&o64), arg(&l64), sarg],
            )
        }?;
    } else {
        let f = gpu.function("reduce", &reduce_kernel("COLS", op, t, dtype))?;
        gpu.launch_over(
            "reduce",
            &f,
            outer * inner,
            256,
            &mut [arg(&o), arg(&xp), arg(&o64), arg(&l64), arg(&i64_), sarg],
        )?;
    }
    Ok(out)
}

/// Softmax of `x` along `axis`.
pub(crate) fn softmax(gpu: &Arc<Gpu>, x: &Array, axis: usize, dtype: DType) -> Result<Array> {
    let s = x.shape();
    let (outer, len, inner) = (numel(&s[..axis]), s[axis], numel(&s[axis + 1..]));
    let (t, c) = (ctype(dtype), compute_type(dtype));
    let (out, o) = alloc(gpu, s, dtype)?;
    let xp = ptr("softmax", x)?;
    let (o64, l64, i64_) = (outer as i64, len as i64, inner as i64);
    if inner == 1 {
        let k = Kernel::new(
            &REDUCE,
            "DEFINE_SOFTMAX_ROWS",
            format!("softmax_rows_{}", dtype.name()),
            &[t, c],
        );
        let f = gpu.function("softmax", &k)?;
        gpu.launch_over(
            "softmax",
            &f,
            outer * 32,
            256,
            &mut [arg(&o), arg(&xp), arg(&o64), arg(&l64)],
        )?;
    } else {
        let k = Kernel::new(
            &REDUCE,
            "DEFINE_SOFTMAX_COLS",
            format!("softmax_cols_{}", dtype.name()),
            &[t, c],
        );
        let f = gpu.function("softmax", &k)?;
        gpu.launch_over(
            "softmax",
            &f,
            outer * inner,
            256,
            &mut [arg(&o), arg(&xp), arg(&o64), arg(&l64), arg(&i64_)],
        )?;
    }
    Ok(out)
}

/// One instantiation per reduction, variant and input dtype (output of the
/// same dtype, i64 for arg reductions), and every softmax.
pub(crate) fn catalogue(push: &mut dyn FnMut(Kernel)) {
    use Reduction::*;
    for t in DType::ELEMENTS {
        for op in [Sum, Max, Min, Prod, ArgMax, ArgMin, LogSumExp] {
            let o = if matches!(op, ArgMax | ArgMin) {
                DType::I64
            } else {
                t
            };
            for v in ["ROWS", "LONG_ROWS", "COLS"] {
                push(reduce_kernel(v, op, t, o));
            }
        }
    }
    for d in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let (t, c) = (ctype(d), compute_type(d));
        push(Kernel::new(
            &REDUCE,
            "DEFINE_SOFTMAX_ROWS",
            format!("softmax_rows_{}", d.name()),
            &[t, c],
        ));
        push(Kernel::new(
            &REDUCE,
            "DEFINE_SOFTMAX_COLS",
            format!("softmax_cols_{}", d.name()),
            &[t, c],
        ));
    }
}
