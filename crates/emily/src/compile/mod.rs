//! `emily::compile`: trace once per input signature, optimise, cache, replay.
//!
//! [`compile`] wraps a function `f(&[Tensor]) -> Result<Vec<Tensor>>`. On a
//! call with a new signature (shapes, dtypes, device of the arguments) it calls
//! `f` on symbolic placeholders, builds the graph of what `f` did, and runs the
//! passes: common-subexpression elimination, constant folding (captured
//! tensors — weights — are constants), dead-code elimination, recognition
//! of a composed causal attention together with its gradient (a traced
//! training step), which then runs as one fused forward and one fused
//! backward kernel (see `attention.rs`; not with [`Kernels::Composed`]), the
//! same for a composed RMSNorm and its gradient (`rms_norm.rs`; the sum of
//! its output's cotangents and the add of x's other cotangent folded into
//! the gradient kernel, `rms_norm_adds.rs`) and a composed
//! rotary embedding and its gradient (`rope.rs`), an add of a scatter into
//! zeros (a gather's gradient) as the scatter into the other addend
//! (`scatter_fold.rs`), a log-sum-exp and the softmax built from it (a
//! cross-entropy loss and its gradient) as one row kernel
//! (`softmax_lse.rs`), and fusion of
//! elementwise chains into single-pass kernels (the chains the backend of the
//! arguments' device says it can fuse, see `Backend::can_fuse`); the slices
//! cut out of a fused kernel's flat output are ordered so the leading one
//! can take the buffer (`leading_slices.rs`). The resulting [`Plan`] is
//! cached; later calls with that signature replay it without calling `f`.
//! The cache is bounded ([`PlanCacheLimits`]: least recently used plans are
//! evicted and traced again if their signature returns).
//! Buffers are planned by last use: each intermediate returns to the pool after
//! its last consumer, which receives it by value and may update it in place.
//!
//! `f` must be pure: the same graph for the same signature (reading tensor
//! data inside `f` is an error while tracing). Results match eager evaluation
//! exactly: fused chains compute each op with the same kernels and round every
//! intermediate to its dtype; no pass reassociates arithmetic (the fused
//! kernels of [`Kernels::Fused`], the scatter fold and the softmax of the
//! log-sum-exp agree to round-off).

mod attention;
mod attention_heads;
mod cache;
mod epilogue;
mod fusion;
mod graph;
mod leading_slices;
mod mlp;
mod multi_output;
mod passes;
mod pattern;
mod plan;
mod rms_norm;
mod rms_norm_adds;
mod rope;
mod rope_heads;
mod scatter_fold;
mod schedule;
mod softmax_lse;
mod sum_squares;

pub use cache::PlanCacheLimits;
pub use plan::Plan;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{invalid, Result};
use crate::fast::Kernels;
use crate::{telemetry, DType, Device, Tensor};
use graph::Graph;

use cache::PlanCache;

type Signature = Vec<(Vec<usize>, DType, Device)>;

/// How [`compile_with`] builds plans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// Fused fast-op nodes ([`Kernels::Fused`], the default) or every fast op
    /// lowered to its decomposition ([`Kernels::Composed`]).
    pub kernels: Kernels,
    /// How many plans (one per input signature) the function keeps.
    pub plan_cache: PlanCacheLimits,
}

/// A function compiled by [`compile`]; cheap to share across threads.
pub struct Compiled<F> {
    f: F,
    options: CompileOptions,
    plans: Mutex<PlanCache>,
}

/// Compiles `f`; see the module docs.
///
/// ```
/// use emily::{compile, DType, Tensor};
/// let w = Tensor::randn(&[4], 0.0, 1.0, 7, DType::F32)?; // captured: a plan constant
/// let f = compile(move |xs: &[Tensor]| Ok(vec![xs[0].mul(&w)?.add_scalar(1.0)?.gelu()?]));
/// let x = Tensor::randn(&[3, 4], 0.0, 1.0, 8, DType::F32)?;
/// let y1 = f.call(&[x.clone()])?; // traces, fuses, caches
/// let y2 = f.call(&[x])?;         // replays
/// assert_eq!(y1[0].to_vec::<f32>()?, y2[0].to_vec::<f32>()?);
/// # Ok::<(), emily::Error>(())
/// ```
pub fn compile<F>(f: F) -> Compiled<F>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    compile_with(f, CompileOptions::default())
}

