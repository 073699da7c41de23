//! A seeded shuffle for minibatches (deterministic for a seed).

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A seeded generator of example orders.
pub(crate) struct Shuffler(rand::rngs::StdRng);

impl Shuffler {
    pub(crate) fn new(seed: u64) -> Shuffler {
        Shuffler(rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// `0..n` in a fresh random order.
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        v.shuffle(&mut self.0);
        v
    }

    /// A uniform index below `n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        use rand::Rng;
        self.0.gen_range(0..n)
    }
}
