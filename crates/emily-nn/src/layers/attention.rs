//! Multi-head attention with its projections: self- or cross-attention,
//! grouped-query heads, optional RoPE on queries and keys, and an optional
//! static-size KV cache written at a run-time offset.
//!
//! Forward: `q = x·Wqᵀ`, `k, v = context·Wk,vᵀ` (context = x for self-
//! attention), split into heads, RoPE, cache update, the attention core
//! (see [`super::AttentionCoreOptions`]), merge heads, `·Woᵀ`. The node's
//! implementation picks composed or fused RoPE and attention core.

use emily::{DType, Tensor};

use super::attention_core::{attend, check_qkv, Attend, AttentionMask};
use super::dense::linear;
use super::reshape::{merge_heads, split_heads};
use super::rotary::{apply as rope, Positions, RopeConfig};
use super::{dropout, invalid, kv_cache, Ctx, Locals};
use crate::build::Mode;
use crate::params::{ParamInit, ParamSpec};

/// Names of the four projections under the node (parameters are
/// `"{node}.{name}.weight"` / `".bias"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectionNames {
    /// Query projection.
    pub q: String,
    /// Key projection.
    pub k: String,
    /// Value projection.
    pub v: String,
    /// Output projection.
    pub o: String,
}

impl ProjectionNames {
    /// Custom names (e.g. BERT's `"self.query"`, …, `"output.dense"`).
    pub fn new(q: &str, k: &str, v: &str, o: &str) -> ProjectionNames {
        ProjectionNames {
            q: q.into(),
            k: k.into(),
            v: v.into(),
            o: o.into(),
        }
    }
}

impl Default for ProjectionNames {
    /// `q_proj`, `k_proj`, `v_proj`, `out_proj` (Whisper, BART).
    fn default() -> ProjectionNames {
        ProjectionNames::new("q_proj", "k_proj", "v_proj", "out_proj")
    }
}

/// Which projections have a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProjectionBias {
    /// Query projection.
    pub q: bool,
    /// Key projection.
    pub k: bool,
    /// Value projection.
    pub v: bool,
    /// Output projection.
    pub o: bool,
}

impl ProjectionBias {
    /// Every projection has a bias.
    pub fn all() -> ProjectionBias {
        ProjectionBias {
            q: true,
            k: true,
            v: true,
            o: true,
        }
    }

    /// No projection has a bias (Llama).
    pub fn none() -> ProjectionBias {
        ProjectionBias {
            q: false,
            k: false,
            v: false,
            o: false,
        }
    }
}

/// Options of a multi-head attention node. Inputs: `x (B, Tq, hidden)`, then
/// `context (B, Tk, kv_input_size)` for cross-attention, the mask if `mask`
/// has an input, and a scalar offset when `cache` is set. State slots
/// `key_cache` and `value_cache`, `(B, Hkv, cache, head_dim)`, when cached.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionOptions {
    /// Features of `x` and of the output.
    pub hidden_size: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (dividing `num_heads`; fewer = grouped-query).
    pub num_kv_heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// Features of the key/value source (`hidden_size` for self-attention).
    pub kv_input_size: usize,
    /// Cross-attention: keys and values come from a `context` input (set by the builder).
    pub cross: bool,
    /// Causal masking.
    pub causal: bool,
    /// The mask input.
    pub mask: AttentionMask,
    /// A static KV cache of this many positions (self-attention only).
    pub cache: Option<usize>,
    /// RoPE on queries and keys (self-attention only), at positions from the
    /// cache offset (or `0..T` without a cache).
    pub rope: Option<RopeConfig>,
    /// Dropout on the attention probabilities in training.
    pub dropout: f32,
    /// Score multiplier; `None` = `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// Which projections have a bias.
    pub bias: ProjectionBias,
    /// Projection names.
    pub names: ProjectionNames,
    /// The q/k/v/out projections multiply with 8-bit integer products
    /// (`Tensor::matmul_int8`; see [`crate::layers::DenseOptions::quantized`]).
    /// The attention core keeps its own number type (see `bf16_core`): on
    /// CPUs without bf16 or int8 dot products an f32 core is the faster one.
    pub quantized: bool,
    /// The fused attention core of f32 tensors runs on q, k and v rounded
    /// to bf16 (bf16 dot products where the CPU has them; see
    /// `emily_kernels::fast::sdpa_bf16`), its output widened back to f32,
    /// whatever number type the projections multiply in.
    pub bf16_core: bool,
    /// With a bf16 core (`bf16_core`), its two products
    /// (`q·k` and `p·v`) may run on int8 codes where the CPU has int8 dot
    /// products (see `emily::fast::scaled_dot_product_attention_int8`).
    /// No effect otherwise.
    pub int8_products: bool,
}

