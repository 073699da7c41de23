//! Rotary position embedding over the last axis of `(…, T, D)`.
//!
//! The composed form is the one model libraries ship: a cos/sin table
//! (`max_positions × dims`, computed once per build in f64 and rounded to
//! f32) whose rows are picked by position, and `x·cos + rotate_half(x)·sin`.
//! The fused form is one `emily::fast::rope` node.

use emily::fast::{RopeOffset, RopeOptions};
use emily::{DType, Tensor};

use super::{offset_scalar, shape_err, Ctx, Locals};

/// The rotation itself: which features rotate and how fast.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    /// Leading features that rotate (even, ≤ head dim); the rest pass through.
    pub dims: usize,
    /// Frequency base: inverse frequency `i` is `base^(−2i/dims)`.
    pub base: f32,
    /// Position multiplier (linear scaling uses `1/factor`).
    pub scale: f32,
    /// Interleaved pairs `(2i, 2i+1)` (GPT-J) instead of split halves
    /// `(i, i + dims/2)` (Llama, "rotate half").
    pub traditional: bool,
    /// Rows of the composed form's cos/sin table (largest position + 1).
    pub max_positions: usize,
    /// Precomputed inverse frequencies (`dims/2` of them; Llama-3 or other
    /// scaled RoPE); `base` is then ignored.
    pub inv_freq: Option<Vec<f64>>,
}

impl RopeConfig {
    /// Split-half RoPE over `dims` features, base 10000, scale 1.
    pub fn new(dims: usize, max_positions: usize) -> RopeConfig {
        RopeConfig {
            dims,
            base: 10000.0,
            scale: 1.0,
            traditional: false,
            max_positions,
            inv_freq: None,
        }
    }

    /// Sets the base.
    pub fn base(mut self, base: f32) -> RopeConfig {
        self.base = base;
        self
    }

    /// Sets the position scale.
    pub fn scale(mut self, scale: f32) -> RopeConfig {
        self.scale = scale;
        self
    }

    /// Uses interleaved pairs.
    pub fn traditional(mut self) -> RopeConfig {
        self.traditional = true;
        self
    }

    /// Uses precomputed inverse frequencies.
    pub fn inv_freq(mut self, inv_freq: Vec<f64>) -> RopeConfig {
        self.inv_freq = Some(inv_freq);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.dims == 0 || !self.dims.is_multiple_of(2) {
            return Err(format!("rope dims {} must be even and positive", self.dims));
        }
        if self.max_positions == 0 {
            return Err("max_positions must be positive".into());
        }
        if let Some(f) = &self.inv_freq {
            if f.len() != self.dims / 2 {
                return Err(format!(
                    "{} inverse frequencies given, rope dims {} need {}",
                    f.len(),
                    self.dims,
                    self.dims / 2
                ));
            }
        }
        Ok(())
    }

    /// Inverse frequencies in f64 (explicit ones rounded through f32, as the
    /// fused op receives them).
    fn inverse_frequencies(&self) -> Vec<f64> {
        match &self.inv_freq {
            Some(f) => f.iter().map(|&v| v as f32 as f64).collect(),
            None => {
                let k = -2.0 * (self.base as f64).ln() / self.dims as f64;
                (0..self.dims / 2).map(|i| (i as f64 * k).exp()).collect()
            }
        }
    }

    /// The cos/sin tables `(max_positions, dims)` (and explicit inverse
    /// frequencies) under `"{prefix}.cos"`, `"{prefix}.sin"`, `"{prefix}.inv_freq"`.
    /// With `eager` false, lazy zeros of the same shapes.
    pub(crate) fn constants(
        &self,
        prefix: &str,
        eager: bool,
    ) -> emily::Result<Vec<(String, Tensor)>> {
        let (n, d, half) = (self.max_positions, self.dims, self.dims / 2);
        if !eager {
            let mut out = vec![
                (format!("{prefix}.cos"), Tensor::zeros(&[n, d], DType::F32)?),
                (format!("{prefix}.sin"), Tensor::zeros(&[n, d], DType::F32)?),
            ];
            if self.inv_freq.is_some() {
                out.push((
                    format!("{prefix}.inv_freq"),
                    Tensor::zeros(&[half], DType::F32)?,
                ));
            }
            return Ok(out);
        }
        let inv = self.inverse_frequencies();
        let (mut cos, mut sin) = (vec![0f32; n * d], vec![0f32; n * d]);
        for p in 0..n {
            for j in 0..d {
                let i = if self.traditional { j / 2 } else { j % half };
                let angle = p as f64 * self.scale as f64 * inv[i];
                cos[p * d + j] = angle.cos() as f32;
                sin[p * d + j] = angle.sin() as f32;
            }
        }
        let mut out = vec![
            (format!("{prefix}.cos"), Tensor::from_vec(cos, &[n, d])?),
            (format!("{prefix}.sin"), Tensor::from_vec(sin, &[n, d])?),
        ];
        if let Some(f) = &self.inv_freq {
            let f: Vec<f32> = f.iter().map(|&v| v as f32).collect();
            out.push((format!("{prefix}.inv_freq"), Tensor::from_vec(f, &[half])?));
        }
        Ok(out)
    }
}

/// Where a rotary node's positions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RotaryPositions {
    /// `start..start+T`, fixed (no input).
    Start(usize),
    /// `offset..offset+T` with a scalar integer offset input (cached decoding).
    Offset,
    /// One integer position per token, an input of shape `(T,)`.
    Ids,
}

