//! The attention core: `softmax(q·kᵀ·scale + mask) · v` on `(B, H, T, D)`,
//! with causal, padding, boolean and additive masks, keys from a static
//! cache filled up to a run-time offset, grouped-query heads, and dropout on
//! the probabilities in training.
//!
//! The composed form is what a model library's eager attention does:
//! `matmul`, scale, mask, `softmax` (f32), dropout, `matmul`, with the query
//! heads of each kv head stacked as rows of one product (the same sums as
//! repeating the kv heads, without the copy).
//! The fused form is one `emily::fast::scaled_dot_product_attention` node
//! (kv heads are never repeated); it has no dropout, so a node that drops
//! attention probabilities in training runs composed.

use emily::fast::{SdpaMask, SdpaOptions};
use emily::{DType, Tensor};

use super::{dropout, offset_scalar, shape_err, upcast, Ctx};
use crate::build::Mode;

/// The mask input of an attention node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AttentionMask {
    /// No mask input.
    #[default]
    None,
    /// A `(B, Tk)` key padding mask as tokenizers return it: nonzero (or
    /// true) = attend.
    KeyPadding,
    /// A Bool keep-mask broadcastable to `(B, H, Tq, Tk)`.
    Boolean,
    /// A float bias broadcastable to `(B, H, Tq, Tk)` (`-inf` masks).
    Additive,
}

impl AttentionMask {
    /// Whether the node takes a mask input.
    pub fn has_input(self) -> bool {
        self != AttentionMask::None
    }
}

/// Options of an attention-core node. Inputs: `q (B, Hq, Tq, D)`,
/// `k (B, Hkv, Tk, D)`, `v (B, Hkv, Tk, Dv)`, then the mask if `mask` has an
/// input, then the offset if `kv_offset` (keys are a static cache holding
/// `offset + Tq` valid positions). Output `(B, Hq, Tq, Dv)`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AttentionCoreOptions {
    /// Query `i` sees keys `j ≤ i + (Tk − Tq)`, or `j ≤ offset + i` with `kv_offset`.
    pub causal: bool,
    /// The mask input.
    pub mask: AttentionMask,
    /// Whether keys come from a static cache with a run-time offset input
    /// (set by the builder).
    pub kv_offset: bool,
    /// Score multiplier; `None` = `1/sqrt(D)`.
    pub scale: Option<f32>,
    /// Dropout on the probabilities in training.
    pub dropout: f32,
    /// Sliding window (with `causal`): each query sees only the last
    /// `window` keys up to its own position.
    pub window: Option<usize>,
}

impl AttentionCoreOptions {
    /// Unmasked attention with the default scale.
    pub fn new() -> AttentionCoreOptions {
        AttentionCoreOptions::default()
    }

    /// Makes it causal.
    pub fn causal(mut self) -> AttentionCoreOptions {
        self.causal = true;
        self
    }

    /// Sets the mask input kind.
    pub fn mask(mut self, mask: AttentionMask) -> AttentionCoreOptions {
        self.mask = mask;
        self
    }

    /// Sets the score scale.
    pub fn scale(mut self, scale: f32) -> AttentionCoreOptions {
        self.scale = Some(scale);
        self
    }

    /// Sets the training dropout.
    pub fn dropout(mut self, rate: f32) -> AttentionCoreOptions {
        self.dropout = rate;
        self
    }

    /// Limits each query to the last `window` keys (sliding-window attention; causal only).
    pub fn window(mut self, window: usize) -> AttentionCoreOptions {
        self.window = Some(window);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        match self.window {
            Some(0) => return Err("a sliding window needs at least one key".into()),
            Some(_) if !self.causal => return Err("a sliding window needs causal attention".into()),
            _ => {}
        }
        dropout::check_rate(self.dropout)
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let ins = ctx.inputs.clone();
        let (q, k, v) = (&ins[0], &ins[1], &ins[2]);
        let mut next = 3;
        let mask = self.mask.has_input().then(|| {
            next += 1;
            (self.mask, &ins[next - 1])
        });
        let offset = self.kv_offset.then(|| &ins[next]);
        check_qkv(q, k, v)?;
        let dropout = if ctx.mode == Mode::Train && self.dropout > 0.0 {
            let shape = [q.shape()[0], q.shape()[1], q.shape()[2], k.shape()[2]];
            Some((self.dropout, ctx.noise(&shape)?))
        } else {
            None
        };
        let scale = self.scale.unwrap_or(1.0 / (q.shape()[3] as f32).sqrt());
        attend(
            q,
            k,
            v,
            Attend {
                scale,
                causal: self.causal,
                window: self.window,
                offset,
                mask,
                dropout,
                int8_products: false,
            },
            ctx.fused,
        )
    }
}

/// Everything [`attend`] needs besides q, k, v.
pub(crate) struct Attend<'a> {
    /// Score multiplier.
    pub scale: f32,
    /// Causal masking.
    pub causal: bool,
    /// Sliding window of the causal mask.
    pub window: Option<usize>,
    /// Keys are a static cache valid up to `offset + Tq`.
    pub offset: Option<&'a Tensor>,
    /// A mask input and its kind.
    pub mask: Option<(AttentionMask, &'a Tensor)>,
    /// Training dropout: rate and uniform noise `(B, Hq, Tq, Tk)`.
    pub dropout: Option<(f32, Tensor)>,
    /// The fused kernel may compute a bf16 call's products on int8 codes
    /// (`emily::fast::scaled_dot_product_attention_int8`).
    pub int8_products: bool,
}