impl AttentionOptions {
    /// `num_heads` heads of `hidden_size / num_heads` features, no grouping,
    /// all biases, default projection names, unmasked.
    pub fn new(hidden_size: usize, num_heads: usize) -> AttentionOptions {
        AttentionOptions {
            hidden_size,
            num_heads,
            num_kv_heads: num_heads,
            head_dim: hidden_size.checked_div(num_heads).unwrap_or(0),
            kv_input_size: hidden_size,
            cross: false,
            causal: false,
            mask: AttentionMask::None,
            cache: None,
            rope: None,
            dropout: 0.0,
            scale: None,
            bias: ProjectionBias::all(),
            names: ProjectionNames::default(),
            quantized: false,
            bf16_core: false,
            int8_products: false,
        }
    }

    /// Sets the number of key/value heads (grouped-query attention).
    pub fn kv_heads(mut self, n: usize) -> AttentionOptions {
        self.num_kv_heads = n;
        self
    }

    /// Sets the head width.
    pub fn head_dim(mut self, d: usize) -> AttentionOptions {
        self.head_dim = d;
        self
    }

    /// Sets the width of the cross-attention context.
    pub fn context_size(mut self, n: usize) -> AttentionOptions {
        self.kv_input_size = n;
        self
    }

    /// Makes it causal.
    pub fn causal(mut self) -> AttentionOptions {
        self.causal = true;
        self
    }

    /// Sets the mask input kind.
    pub fn mask(mut self, mask: AttentionMask) -> AttentionOptions {
        self.mask = mask;
        self
    }

    /// Adds a static KV cache of `max_len` positions.
    pub fn cache(mut self, max_len: usize) -> AttentionOptions {
        self.cache = Some(max_len);
        self
    }

    /// Applies RoPE to queries and keys.
    pub fn rope(mut self, rope: RopeConfig) -> AttentionOptions {
        self.rope = Some(rope);
        self
    }

    /// Sets the training dropout on attention probabilities.
    pub fn dropout(mut self, rate: f32) -> AttentionOptions {
        self.dropout = rate;
        self
    }

    /// Sets the score scale.
    pub fn scale(mut self, scale: f32) -> AttentionOptions {
        self.scale = Some(scale);
        self
    }

    /// Sets which projections have a bias.
    pub fn bias(mut self, bias: ProjectionBias) -> AttentionOptions {
        self.bias = bias;
        self
    }

    /// Runs the fused attention core on q, k and v rounded to bf16 (see
    /// the `bf16_core` field).
    pub fn bf16_core(mut self) -> AttentionOptions {
        self.bf16_core = true;
        self
    }

    /// Lets a bf16 core compute its products on int8 codes (see the
    /// `int8_products` field).
    pub fn int8_products(mut self) -> AttentionOptions {
        self.int8_products = true;
        self
    }

    /// Sets the projection names.
    pub fn names(mut self, names: ProjectionNames) -> AttentionOptions {
        self.names = names;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let o = self;
        if o.hidden_size == 0
            || o.num_heads == 0
            || o.num_kv_heads == 0
            || o.head_dim == 0
            || o.kv_input_size == 0
        {
            return Err("sizes, head counts and head_dim must be positive".into());
        }
        if !o.num_heads.is_multiple_of(o.num_kv_heads) {
            return Err(format!(
                "{} kv heads do not divide {} query heads",
                o.num_kv_heads, o.num_heads
            ));
        }
        if o.cross && (o.cache.is_some() || o.rope.is_some()) {
            return Err("a KV cache and RoPE are for self-attention only".into());
        }
        if o.cache == Some(0) {
            return Err("a cache needs at least one position".into());
        }
        if let Some(r) = &o.rope {
            r.validate()?;
            if r.dims > o.head_dim {
                return Err(format!(
                    "rope dims {} exceed head_dim {}",
                    r.dims, o.head_dim
                ));
            }
        }
        dropout::check_rate(o.dropout)
    }

