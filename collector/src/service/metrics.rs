//! `GET /metrics`: cluster-level series in the OpenMetrics text format, built from the store at
//! each scrape (the state is the source of truth; nothing is double-counted across restarts of
//! the agents).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use mirrorscope_core::api::{AuditView, RegistriesView, RolloutView};

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The last audit's images by verdict (each image counted once, at its worst verdict under any
/// configuration), and when an audit last finished.
fn register_audit(reg: &mut Registry, audit: &AuditView) {
    if !audit.enabled {
        return;
    }
    let images = Family::<Labels, Gauge>::default();
    if let Some(run) = &audit.last {
        let s = &run.summary;
        for (verdict, n) in [
            ("mirror", s.mirror),
            ("source", s.source),
            ("fail", s.fail),
            ("unknown", s.unknown),
        ] {
            images
                .get_or_create(&labels(&[("verdict", verdict)]))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    reg.register(
        "mirrorscope_audit_images",
        "Images the cluster uses by the last audit's verdict (mirror, source, fail, unknown)",
        images,
    );
    let last = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    if let Some(run) = &audit.last {
        if let Some(t) = mirrorscope_core::time::parse_rfc3339_secs(&run.finished_at) {
            last.set(t);
        }
    }
    reg.register(
        "mirrorscope_audit_last_success_timestamp_seconds",
        "When the last audit finished (Unix seconds; 0 before the first)",
        last,
    );
}

/// Encodes the metrics; `counters` are (reports, pulls accepted, pulls duplicate).
pub fn render(
    rollout: &RolloutView,
    registries: &RegistriesView,
    counters: (u64, u64, u64),
    errors: &[((&'static str, &'static str), u64)],
    audit: &AuditView,
) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    register_audit(&mut reg, audit);

    let errs = Family::<Labels, Counter>::default();
    for ((component, error_type), n) in errors {
        errs.get_or_create(&labels(&[
            ("component", component),
            ("error_type", error_type),
        ]))
        .inc_by(*n);
    }
    reg.register(
        "mirrorscope_errors",
        "Failures by component and kind (each is also logged once)",
        errs,
    );

    let nodes = Family::<Labels, Gauge>::default();
    for p in &rollout.pools {
        let s = &p.summary;
        let pool = p.pool.as_str();
        nodes
            .get_or_create(&labels(&[("pool", pool), ("state", "landed")]))
            .set(s.landed as i64);
        nodes
            .get_or_create(&labels(&[("pool", pool), ("state", "lagging")]))
            .set((s.lagging - s.stale.min(s.lagging)) as i64);
        nodes
            .get_or_create(&labels(&[("pool", pool), ("state", "stale")]))
            .set(s.stale as i64);
    }
    reg.register(
        "mirrorscope_nodes",
        "Nodes per pool by rollout state (landed, lagging, stale)",
        nodes,
    );

    let refused = Gauge::<i64>::default();
    refused.set(i64::from(rollout.target.kind == "refused"));
    reg.register(
        "mirrorscope_desired_refused",
        "1 when MCO would refuse to render the desired objects (nodes keep the old config)",
        refused,
    );

    let pulls = Family::<Labels, Counter>::default();
    let fallbacks = Family::<Labels, Counter>::default();
    let blocked = Family::<Labels, Counter>::default();
    let unmirrored = Family::<Labels, Gauge>::default();
    for r in &registries.registries {
        let reg_name = r.registry.as_str();
        for (kind, outcome, n) in [
            ("mirror", "pulled", r.by_mirror),
            ("source", "pulled", r.by_source),
            ("none", "failed", r.failed),
        ] {
            pulls
                .get_or_create(&labels(&[
                    ("registry", reg_name),
                    ("served_by_kind", kind),
                    ("outcome", outcome),
                ]))
                .inc_by(n);
        }
        fallbacks
            .get_or_create(&labels(&[("registry", reg_name)]))
            .inc_by(r.fallbacks);
        blocked
            .get_or_create(&labels(&[("registry", reg_name)]))
            .inc_by(r.blocked);
        if r.mirror_rule == Some(false) {
            unmirrored
                .get_or_create(&labels(&[("registry", reg_name)]))
                .set(1);
        }
    }
    reg.register(
        "mirrorscope_cluster_pulls",
        "Pulls reported by all agents, by source registry, served kind and outcome",
        pulls,
    );
    reg.register(
        "mirrorscope_cluster_fallbacks",
        "Pulls served by the source after a mirror was tried",
        fallbacks,
    );
    reg.register(
        "mirrorscope_cluster_blocked",
        "Pulls that failed because the source is blocked and no mirror served them",
        blocked,
    );
    reg.register(
        "mirrorscope_registry_without_mirror_rule",
        "1 for a registry pulled from with no mirror rule",
        unmirrored,
    );

    let (reports, accepted, duplicates) = counters;
    let c = Counter::<u64>::default();
    c.inc_by(reports);
    reg.register("mirrorscope_collector_reports", "Reports accepted", c);
    let recs = Family::<Labels, Counter>::default();
    recs.get_or_create(&labels(&[("result", "accepted")]))
        .inc_by(accepted);
    recs.get_or_create(&labels(&[("result", "duplicate")]))
        .inc_by(duplicates);
    reg.register(
        "mirrorscope_collector_pull_records",
        "Pull records received, new or duplicate",
        recs,
    );

    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}
