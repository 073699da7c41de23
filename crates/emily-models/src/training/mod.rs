//! Training recipes on real data: a handwritten-digits classifier (the 8×8
//! digits set that scikit-learn's wheel bundles, fetched by
//! `scripts/fetch-data.sh`) and a small Llama-style byte language model on a
//! public-domain text the repository ships. Each has its dataset loader
//! (every malformed line or byte an error naming the file), its `emily-nn`
//! model, and a training loop that reports each step to a callback (the CLI
//! draws a progress bar from it).

pub mod bytelm;
pub mod digits;
mod rng;

/// What can go wrong loading data or training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dataset file is missing or malformed.
    #[error("{path}: {msg}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong (with the line number where it applies).
        msg: String,
    },
    /// The model graph or a training component failed.
    #[error(transparent)]
    Nn(#[from] emily_nn::Error),
    /// A tensor op failed.
    #[error(transparent)]
    Core(#[from] emily::Error),
}

/// Result alias for the training recipes.
pub type Result<T> = std::result::Result<T, Error>;
