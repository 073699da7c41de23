//! The model graph: named layer nodes in topological order, and its outputs.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::node::{Node, Op};
use crate::params::ParamSpec;

/// A DAG of named layer nodes. Nodes are kept in topological order (every
/// input is an earlier node); names are unique. Parameters are not part of
/// the model: see [`crate::ParamStore`] and [`Model::build`]. Cloning copies
/// the nodes (options are small).
#[derive(Clone, Debug)]
pub struct Model {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    outputs: Vec<usize>,
}

impl Model {
    /// Validates and assembles a model from nodes in topological order and
    /// the names of its outputs.
    pub(crate) fn from_parts(nodes: Vec<Node>, outputs: &[String]) -> Result<Model> {
        let mut index = HashMap::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            validate_node(n, &index)?;
            index.insert(n.name().to_string(), i);
        }
        if outputs.is_empty() {
            return Err(Error::NoOutputs);
        }
        let outputs = outputs
            .iter()
            .map(|o| {
                index.get(o).copied().ok_or_else(|| Error::UnknownInput {
                    node: "<outputs>".into(),
                    input: o.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            nodes,
            index,
            outputs,
        })
    }

    /// The nodes in topological order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if the model has no nodes (never, once built).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Names of the input nodes, in graph order (the order of a forward's
    /// positional arguments).
    pub fn inputs(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.op(), Op::Input(_)))
            .map(|n| n.name())
            .collect()
    }

    /// Names of the output nodes, in declaration order.
    pub fn outputs(&self) -> Vec<&str> {
        self.outputs.iter().map(|&i| self.nodes[i].name()).collect()
    }

    /// Every edge `(from, to)` of the graph, in node order then input order.
    pub fn edges(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.inputs()
                    .iter()
                    .map(move |i| (i.clone(), n.name().to_string()))
            })
            .collect()
    }

    /// Every parameter the model needs: `(store key, spec)` in node order.
    pub fn param_specs(&self) -> Vec<(String, ParamSpec)> {
        self.nodes
            .iter()
            .flat_map(|n| {
                crate::layers::param_specs(n.op())
                    .into_iter()
                    .map(move |s| (s.key(n.name()), s))
            })
            .collect()
    }

    /// Number of parameter elements the model needs.
    pub fn num_params(&self) -> usize {
        self.param_specs().iter().map(|(_, s)| s.numel()).sum()
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(crate) fn output_indices(&self) -> &[usize] {
        &self.outputs
    }

    /// Replaces the nodes (same names, same inputs: checked by the caller).
    pub(crate) fn with_nodes(&self, nodes: Vec<Node>) -> Result<Model> {
        let outputs: Vec<String> = self.outputs().iter().map(|s| s.to_string()).collect();
        Model::from_parts(nodes, &outputs)
    }
}

fn validate_node(n: &Node, earlier: &HashMap<String, usize>) -> Result<()> {
    let name = n.name();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(Error::InvalidName(name.to_string()));
    }
    if earlier.contains_key(name) {
        return Err(Error::DuplicateName(name.to_string()));
    }
    for i in n.inputs() {
        if !earlier.contains_key(i) {
            return Err(Error::UnknownInput {
                node: name.to_string(),
                input: i.clone(),
            });
        }
    }
    let roles = n.op().input_roles();
    if roles.len() != n.inputs().len() {
        return Err(Error::Arity {
            node: name.to_string(),
            op: n.op().name(),
            expected: roles.len(),
            roles: roles.join(", "),
            got: n.inputs().len(),
        });
    }
    n.op().validate().map_err(|msg| Error::InvalidOptions {
        node: name.to_string(),
        op: n.op().name(),
        msg,
    })?;
    if n.op().has_fused() != n.implementation().is_some() {
        return Err(Error::InvalidOptions {
            node: name.to_string(),
            op: n.op().name(),
            msg: "an implementation choice is set on an op without a fused form (or missing)"
                .into(),
        });
    }
    Ok(())
}
