//! 1-D convolution over `(N, C, L)` with an optional bias per output channel.

use emily::Tensor;

use super::Ctx;
use crate::params::{ParamInit, ParamSpec};

/// Options of a 1-D convolution. Parameters: `weight`
/// `(out_channels, in_channels / groups, kernel_size)`, `bias` `(out_channels)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv1dOptions {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel taps.
    pub kernel_size: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zeros added on both sides.
    pub padding: usize,
    /// Spacing between taps.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
    /// Whether a bias is added.
    pub bias: bool,
    /// Whether the input is channels-last `(N, L, C_in)` and the output
    /// `(N, L', C_out)` (time-major, as a Transformer after the convolution
    /// wants it; [`emily::fast::conv1d_channels_last`]) instead of `(N, C, L)`.
    /// Dilation and groups must be 1.
    pub channels_last: bool,
}

impl Conv1dOptions {
    /// Stride 1, no padding, dilation 1, one group, with a bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Conv1dOptions {
        Conv1dOptions {
            in_channels,
            out_channels,
            kernel_size,
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
            channels_last: false,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Conv1dOptions {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> Conv1dOptions {
        self.padding = padding;
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: usize) -> Conv1dOptions {
        self.dilation = dilation;
        self
    }

    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Conv1dOptions {
        self.groups = groups;
        self
    }

    /// Takes channels-last input and gives channels-last output (see the
    /// `channels_last` field).
    pub fn channels_last(mut self) -> Conv1dOptions {
        self.channels_last = true;
        self
    }

    /// Drops the bias.
    pub fn without_bias(mut self) -> Conv1dOptions {
        self.bias = false;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let Conv1dOptions {
            in_channels: i,
            out_channels: o,
            kernel_size: k,
            stride,
            dilation,
            groups: g,
            ..
        } = *self;
        if i == 0 || o == 0 || k == 0 || stride == 0 || dilation == 0 || g == 0 {
            return Err(
                "channels, kernel size, stride, dilation and groups must be positive".into(),
            );
        }
        if self.channels_last && (dilation != 1 || g != 1) {
            return Err("a channels-last convolution needs dilation 1 and one group".into());
        }
        if i % g != 0 || o % g != 0 {
            return Err(format!(
                "groups {g} must divide in_channels {i} and out_channels {o}"
            ));
        }
        Ok(())
    }

    pub(crate) fn specs(&self) -> Vec<ParamSpec> {
        let fan_in = self.in_channels / self.groups * self.kernel_size;
        let mut s = vec![ParamSpec::new(
            "weight",
            vec![
                self.out_channels,
                self.in_channels / self.groups,
                self.kernel_size,
            ],
            ParamInit::Weight { fan_in },
        )];
        if self.bias {
            s.push(ParamSpec::new(
                "bias",
                vec![self.out_channels],
                ParamInit::Bias,
            ));
        }
        s
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        if self.channels_last {
            let (x, w) = (&ctx.inputs[0], ctx.local("weight")?);
            let y = if ctx.fused {
                emily::fast::conv1d_channels_last(x, w, self.stride, self.padding)?
            } else {
                emily::fast::composed::conv1d_channels_last(x, w, self.stride, self.padding)?
            };
            // The bias runs along the last axis.
            return match ctx.local_opt("bias", self.bias)? {
                Some(b) => y.add(b),
                None => Ok(y),
            };
        }
        let y = ctx.inputs[0].conv1d(
            ctx.local("weight")?,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )?;
        match ctx.local_opt("bias", self.bias)? {
            Some(b) => y.add(&b.reshape_to(&[self.out_channels, 1])?),
            None => Ok(y),
        }
    }
}
