//! Shape inference: run the graph on lazy zeros (nothing is computed) and
//! read every node's shape.

use std::collections::HashMap;

use emily::{DType, Tensor};

use crate::build::Mode;
use crate::error::{Error, Result};
use crate::exec::{Program, Recorder};
use crate::graph::Model;
use crate::layers::{self, Locals};
use crate::node::Op;

impl Model {
    /// The output shape of every node, in node order, for model inputs of
    /// the given shapes (inputs not listed use their declared shape, which
    /// must then be fully known). Parameters are stand-in zeros and nothing
    /// is computed.
    pub fn infer_shapes(&self, inputs: &[(&str, &[usize])]) -> Result<Vec<(String, Vec<usize>)>> {
        let shapes = self.node_shapes(|name, decl| {
            if let Some((_, s)) = inputs.iter().find(|(n, _)| *n == name) {
                return Ok(s.to_vec());
            }
            decl.iter()
                .map(|d| d.ok_or_else(|| Error::MissingInput(name.to_string())))
                .collect()
        })?;
        Ok(self
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .zip(shapes)
            .collect())
    }

    /// Shapes with free input dims shown as `None`: two lazy runs with the
    /// free dims at different sizes; dims that differ are free. `None` if the
    /// graph cannot run on such small probes.
    pub(crate) fn probe_shapes(&self) -> Option<Vec<Vec<Option<usize>>>> {
        let run = |free: usize| {
            self.node_shapes(|_, decl| Ok(decl.iter().map(|d| d.unwrap_or(free)).collect()))
                .ok()
        };
        let (a, b) = (run(2)?, run(3)?);
        Some(
            a.into_iter()
                .zip(b)
                .map(|(x, y)| {
                    if x.len() != y.len() {
                        return Vec::new();
                    }
                    x.iter()
                        .zip(&y)
                        .map(|(p, q)| (p == q).then_some(*p))
                        .collect()
                })
                .collect(),
        )
    }

    fn node_shapes(
        &self,
        mut input_shape: impl FnMut(&str, &[Option<usize>]) -> Result<Vec<usize>>,
    ) -> Result<Vec<Vec<usize>>> {
        let mut args = Vec::new();
        let mut float = None;
        for n in self.nodes() {
            if let Op::Input(decl) = n.op() {
                let shape = input_shape(n.name(), &decl.shape)?;
                if decl.dtype.is_float() && float.is_none() {
                    float = Some(decl.dtype);
                }
                args.push(Tensor::zeros(&shape, decl.dtype)?);
            }
        }
        let dtype = float.unwrap_or(DType::F32);
        let locals = self
            .nodes()
            .iter()
            .map(|n| {
                let mut l: Locals = HashMap::new();
                for spec in layers::param_specs(n.op()) {
                    l.insert(spec.local.clone(), Tensor::zeros(&spec.shape, dtype)?);
                }
                let consts = layers::constants(n.op(), false).map_err(|source| Error::Node {
                    node: n.name().into(),
                    op: n.label(),
                    source,
                })?;
                l.extend(consts);
                Ok(l)
            })
            .collect::<Result<Vec<_>>>()?;
        let (program, _) = Program::new(self.clone(), locals, Mode::Inference);
        let values = program.run_all(&args, &mut Recorder::default())?;
        Ok(values.iter().map(|t| t.shape().to_vec()).collect())
    }
}
