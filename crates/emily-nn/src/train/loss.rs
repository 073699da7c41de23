//! Losses over model outputs, as lazy tensors (mean over examples, computed
//! in f32 for half-precision inputs).

use emily::{DType, Result, Tensor};

use crate::layers::{shape_err, upcast};

/// Mean cross-entropy of `logits (…, C)` against integer class `targets (…)`
/// (any integer dtype), computed stably as `logsumexp(logits) − logits[target]`.
/// Out-of-range targets are an error at eval.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (rows, classes) = rows_and_classes("cross_entropy", logits)?;
    if !targets.dtype().is_int() || targets.shape() != &logits.shape()[..logits.rank() - 1] {
        return Err(shape_err(
            "cross_entropy",
            format!(
                "targets must be integer of shape {:?}, got {:?} {}",
                &logits.shape()[..logits.rank() - 1],
                targets.shape(),
                targets.dtype()
            ),
        ));
    }
    let z = upcast(logits)?.reshape_to(&[rows, classes])?;
    let lse = z.logsumexp(&[-1], false)?;
    // z[r, t_r] as a gather from the flattened logits at r·C + t_r; a target
    // outside [0, C) points past the end, so the gather fails at eval.
    let t = targets.cast(DType::I64)?.reshape_to(&[rows])?;
    let valid = t
        .ge_scalar(0.0)?
        .logical_and(&t.lt_scalar(classes as f64)?)?;
    let past_end = Tensor::scalar((rows * classes) as f64, DType::I64, t.device());
    let at = Tensor::where_cond(
        &valid,
        &Tensor::arange_on(rows, DType::I64, t.device())?
            .mul_scalar(classes as f64)?
            .add(&t)?,
        &past_end,
    )?;
    let picked = z.reshape_to(&[rows * classes])?.gather(&at, 0)?;
    lse.sub(&picked)?.mean(&[], false)
}

/// Mean cross-entropy of `logits (…, C)` against target distributions
/// `probs (…, C)` (rows summing to one): `−Σ p · log_softmax(z)`.
pub fn cross_entropy_with_probs(logits: &Tensor, probs: &Tensor) -> Result<Tensor> {
    let (rows, classes) = rows_and_classes("cross_entropy", logits)?;
    if probs.shape() != logits.shape() || !probs.dtype().is_float() {
        return Err(shape_err(
            "cross_entropy",
            format!(
                "target probabilities must be float {:?}, got {:?} {}",
                logits.shape(),
                probs.shape(),
                probs.dtype()
            ),
        ));
    }
    let z = upcast(logits)?.reshape_to(&[rows, classes])?;
    let log_p = z.sub(&z.logsumexp(&[-1], true)?)?;
    let p = probs.cast(log_p.dtype())?.reshape_to(&[rows, classes])?;
    p.mul(&log_p)?.sum(&[-1], false)?.mean(&[], false)?.neg()
}

/// Mean squared error `mean((pred − target)²)` of two tensors of one shape.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.shape() != target.shape() || pred.dtype() != target.dtype() {
        return Err(shape_err(
            "mse",
            format!(
                "prediction {:?} {} and target {:?} {} differ",
                pred.shape(),
                pred.dtype(),
                target.shape(),
                target.dtype()
            ),
        ));
    }
    upcast(&pred.sub(target)?)?.square()?.mean(&[], false)
}

/// Fraction of rows of `logits (…, C)` whose argmax is the target class.
pub fn accuracy(logits: &Tensor, targets: &Tensor) -> Result<f64> {
    let pred = logits.argmax(-1, false)?;
    let hits = pred
        .eq(&targets.cast(DType::I64)?)?
        .cast(DType::F32)?
        .mean(&[], false)?;
    Ok(hits.to_scalar::<f32>()? as f64)
}

fn rows_and_classes(op: &'static str, logits: &Tensor) -> Result<(usize, usize)> {
    if logits.rank() == 0 || !logits.dtype().is_float() {
        return Err(shape_err(
            op,
            format!(
                "logits must be float (…, classes), got {:?} {}",
                logits.shape(),
                logits.dtype()
            ),
        ));
    }
    let classes = logits.shape()[logits.rank() - 1];
    Ok((logits.numel() / classes.max(1), classes))
}