impl RotaryPositions {
    pub(crate) fn input_role(self) -> Option<&'static str> {
        match self {
            RotaryPositions::Start(_) => None,
            RotaryPositions::Offset => Some("offset"),
            RotaryPositions::Ids => Some("positions"),
        }
    }
}

/// Options of a rotary-embedding node. Inputs: `x (…, T, D)` and, for
/// [`RotaryPositions::Offset`] / [`RotaryPositions::Ids`], the positions.
#[derive(Clone, Debug, PartialEq)]
pub struct RotaryOptions {
    /// The rotation.
    pub rope: RopeConfig,
    /// The positions.
    pub positions: RotaryPositions,
}

impl RotaryOptions {
    /// `rope` at positions `0..T`.
    pub fn new(rope: RopeConfig) -> RotaryOptions {
        RotaryOptions {
            rope,
            positions: RotaryPositions::Start(0),
        }
    }

    /// Sets where positions come from.
    pub fn positions(mut self, positions: RotaryPositions) -> RotaryOptions {
        self.positions = positions;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        self.rope.validate()
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let pos = match self.positions {
            RotaryPositions::Start(s) => Positions::Start(s),
            RotaryPositions::Offset => Positions::Offset(&ctx.inputs[1]),
            RotaryPositions::Ids => Positions::Ids(&ctx.inputs[1]),
        };
        apply(
            &self.rope,
            &ctx.inputs[0],
            pos,
            ctx.locals,
            "rope",
            ctx.fused,
        )
    }
}

/// Positions for [`apply`].
#[derive(Clone, Copy)]
pub(crate) enum Positions<'a> {
    /// Fixed start.
    Start(usize),
    /// Scalar offset tensor.
    Offset(&'a Tensor),
    /// `(T,)` position ids.
    Ids(&'a Tensor),
}

/// Rotates `x (…, T, D)`; `prefix` names the node's prepared tables.
pub(crate) fn apply(
    cfg: &RopeConfig,
    x: &Tensor,
    pos: Positions<'_>,
    locals: &Locals,
    prefix: &str,
    fused: bool,
) -> emily::Result<Tensor> {
    if x.rank() < 2 || cfg.dims > x.shape()[x.rank() - 1] {
        return Err(shape_err(
            "rotary_embedding",
            format!("x must be (…, T, D >= {}), got {:?}", cfg.dims, x.shape()),
        ));
    }
    let table = |name: &str| {
        locals.get(&format!("{prefix}.{name}")).ok_or_else(|| {
            super::invalid(
                "rotary_embedding",
                format!("table `{prefix}.{name}` not prepared"),
            )
        })
    };
    if fused {
        let offset = match pos {
            Positions::Start(s) => RopeOffset::Static(s),
            Positions::Offset(o) => RopeOffset::Scalar(o.clone()),
            Positions::Ids(p) => RopeOffset::Positions(p.clone()),
        };
        let opts = RopeOptions {
            dims: cfg.dims,
            traditional: cfg.traditional,
            base: cfg.base,
            scale: cfg.scale,
            offset,
        };
        return match cfg.inv_freq {
            Some(_) => emily::fast::rope_with_freqs(x, table("inv_freq")?, opts),
            None => emily::fast::rope(x, opts),
        };
    }
    let t = x.shape()[x.rank() - 2];
    let rows = |tab: &Tensor| -> emily::Result<Tensor> {
        match pos {
            Positions::Start(s) => {
                if s + t > cfg.max_positions {
                    return Err(shape_err(
                        "rotary_embedding",
                        format!(
                            "positions {s}..{} exceed max_positions {}",
                            s + t,
                            cfg.max_positions
                        ),
                    ));
                }
                tab.narrow(0, s, t)
            }
            Positions::Offset(o) => {
                tab.gather(&Tensor::arange(t, DType::I64)?.add(&offset_scalar(o)?)?, 0)
            }
            Positions::Ids(p) => tab.gather(p, 0),
        }
    };
    let cos = rows(table("cos")?)?.cast(x.dtype())?;
    let sin = rows(table("sin")?)?.cast(x.dtype())?;
    let d = x.shape()[x.rank() - 1];
    let xr = if cfg.dims < d {
        x.narrow(-1, 0, cfg.dims)?
    } else {
        x.clone()
    };
    let rotated = if cfg.traditional {
        rotate_every_two(&xr)?
    } else {
        rotate_half(&xr)?
    };
    let out = xr.mul(&cos)?.add(&rotated.mul(&sin)?)?;
    if cfg.dims < d {
        Tensor::concat(&[&out, &x.narrow(-1, cfg.dims, d - cfg.dims)?], -1)
    } else {
        Ok(out)
    }
}

/// `[x1, x2]` → `[−x2, x1]` over the last axis.
fn rotate_half(x: &Tensor) -> emily::Result<Tensor> {
    let half = x.shape()[x.rank() - 1] / 2;
    let x1 = x.narrow(-1, 0, half)?;
    let x2 = x.narrow(-1, half, half)?;
    Tensor::concat(&[&x2.neg()?, &x1], -1)
}

/// `(x0, x1, x2, x3, …)` → `(−x1, x0, −x3, x2, …)` over the last axis.
fn rotate_every_two(x: &Tensor) -> emily::Result<Tensor> {
    let mut pairs = x.shape().to_vec();
    let d = pairs.pop().unwrap_or(0);
    pairs.extend([d / 2, 2]);
    let p = x.reshape_to(&pairs)?;
    let even = p.narrow(-1, 0, 1)?;
    let odd = p.narrow(-1, 1, 1)?;
    Tensor::concat(&[&odd.neg()?, &even], -1)?.reshape_to(x.shape())
}
