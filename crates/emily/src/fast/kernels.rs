//! The one switch between fused kernels and composed primitives.

/// Which implementation runs the transformer ops that have both (RMSNorm,
/// LayerNorm, RoPE, attention): one fused node each, or the same math
/// composed from primitive ops. Every layer takes this one type: a compile
/// option ([`crate::CompileOptions`]), a model-graph node's implementation
/// (`emily_nn`), a model loader's choice (`emily_models`), the CLI's
/// `--no-fast-kernels`. There is no process-wide setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// One fused node per op, run by the backend's fused kernel where it has
    /// one (otherwise lowered to the op's decomposition, a visible fallback).
    #[default]
    Fused,
    /// Composed from primitive ops (the numerics spec; debugging, autodiff).
    Composed,
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kernels::Fused => "fused",
            Kernels::Composed => "composed",
        })
    }
}
