//! Rewriting nodes: `map_nodes` changes options and implementations, never
//! names or edges, and never touches parameters (they live in the store).

use crate::error::{Error, Result};
use crate::graph::Model;
use crate::node::Node;

impl Model {
    /// A new model with every node passed through `f`. `f` may change a
    /// node's options ([`Node::op_mut`]) and implementation
    /// ([`Node::set_implementation`]); a node whose name or inputs differ
    /// from the original is an error, so the topology and the parameter
    /// keys are unchanged. The result is validated like a built model.
    ///
    /// ```
    /// use emily::DType;
    /// use emily::Kernels;
    /// use emily_nn::{ModelBuilder, Op, RmsNormOptions};
    /// let mut b = ModelBuilder::new();
    /// let x = b.input("x", &[None, Some(8)], DType::F32)?;
    /// let y = b.rms_norm("norm", &x, RmsNormOptions::new(8))?;
    /// b.output(&y)?;
    /// let model = b.build()?;
    /// let fast = model.map_nodes(|n| match n.op() {
    ///     Op::RmsNorm(_) => n.with_implementation(Kernels::Fused),
    ///     _ => n,
    /// })?;
    /// assert_eq!(fast.node("norm").unwrap().implementation(), Some(Kernels::Fused));
    /// assert_eq!(model.node("norm").unwrap().implementation(), Some(Kernels::Composed));
    /// # Ok::<(), emily_nn::Error>(())
    /// ```
    pub fn map_nodes<F: FnMut(Node) -> Node>(&self, mut f: F) -> Result<Model> {
        let nodes = self
            .nodes()
            .iter()
            .map(|old| {
                let new = f(old.clone());
                if new.name() != old.name() {
                    return Err(Error::Rewrite {
                        node: old.name().to_string(),
                        msg: format!("renamed to `{}` (names key the parameters)", new.name()),
                    });
                }
                if new.inputs() != old.inputs() {
                    return Err(Error::Rewrite {
                        node: old.name().to_string(),
                        msg: format!(
                            "inputs changed from {:?} to {:?}",
                            old.inputs(),
                            new.inputs()
                        ),
                    });
                }
                Ok(new)
            })
            .collect::<Result<Vec<_>>>()?;
        self.with_nodes(nodes)
    }
}
