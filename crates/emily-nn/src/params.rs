//! The parameter store: tensors keyed by `"{node}.{param}"`, kept apart from
//! the graph so one store serves a model and every rewrite of it.

use std::collections::BTreeMap;

use emily::Tensor;

/// How [`ParamStore::random`] fills a parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// A projection or convolution weight: normal with std `1/sqrt(fan_in)`.
    Weight {
        /// Inputs feeding each output.
        fan_in: usize,
    },
    /// A bias: small normal noise.
    Bias,
    /// A norm gain: normal around one.
    Gain,
    /// A lookup table (embeddings): unit-scale normal.
    Table,
}

/// A parameter a node needs: its name local to the node (`"weight"`,
/// `"q_proj.bias"`), its shape, and how to initialise it randomly.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Name relative to the node; the store key is `"{node}.{local}"`.
    pub local: String,
    /// Required shape.
    pub shape: Vec<usize>,
    /// Random initialisation.
    pub init: ParamInit,
}

impl ParamSpec {
    pub(crate) fn new(local: impl Into<String>, shape: Vec<usize>, init: ParamInit) -> ParamSpec {
        ParamSpec {
            local: local.into(),
            shape,
            init,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The store key of this parameter for `node`.
    pub fn key(&self, node: &str) -> String {
        format!("{node}.{}", self.local)
    }
}

/// Parameters keyed by `"{node}.{param}"` (Hugging Face-style names such as
/// `"model.layers.0.self_attn.q_proj.weight"`). Cloning is cheap (tensor
/// handles); building a model reads the store and never changes it.
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    params: BTreeMap<String, Tensor>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    /// Inserts (or replaces) a parameter; returns the previous tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        self.params.insert(name.into(), tensor)
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.params.get(name)
    }

    /// Whether `name` is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    /// Removes and returns a parameter.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.params.remove(name)
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of elements over all parameters.
    pub fn num_elements(&self) -> usize {
        self.params.values().map(|t| t.numel()).sum()
    }

    /// All parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The parameters of node `node` (keys starting with `"{node}."`).
    pub fn for_node<'a>(&'a self, node: &str) -> impl Iterator<Item = (&'a str, &'a Tensor)> + 'a {
        let prefix = format!("{node}.");
        self.params
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), v))
    }
}

impl FromIterator<(String, Tensor)> for ParamStore {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> ParamStore {
        ParamStore {
            params: iter.into_iter().collect(),
        }
    }
}

impl Extend<(String, Tensor)> for ParamStore {
    fn extend<I: IntoIterator<Item = (String, Tensor)>>(&mut self, iter: I) {
        self.params.extend(iter)
    }
}
