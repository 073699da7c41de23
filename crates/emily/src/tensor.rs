//! The lazy tensor handle.
//!
//! A [`Tensor`] is a cheap `Arc` handle to a node that is either materialised
//! (an [`Array`] on a device), pending (an op and its input handles), or
//! symbolic (a placeholder while `compile` traces a function). Ops never
//! compute: they validate shapes/dtypes and add a pending node. [`Tensor::eval`]
//! materialises a tensor and its pending ancestors, then drops the ancestry so
//! intermediate buffers return to the pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::{Array, DType, Device};

mod rows;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a node currently is.
pub(crate) enum State {
    /// Computed.
    Ready(Array),
    /// Waiting to be computed from its inputs.
    Pending { op: Op, inputs: Vec<Tensor> },
    /// The `index`-th input of a function being traced by `compile`.
    Symbolic { index: usize },
    /// Evaluation failed; the message is returned again on later evals.
    Failed(String),
}

pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) state: Mutex<State>,
}

impl Drop for Node {
    /// Drops long pending chains iteratively (a recursive drop of a
    /// 100k-node chain would overflow the stack).
    fn drop(&mut self) {
        let mut stack = take_inputs(self.state.get_mut().unwrap_or_else(|e| e.into_inner()));
        while let Some(t) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(t.0) {
                stack.extend(take_inputs(
                    node.state.get_mut().unwrap_or_else(|e| e.into_inner()),
                ));
            }
        }
    }
}

fn take_inputs(state: &mut State) -> Vec<Tensor> {
    match state {
        State::Pending { inputs, .. } => std::mem::take(inputs),
        _ => Vec::new(),
    }
}

/// A lazily evaluated n-dimensional array. Cloning is cheap; clones share the
/// node, so evaluating one evaluates all.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.state() {
            State::Ready(_) => "ready",
            State::Pending { .. } => "pending",
            State::Symbolic { .. } => "symbolic",
            State::Failed(_) => "failed",
        };
        write!(
            f,
            "Tensor({:?}, {}, {}, {state})",
            self.0.shape, self.0.dtype, self.0.device
        )
    }
}

impl Tensor {
    fn new(shape: Vec<usize>, dtype: DType, device: Device, state: State) -> Tensor {
        Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            dtype,
            device,
            state: Mutex::new(state),
        }))
    }

    /// Wraps a materialised array (on the device that owns its buffer).
    pub fn from_array(array: Array) -> Tensor {
        let shape = array.shape().to_vec();
        let dtype = array.dtype();
        let device = array.device();
        Tensor::new(shape, dtype, device, State::Ready(array))
    }

    /// Adds a pending node. Callers (the op catalogue) have validated the
    /// inputs and computed `shape` with checked arithmetic; here the shape's
    /// byte size is checked once for every op (an [`Error::Shape`] naming the
    /// op when it overflows or exceeds `isize::MAX`), so element counts of
    /// tensors never overflow downstream.
    pub(crate) fn from_op(
        op: Op,
        inputs: Vec<Tensor>,
        shape: Vec<usize>,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        crate::ops::check_quantized(&op, &inputs, dtype)?;
        // A quantised `wᵀ` is only matmul's view of w, never stored, so its
        // swapped shape need not be whole blocks along its last axis.
        if !(dtype.is_quantized() && matches!(op, Op::Permute { .. })) {
            crate::shape::checked_bytes(op.name(), &shape, dtype)?;
        }
        Ok(Tensor::new(
            shape,
            dtype,
            device,
            State::Pending { op, inputs },
        ))
    }

    /// A symbolic placeholder for tracing.
    pub(crate) fn symbolic(
        index: usize,
        shape: Vec<usize>,
        dtype: DType,
        device: Device,
    ) -> Tensor {
        Tensor::new(shape, dtype, device, State::Symbolic { index })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unique id of the node (stable for the node's lifetime).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        crate::shape::numel(&self.0.shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.0.device
    }

    /// Size of `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        let a = crate::shape::normalize_axis("dim", axis, self.rank())?;
        Ok(self.0.shape[a])
    }

    /// True if the tensor is materialised.
    pub fn is_ready(&self) -> bool {
        matches!(*self.state(), State::Ready(_))
    }

    /// True if the tensor is symbolic or depends on a symbolic input (being traced).
    pub fn is_symbolic(&self) -> bool {
        match &*self.state() {
            State::Symbolic { .. } => true,
            State::Pending { inputs, .. } => inputs.iter().any(|t| t.is_symbolic()),
            _ => false,
        }
    }

    /// Materialises this tensor and its pending ancestors, then drops the
    /// ancestry. Returns `self` for chaining (`x = x.add(&y)?.eval()?`).
    pub fn eval(self) -> Result<Tensor> {
        crate::eval::eval(&[&self])?;
        Ok(self)
    }

    /// The materialised array (evaluating first).
    pub fn array(&self) -> Result<Array> {
        if let State::Ready(a) = &*self.state() {
            return Ok(a.clone());
        }
        crate::eval::eval(&[self])?;
        match &*self.state() {
            State::Ready(a) => Ok(a.clone()),
            State::Failed(m) => Err(Error::Invalid {
                op: "eval",
                msg: m.clone(),
            }),
            _ => Err(Error::Traced),
        }
    }
}

/// Evaluates several tensors together (shared ancestors are computed once).
pub fn eval_all(tensors: &[&Tensor]) -> Result<()> {
    crate::eval::eval(tensors)
}
