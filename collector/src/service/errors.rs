//! Every failure kind of the collector, counted once where it is logged, and exported as
//! `mirrorscope_errors_total{component,error_type}` so an alert can see what a log line says.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters keyed by (component, error type); both are fixed strings, so the label set is bounded.
#[derive(Debug, Default)]
pub struct Errors {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Errors {
    pub fn count(&self, component: &'static str, error_type: &'static str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((component, error_type)).or_default() += 1;
    }

    /// Counts one failure; true when it is the first of its kind (the one to log).
    pub fn count_first(&self, component: &'static str, error_type: &'static str) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry((component, error_type)).or_default();
        *n += 1;
        *n == 1
    }

    /// Counts `n` failures of one kind at once.
    pub fn add(&self, component: &'static str, error_type: &'static str, n: u64) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((component, error_type)).or_default() += n;
    }

    pub fn snapshot(&self) -> Vec<((&'static str, &'static str), u64)> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| (*k, *v)).collect()
    }
}
