//! The crate's error type. Every variant that concerns a node names it.

use emily::DType;

/// Everything that can go wrong building, binding or running a model graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A core op rejected what a node asked of it (shapes, dtypes, options).
    #[error("node `{node}` ({op}): {source}")]
    Node {
        /// The node.
        node: String,
        /// Its op label.
        op: &'static str,
        /// What the core said.
        #[source]
        source: emily::Error,
    },
    /// Two nodes share a name.
    #[error("duplicate node name `{0}`")]
    DuplicateName(String),
    /// A node name that is empty or contains whitespace.
    #[error("invalid node name `{0}`: names must be non-empty and contain no whitespace")]
    InvalidName(String),
    /// A node reads a node that does not exist (or is not earlier in the graph).
    #[error("node `{node}`: input `{input}` is not an earlier node of the graph")]
    UnknownInput {
        /// The reading node.
        node: String,
        /// The missing input.
        input: String,
    },
    /// A node has the wrong number of inputs for its op and options.
    #[error("node `{node}` ({op}): expects {expected} inputs ({roles}), got {got}")]
    Arity {
        /// The node.
        node: String,
        /// Its op.
        op: &'static str,
        /// Inputs the options call for.
        expected: usize,
        /// The input roles, comma-separated.
        roles: String,
        /// Inputs given.
        got: usize,
    },
    /// A node's options are inconsistent.
    #[error("node `{node}` ({op}): invalid options: {msg}")]
    InvalidOptions {
        /// The node.
        node: String,
        /// Its op.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The model declares no outputs.
    #[error("the model has no outputs (call `ModelBuilder::output`)")]
    NoOutputs,
    /// A parameter a node needs is not in the store.
    #[error("node `{node}`: parameter `{param}` is missing from the parameter store")]
    MissingParam {
        /// The node.
        node: String,
        /// The full parameter name.
        param: String,
    },
    /// A parameter has the wrong shape.
    #[error("node `{node}`: parameter `{param}` has shape {actual:?}, expected {expected:?}")]
    ParamShape {
        /// The node.
        node: String,
        /// The full parameter name.
        param: String,
        /// The shape the node's options call for.
        expected: Vec<usize>,
        /// The stored shape.
        actual: Vec<usize>,
    },
    /// A parameter is not a float tensor (nor a block-quantised weight of a
    /// dense or embedding node in inference).
    #[error("node `{node}`: parameter `{param}` has dtype {dtype}, expected a float type (block-quantised only as the weight of a dense or embedding node, or an attention projection, in inference)")]
    ParamDType {
        /// The node.
        node: String,
        /// The full parameter name.
        param: String,
        /// The stored dtype.
        dtype: DType,
    },
    /// A model input was not supplied to a forward call.
    #[error("model input `{0}` was not supplied")]
    MissingInput(String),
    /// A forward call supplied a tensor for a name that is not a model input.
    #[error("`{0}` is not an input of the model")]
    UnexpectedInput(String),
    /// A supplied input does not match its declaration.
    #[error("input `{name}`: got {actual_shape:?} {actual_dtype}, declared {declared}")]
    InputMismatch {
        /// The input.
        name: String,
        /// The supplied shape.
        actual_shape: Vec<usize>,
        /// The supplied dtype.
        actual_dtype: DType,
        /// The declaration (shape with `?` for free dims, and dtype).
        declared: String,
    },
    /// A [`crate::State`] does not fit the model or the inputs.
    #[error("state `{name}`: {msg}")]
    State {
        /// The state entry (`"{node}.{slot}"`).
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// `map_nodes` changed something it may not (a name or the inputs).
    #[error("map_nodes: node `{node}`: {msg}")]
    Rewrite {
        /// The node.
        node: String,
        /// What changed.
        msg: String,
    },
    /// An operation needs the other [`crate::Mode`].
    #[error("{0}")]
    Mode(&'static str),
    /// A training component (parameters, gradients, optimizer state, loss
    /// scaler) got something it cannot use.
    #[error("{what}: {msg}")]
    Train {
        /// The component.
        what: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A checkpoint could not be written or read back.
    #[error("checkpoint `{path}`: {msg}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What went wrong (the tensor or field named).
        msg: String,
    },
    /// A core error not attributable to one node (e.g. evaluating a plan).
    #[error(transparent)]
    Core(#[from] emily::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