    pub(crate) fn specs(&self) -> Vec<ParamSpec> {
        let (q_out, kv_out) = (
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        );
        let mut s = Vec::new();
        let mut proj = |name: &str, out: usize, inp: usize, bias: bool| {
            s.push(ParamSpec::new(
                format!("{name}.weight"),
                vec![out, inp],
                ParamInit::Weight { fan_in: inp },
            ));
            if bias {
                s.push(ParamSpec::new(
                    format!("{name}.bias"),
                    vec![out],
                    ParamInit::Bias,
                ));
            }
        };
        proj(&self.names.q, q_out, self.hidden_size, self.bias.q);
        proj(&self.names.k, kv_out, self.kv_input_size, self.bias.k);
        proj(&self.names.v, kv_out, self.kv_input_size, self.bias.v);
        proj(&self.names.o, self.hidden_size, q_out, self.bias.o);
        s
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let ins = ctx.inputs.clone();
        let locals = ctx.locals;
        let x = &ins[0];
        let mut next = 1;
        let mut take = |present: bool| {
            present.then(|| {
                next += 1;
                &ins[next - 1]
            })
        };
        let context = take(self.cross).unwrap_or(x);
        let mask = take(self.mask.has_input()).map(|m| (self.mask, m));
        let offset = take(self.cache.is_some());

        let low_precision = self.bf16_core && ctx.fused && x.dtype() == DType::F32;
        // Without RoPE or a cache between projection and attention, the
        // projections are rounded to bf16 before their heads are split and
        // the attention output is widened after they are merged: rounding
        // commutes with those copies (the same bits), the bias add and the
        // rounding fuse into one pass, and the head copies move half the bytes.
        let bf16_heads = low_precision && self.rope.is_none() && self.cache.is_none();
        let project =
            |name: &str, bias: bool, input: &Tensor, heads: usize| -> emily::Result<Tensor> {
                let w = param(locals, &format!("{name}.weight"))?;
                let b = if bias {
                    Some(param(locals, &format!("{name}.bias"))?)
                } else {
                    None
                };
                let y = linear(input, w, b, self.quantized)?;
                if bf16_heads {
                    split_heads(&y.cast(DType::BF16)?, heads)
                } else {
                    split_heads(&y, heads)
                }
            };
        let mut q = project(&self.names.q, self.bias.q, x, self.num_heads)?;
        let mut k = project(&self.names.k, self.bias.k, context, self.num_kv_heads)?;
        let mut v = project(&self.names.v, self.bias.v, context, self.num_kv_heads)?;
        if let Some(cfg) = &self.rope {
            let pos = offset.map_or(Positions::Start(0), Positions::Offset);
            q = rope(cfg, &q, pos, locals, "rope", ctx.fused)?;
            k = rope(cfg, &k, pos, locals, "rope", ctx.fused)?;
        }
        if let (Some(max_len), Some(off)) = (self.cache, offset) {
            k = kv_cache::write(ctx, "key_cache", &k, off, 2, max_len)?;
            v = kv_cache::write(ctx, "value_cache", &v, off, 2, max_len)?;
        }
        check_qkv(&q, &k, &v)?;
        let dropout = if ctx.mode == Mode::Train && self.dropout > 0.0 {
            let shape = [q.shape()[0], q.shape()[1], q.shape()[2], k.shape()[2]];
            Some((self.dropout, ctx.noise(&shape)?))
        } else {
            None
        };
        let scale = self.scale.unwrap_or(1.0 / (self.head_dim as f32).sqrt());
        let a = Attend {
            scale,
            causal: self.causal,
            window: None,
            offset,
            mask,
            dropout,
            int8_products: self.int8_products && low_precision,
        };
        let out = if bf16_heads {
            merge_heads(&attend(&q, &k, &v, a, true)?)?.cast(DType::F32)?
        } else if low_precision && q.dtype() == DType::F32 {
            let bf = |t: &Tensor| t.cast(DType::BF16);
            merge_heads(&attend(&bf(&q)?, &bf(&k)?, &bf(&v)?, a, true)?.cast(DType::F32)?)?
        } else {
            merge_heads(&attend(&q, &k, &v, a, ctx.fused)?)?
        };
        let wo = param(locals, &format!("{}.weight", self.names.o))?;
        let bo = if self.bias.o {
            Some(param(locals, &format!("{}.bias", self.names.o))?)
        } else {
            None
        };
        linear(&out, wo, bo, self.quantized)
    }
}

fn param<'a>(locals: &'a Locals, name: &str) -> emily::Result<&'a Tensor> {
    locals
        .get(name)
        .ok_or_else(|| invalid("attention", format!("parameter `{name}` is not bound")))
}
