//! Forcing the lazy graph: topological evaluation with ancestry release and
//! buffer donation.

use std::collections::HashSet;

use crate::backend;
use crate::error::{Error, Result};
use crate::tensor::{State, Tensor};
use crate::Array;

/// Evaluates `targets` and every pending ancestor, in dependency order.
///
/// Each pending node is computed once; afterwards its inputs are dropped, so an
/// intermediate's buffer goes back to the pool as soon as its last consumer has
/// run. An input held by nobody else is handed to the kernel by value, so
/// elementwise kernels can write their output into it (donation).
pub(crate) fn eval(targets: &[&Tensor]) -> Result<()> {
    let mut order = topo_order(targets)?;
    if order.is_empty() {
        return Ok(());
    }
    let span = tracing::trace_span!("emily.eval", nodes = order.len());
    let _enter = span.enter();
    for slot in order.iter_mut() {
        let t = slot.take().expect("each node is visited once");
        run_node(&t)?;
    }
    Ok(())
}

/// Pending nodes reachable from `targets`, inputs before consumers.
fn topo_order(targets: &[&Tensor]) -> Result<Vec<Option<Tensor>>> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = targets.iter().map(|t| ((*t).clone(), false)).collect();
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(Some(t));
            continue;
        }
        if seen.contains(&t.id()) {
            continue;
        }
        let inputs = match &*t.state() {
            State::Ready(_) => continue,
            State::Symbolic { .. } => return Err(Error::Traced),
            State::Failed(m) => {
                return Err(Error::Invalid {
                    op: "eval",
                    msg: m.clone(),
                })
            }
            State::Pending { inputs, .. } => inputs.clone(),
        };
        seen.insert(t.id());
        stack.push((t, true));
        for i in inputs.into_iter().rev() {
            if !seen.contains(&i.id()) {
                stack.push((i, false));
            }
        }
    }
    Ok(order)
}

/// Computes one pending node whose inputs are all ready.
fn run_node(t: &Tensor) -> Result<()> {
    let (op, inputs) = {
        let mut st = t.state();
        match std::mem::replace(&mut *st, State::Failed("evaluation in progress".into())) {
            State::Pending { op, inputs } => (op, inputs),
            other => {
                *st = other;
                return Ok(());
            }
        }
    };
    let arrays = inputs
        .into_iter()
        .map(take_ready)
        .collect::<Result<Vec<Array>>>();
    let clock = crate::telemetry::profiling().then(crate::telemetry::OpClock::start);
    let result = arrays
        .and_then(|arrays| backend::get(t.device()).execute(&op, arrays, t.shape(), t.dtype()));
    if let Some(clock) = clock {
        // The same per-op profile a compiled plan records, so the two compare.
        clock.record(op.name());
    }
    let mut st = t.state();
    match result {
        Ok(a) => {
            debug_assert_eq!(a.shape(), t.shape(), "{op:?} produced a wrong shape");
            *st = State::Ready(a);
            Ok(())
        }
        Err(e) => {
            *st = State::Failed(e.to_string());
            Err(e)
        }
    }
}

/// The array of a ready input; moved out of the node when this handle is the
/// last one, so the kernel may reuse its buffer.
pub(crate) fn take_ready(t: Tensor) -> Result<Array> {
    match std::sync::Arc::try_unwrap(t.0) {
        Ok(mut node) => match std::mem::replace(
            node.state.get_mut().unwrap_or_else(|e| e.into_inner()),
            State::Failed("consumed".into()),
        ) {
            State::Ready(a) => Ok(a),
            _ => Err(Error::Invalid {
                op: "eval",
                msg: "input not ready".into(),
            }),
        },
        Err(arc) => match &*Tensor(arc).state() {
            State::Ready(a) => Ok(a.clone()),
            State::Failed(m) => Err(Error::Invalid {
                op: "eval",
                msg: m.clone(),
            }),
            _ => Err(Error::Invalid {
                op: "eval",
                msg: "input not ready".into(),
            }),
        },
    }
}
