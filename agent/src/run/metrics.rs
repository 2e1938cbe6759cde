//! `GET /metrics`: OpenMetrics text from prometheus-client. Labels stay low-cardinality (no
//! image, pod or digest): registry hosts, kinds, outcomes and error classes only.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PullLabels {
    registry: String,
    served_by_kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    location: String,
    error_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    component: String,
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoldedLabels {
    label: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    effective_digest: String,
}

pub struct Metrics {
    registry: Registry,
    pulls: Family<PullLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    config_valid: Gauge,
    config_info: Family<InfoLabels, Gauge>,
    matches_machineconfig: Gauge,
    crio_applied: Gauge<f64, AtomicU64>,
    journal_following: Gauge,
    push_failures: Counter,
    outbox_dropped: Counter,
    errors: Family<ErrorLabels, Counter>,
    folded: Family<FoldedLabels, Counter>,
}

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classic Prometheus text format (0.0.4) from OpenMetrics text, for scrapers that do not
/// ask for OpenMetrics (curl, `promtool check metrics`): counter families are named with their
/// `_total` suffix there, and there is no `# EOF` or `# UNIT`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            pulls: Family::default(),
            attempts: Family::default(),
            config_valid: Gauge::default(),
            config_info: Family::default(),
            matches_machineconfig: Gauge::default(),
            crio_applied: Gauge::default(),
            journal_following: Gauge::default(),
            push_failures: Counter::default(),
            outbox_dropped: Counter::default(),
            errors: Family::default(),
            folded: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "mirrorscope_pulls",
            "Image pulls seen in the journal, by requested registry, what served them (mirror, source, none) and outcome",
            m.pulls.clone(),
        );
        r.register(
            "mirrorscope_pull_attempts",
            "Locations tried by pulls, by registry host of the location and error class (none when it served the pull)",
            m.attempts.clone(),
        );
        r.register(
            "mirrorscope_registries_config_valid",
            "1 when the node's registries configuration loads without error",
            m.config_valid.clone(),
        );
        r.register(
            "mirrorscope_registries_config_info",
            "Canonical hash of the effective registries configuration in force (last valid one)",
            m.config_info.clone(),
        );
        r.register(
            "mirrorscope_registries_config_matches_machineconfig",
            "1 when registries.conf on disk equals the bytes of the MachineConfig the MCD applied (0 otherwise or without currentconfig)",
            m.matches_machineconfig.clone(),
        );
        r.register(
            "mirrorscope_crio_registries_applied_timestamp_seconds",
            "When CRI-O last logged Applied new registry configuration (Unix seconds; 0 when not seen)",
            m.crio_applied.clone(),
        );
        r.register(
            "mirrorscope_journal_following",
            "1 while the agent follows the journal",
            m.journal_following.clone(),
        );
        r.register(
            "mirrorscope_push_failures",
            "Failed pushes of the node report to the collector",
            m.push_failures.clone(),
        );
        r.register(
            "mirrorscope_outbox_dropped",
            "Pull records dropped unsent because the outbox was full",
            m.outbox_dropped.clone(),
        );
        r.register(
            "mirrorscope_errors",
            "Failures of the agent, by component and kind (each kind is also logged)",
            m.errors.clone(),
        );
        r.register(
            "mirrorscope_metric_labels_folded",
            "Samples counted under the label value other because the label already had its maximum number of distinct values",
            m.folded.clone(),
        );
        m
    }

    /// Counts one failure; the caller logs it.
    pub fn error(&self, component: &str, error_type: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                component: component.to_owned(),
                error_type: error_type.to_owned(),
            })
            .inc();
    }

    pub fn errors_by(&self, n: u64, component: &str, error_type: &str) {
        if n > 0 {
            self.errors
                .get_or_create(&ErrorLabels {
                    component: component.to_owned(),
                    error_type: error_type.to_owned(),
                })
                .inc_by(n);
        }
    }

    pub fn label_folded(&self, label: &str) {
        self.folded
            .get_or_create(&FoldedLabels {
                label: label.to_owned(),
            })
            .inc();
    }

    pub fn pull(&self, registry: &str, served_by_kind: &str, outcome: &str) {
        self.pulls
            .get_or_create(&PullLabels {
                registry: registry.to_owned(),
                served_by_kind: served_by_kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn attempt(&self, location: &str, error_class: &str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                location: location.to_owned(),
                error_class: error_class.to_owned(),
            })
            .inc();
    }

    pub fn set_config(&self, valid: bool, effective_digest: Option<&str>) {
        self.config_valid.set(i64::from(valid));
        self.config_info.clear();
        if let Some(h) = effective_digest {
            self.config_info
                .get_or_create(&InfoLabels {
                    effective_digest: h.to_owned(),
                })
                .set(1);
        }
    }

    pub fn set_matches_machineconfig(&self, matches: bool) {
        self.matches_machineconfig.set(i64::from(matches));
    }

    pub fn set_crio_applied(&self, unix_seconds: f64) {
        self.crio_applied.set(unix_seconds);
    }

    pub fn set_following(&self, following: bool) {
        self.journal_following.set(i64::from(following));
    }

    pub fn push_failed(&self) {
        self.push_failures.inc();
    }

    pub fn outbox_dropped(&self, n: u64) {
        self.outbox_dropped.inc_by(n);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_their_suffix() {
        let m = Metrics::new();
        m.pull("quay.io", "mirror", "pulled");
        m.push_failed();
        let om = m.encode();
        assert!(om.contains("# TYPE mirrorscope_pulls counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let text = to_prometheus_text(&om);
        assert!(
            text.contains("# TYPE mirrorscope_pulls_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP mirrorscope_push_failures_total Failed"),
            "{text}"
        );
        assert!(text.contains(
            "mirrorscope_pulls_total{registry=\"quay.io\",served_by_kind=\"mirror\",outcome=\"pulled\"} 1\n"
        ), "{text}");
        assert!(text.contains("# TYPE mirrorscope_journal_following gauge\n"));
        assert!(!text.contains("# EOF"));
    }
}
