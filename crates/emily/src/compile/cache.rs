//! The plan cache of one compiled function: least recently used plans are
//! evicted above an entry limit or a byte budget (an evicted signature is
//! traced again on its next call). Sizes are reported process-wide through
//! [`crate::memory::stats`].

use std::collections::HashMap;
use std::sync::Arc;

use super::plan::Plan;
use super::Signature;
use crate::memory;

/// How many plans, and how many bytes of plans, one compiled function keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanCacheLimits {
    /// Most plans kept (at least one is always kept).
    pub max_plans: usize,
    /// Most bytes kept ([`Plan::bytes`] summed); the most recently used plan
    /// is kept even when it alone is larger.
    pub max_bytes: usize,
}

impl Default for PlanCacheLimits {
    /// 64 plans and 64 MiB per compiled function: a Whisper decoder step
    /// (about 0.8 MB per prompt length) keeps its 64 most recent prompt
    /// lengths; an LLM's handful of prefill buckets and one decode step fit.
    fn default() -> Self {
        PlanCacheLimits {
            max_plans: 64,
            max_bytes: 64 << 20,
        }
    }
}

struct Entry {
    plan: Arc<Plan>,
    bytes: usize,
    last_used: u64,
}

/// Plans by signature, with least-recently-used eviction.
pub(super) struct PlanCache {
    limits: PlanCacheLimits,
    entries: HashMap<Signature, Entry>,
    clock: u64,
    bytes: usize,
}

impl PlanCache {
    pub(super) fn new(limits: PlanCacheLimits) -> PlanCache {
        PlanCache {
            limits,
            entries: HashMap::new(),
            clock: 0,
            bytes: 0,
        }
    }

    /// The plan for `sig`, marked as just used.
    pub(super) fn get(&mut self, sig: &Signature) -> Option<Arc<Plan>> {
        self.clock += 1;
        let e = self.entries.get_mut(sig)?;
        e.last_used = self.clock;
        Some(e.plan.clone())
    }

    /// Caches `plan` for `sig` (keeping a plan another thread cached first)
    /// and evicts least recently used plans over the limits. Returns the
    /// cached plan.
    pub(super) fn insert(&mut self, sig: Signature, plan: Arc<Plan>) -> Arc<Plan> {
        if let Some(p) = self.get(&sig) {
            return p;
        }
        let bytes = plan.bytes();
        self.entries.insert(
            sig,
            Entry {
                plan: plan.clone(),
                bytes,
                last_used: self.clock,
            },
        );
        self.bytes += bytes;
        memory::plan_cache_added(bytes);
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.max_plans || self.bytes > self.limits.max_bytes)
        {
            self.evict_oldest();
        }
        plan
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(s, _)| s.clone());
        if let Some(e) = oldest.and_then(|s| self.entries.remove(&s)) {
            self.bytes -= e.bytes;
            memory::plan_cache_removed(e.bytes);
            tracing::debug!(
                target: "emily::compile",
                bytes = e.bytes,
                kept = self.entries.len(),
                kept_bytes = self.bytes,
                "evicted the least recently used plan"
            );
        }
    }

    /// Number of cached plans.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the cached plans.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for PlanCache {
    fn drop(&mut self) {
        for e in self.entries.values() {
            memory::plan_cache_removed(e.bytes);
        }
    }
}