/// Checks `(B, Hq, Tq, D)`, `(B, Hkv, Tk, D)`, `(B, Hkv, Tk, Dv)`.
pub(crate) fn check_qkv(q: &Tensor, k: &Tensor, v: &Tensor) -> emily::Result<()> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let ok = qs.len() == 4
        && ks.len() == 4
        && vs.len() == 4
        && qs[0] == ks[0]
        && ks[0] == vs[0]
        && ks[1] == vs[1]
        && ks[2] == vs[2]
        && qs[3] == ks[3]
        && ks[1] > 0
        && qs[1] % ks[1] == 0;
    if !ok {
        return Err(shape_err(
            "attention",
            format!("incompatible q {qs:?}, k {ks:?}, v {vs:?}"),
        ));
    }
    Ok(())
}

/// Attention of `q` over `k`/`v`, composed or fused (see the module docs).
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    a: Attend<'_>,
    fused: bool,
) -> emily::Result<Tensor> {
    let (b, hq, tq) = (q.shape()[0], q.shape()[1], q.shape()[2]);
    let (hkv, tk) = (k.shape()[1], k.shape()[2]);
    let fused = fused && a.dropout.is_none();
    // Which keys each query may see: a Bool mask broadcastable to (B, H, Tq, Tk).
    let mut keep: Option<Tensor> = None;
    let kj = || Tensor::iota(&[tq, tk], 1, DType::I64);
    let qi = || Tensor::iota(&[tq, tk], 0, DType::I64);
    // Key position of query 0 under the causal mask.
    let shift = match a.offset {
        Some(off) => offset_scalar(off)?,
        None => Tensor::from_slice(&[tk as i64 - tq as i64], &[])?,
    };
    // Causal masks (at an offset, with a window) go to the fused kernel as a
    // band, without a mask tensor, unless another mask joins them.
    let band = fused && a.causal && a.mask.is_none() && (a.offset.is_some() || a.window.is_some());
    if a.causal && !band && (!fused || a.mask.is_some() || a.offset.is_some()) {
        let last = qi()?.add(&shift)?;
        let mut k = kj()?.le(&last)?;
        if let Some(w) = a.window {
            k = k.logical_and(&kj()?.gt(&last.add_scalar(-(w as f64))?)?)?;
        }
        keep = Some(k);
    } else if let (false, Some(off)) = (a.causal, a.offset) {
        keep = Some(kj()?.lt(&offset_scalar(off)?.add_scalar(tq as f64)?)?);
    }
    let mut additive = None;
    if let Some((kind, m)) = a.mask {
        let m = match kind {
            AttentionMask::KeyPadding => {
                if m.shape() != [b, tk] {
                    return Err(shape_err(
                        "attention",
                        format!(
                            "a key padding mask must be [{b}, {tk}], got {:?}",
                            m.shape()
                        ),
                    ));
                }
                let m = if m.dtype() == DType::Bool {
                    m.clone()
                } else {
                    m.ne(&m.scalar_like(0.0))?
                };
                Some(m.reshape_to(&[b, 1, 1, tk])?)
            }
            AttentionMask::Boolean => {
                if m.dtype() != DType::Bool {
                    return Err(shape_err(
                        "attention",
                        format!("a boolean mask must be bool, got {}", m.dtype()),
                    ));
                }
                Some(m.clone())
            }
            AttentionMask::Additive => {
                additive = Some(m.cast(q.dtype())?);
                None
            }
            AttentionMask::None => None,
        };
        if let Some(m) = m {
            keep = Some(match keep {
                Some(k) => k.logical_and(&m)?,
                None => m,
            });
        }
    }
    let neg_inf = q.scalar_like(f64::NEG_INFINITY);
    if fused {
        let mask = match (keep, additive) {
            (None, None) if band => SdpaMask::CausalBand {
                offset: shift,
                window: a.window,
            },
            (None, None) if a.causal => SdpaMask::Causal,
            (None, None) => SdpaMask::None,
            (Some(k), None) => SdpaMask::Boolean(k),
            (None, Some(m)) => SdpaMask::Additive(m),
            (Some(k), Some(m)) => SdpaMask::Additive(Tensor::where_cond(&k, &m, &neg_inf)?),
        };
        let opts = SdpaOptions {
            scale: Some(a.scale),
            mask,
            sinks: None,
        };
        return if a.int8_products {
            emily::fast::scaled_dot_product_attention_int8(q, k, v, opts)
        } else {
            emily::fast::scaled_dot_product_attention(q, k, v, opts)
        };
    }
    // Keys and values of another dtype (a half-precision cache under f32
    // queries) join the composed products in the queries' dtype.
    let (k, v) = (&k.cast(q.dtype())?, &v.cast(q.dtype())?);
    // Grouped-query heads: the `groups` query heads of one kv head are
    // stacked as rows of one product, `(B, Hkv, groups·Tq, D)`, so kv heads
    // are never repeated (no copy forward, no sum over the group backward).
    let groups = hq / hkv;
    let (d, dv) = (q.shape()[3], v.shape()[3]);
    let mut scores = q
        .reshape_to(&[b, hkv, groups * tq, d])?
        .matmul(&k.t()?)?
        .reshape_to(&[b, hq, tq, tk])?
        .mul_scalar(a.scale as f64)?;
    if let Some(m) = additive {
        scores = scores.add(&m)?;
    }
    if let Some(keep) = keep {
        scores = Tensor::where_cond(&keep, &scores, &neg_inf)?;
    }
    let mut probs = upcast(&scores)?.softmax(-1)?.cast(q.dtype())?;
    if let Some((rate, noise)) = &a.dropout {
        probs = dropout::apply(&probs, noise, *rate)?;
    }
    probs
        .reshape_to(&[b, hkv, groups * tq, tk])?
        .matmul(v)?
        .reshape_to(&[b, hq, tq, dv])
}