/// Compiles `f` with `options` (e.g. every fast op composed, for comparing
/// against the fused plan of the same function).
///
/// ```
/// use emily::{compile, compile_with, fast, CompileOptions, DType, Kernels, Tensor};
/// let f = |xs: &[Tensor]| Ok(vec![fast::rms_norm(&xs[0], None, 1e-5)?]);
/// let x = Tensor::randn(&[2, 64], 0.0, 1.0, 1, DType::F32)?;
/// let fused = compile(f);
/// let composed = compile_with(f, CompileOptions { kernels: Kernels::Composed, ..Default::default() });
/// assert_eq!(fused.plan(&[x.clone()])?.num_fast_ops(), 1);
/// assert_eq!(composed.plan(&[x])?.num_fast_ops(), 0);
/// # Ok::<(), emily::Error>(())
/// ```
pub fn compile_with<F>(f: F, options: CompileOptions) -> Compiled<F>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    Compiled {
        f,
        options,
        plans: Mutex::new(PlanCache::new(options.plan_cache)),
    }
}

impl<F> Compiled<F>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    /// Runs the compiled function (tracing on the first call per signature).
    pub fn call(&self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        self.plan(args)?.run(args)
    }

    /// Like [`Compiled::call`], but takes the arguments by value so buffers
    /// nobody else holds can be updated in place (a KV cache passed in and
    /// returned).
    pub fn call_owned(&self, args: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.plan(&args)?.run_owned(args)
    }

    /// The plan for these arguments' signature (traced and built if new).
    pub fn plan(&self, args: &[Tensor]) -> Result<Arc<Plan>> {
        let sig: Signature = args
            .iter()
            .map(|t| (t.shape().to_vec(), t.dtype(), t.device()))
            .collect();
        if let Some(p) = self.cache().get(&sig) {
            telemetry::compile_lookup(true);
            return Ok(p);
        }
        telemetry::compile_lookup(false);
        let plan = Arc::new(self.trace(args)?);
        Ok(self.cache().insert(sig, plan))
    }

    /// Number of plans cached now (at most [`PlanCacheLimits::max_plans`]).
    pub fn cached_plans(&self) -> usize {
        self.cache().len()
    }

    /// Bytes of the plans cached now ([`Plan::bytes`] summed).
    pub fn cached_plan_bytes(&self) -> usize {
        self.cache().bytes()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, PlanCache> {
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trace(&self, args: &[Tensor]) -> Result<Plan> {
        let t0 = Instant::now();
        let device = args.first().map(|t| t.device()).unwrap_or_default();
        let symbols: Vec<Tensor> = args
            .iter()
            .enumerate()
            .map(|(i, t)| Tensor::symbolic(i, t.shape().to_vec(), t.dtype(), t.device()))
            .collect();
        let outputs = (self.f)(&symbols)?;
        if outputs.is_empty() {
            return Err(invalid("compile", "the function returned no tensors"));
        }
        let mut g = Graph::from_outputs(&outputs, self.options.kernels)?;
        drop(outputs);
        drop(symbols);
        let traced = g.num_nodes();
        passes::common_subexpressions(&mut g);
        passes::fold_constants(&mut g, device)?;
        let (attention, norms, rotations, scatters, squares, softmaxes) =
            if self.options.kernels == Kernels::Fused {
                let backend = crate::backend::get(device);
                (
                    attention::fuse_causal_attention(&mut g, backend)
                        + attention_heads::fold_attention_permutes(&mut g, backend),
                    rms_norm::fuse_rms_norms(&mut g, backend) + rms_norm_adds::fold_adds(&mut g),
                    rope::fuse_rotary_embeddings(&mut g, backend)
                        + rope_heads::fold_head_permutes(&mut g, backend),
                    scatter_fold::fold_scatter_adds(&mut g),
                    sum_squares::fold_sum_squares(&mut g, backend),
                    softmax_lse::fuse_softmax_lse(&mut g, backend),
                )
            } else {
                (0, 0, 0, 0, 0, 0)
            };
        let before = g.num_nodes();
        let backend = crate::backend::get(device);
        let fused_away = fusion::fuse_elementwise(&mut g, backend)
            + epilogue::fuse_product_epilogues(&mut g, backend)
            + mlp::fuse_int8_mlps(&mut g, backend);
        let after = g.num_nodes();
        let hoisted = schedule::hoist_shrinking_nodes(&mut g);
        leading_slices::hoist_slices(&mut g);
        tracing::debug!(
            target: "emily::compile",
            trace_ms = t0.elapsed().as_secs_f64() * 1e3,
            traced,
            attention,
            norms,
            rotations,
            scatters,
            squares,
            softmaxes,
            kernels_before_fusion = before,
            kernels_after_fusion = after,
            fused_away,
            hoisted,
            "compiled plan"
        );
        Ok(Plan::new(g, device, traced))
    }
}
