//! `GET /`: the status page. Server-rendered, no scripts, no external assets; every string that
//! comes from a report or the journal goes through [`esc`].

use std::fmt::Write as _;

use mirrorscope_core::api::AuditView;

use mirrorscope_core::api::{pool_label, NodesView, RegistriesView, RolloutView};
use mirrorscope_core::journal::{PullOutcome, PullRecord};

/// HTML-escapes text for element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
.ok{color:#17692d}.bad{color:#a11}.muted{color:#777}code{font-size:90%}.nw{white-space:nowrap}\
.img{max-width:30em}.err{overflow-wrap:anywhere;min-width:16em}td ul{margin:0;padding-left:1.1em}\
.empty{border:1px solid #d9a400;background:#fff8e0;padding:.6em 1em;max-width:48em}\
.empty pre{margin:.4em 0}.cls{font-family:monospace;font-size:90%}";

/// Renders the whole page: the state first (target, pools, nodes, images, registries, pulls),
/// then the notes about how the desired state was computed.
pub fn page(
    rollout: &RolloutView,
    nodes: &NodesView,
    registries: &RegistriesView,
    troubled: &[std::sync::Arc<PullRecord>],
    notes: &[String],
    kube_error: Option<&str>,
    audit: &AuditView,
) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\"><title>mirrorscope</title><style>{STYLE}</style></head><body><h1>mirrorscope</h1>"
    );
    if nodes.nodes.is_empty() {
        empty_state(&mut h);
    }
    target_line(&mut h, &rollout.target);
    if let Some(e) = kube_error {
        let _ = write!(h, "<p class=\"bad\">API server: {}</p>", esc(e));
    }
    if !nodes.nodes.is_empty() {
        pools_table(&mut h, rollout);
    }
    audit_section(&mut h, audit);
    if !nodes.nodes.is_empty() {
        nodes_table(&mut h, nodes);
        registries_table(&mut h, registries);
        pulls_table(&mut h, troubled);
    }
    if !notes.is_empty() {
        h.push_str("<h2>Notes on the desired configuration</h2><ul id=\"notes\" class=\"muted\">");
        for n in notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

/// No agent has reported: empty tables would say nothing, so say that and what to check.
fn empty_state(h: &mut String) {
    h.push_str("<div class=\"empty\" id=\"empty\"><p><b>No agent has reported to this collector yet.</b> Check the agents' DaemonSet and an agent's log:</p><pre>");
    for c in mirrorscope_core::api::NO_AGENT_CHECKS {
        let _ = writeln!(h, "{}", esc(c));
    }
    h.push_str("</pre></div>");
}

fn target_line(h: &mut String, t: &mirrorscope_core::api::TargetView) {
    let target = match t.kind.as_str() {
        "desired" => format!(
            "desired configuration <code>{}</code> from {}",
            esc(t.digest.as_deref().unwrap_or("")),
            esc(t.origin.as_deref().unwrap_or(""))
        ),
        "refused" => format!(
            "<span class=\"bad\">{}</span>",
            esc(t.reason.as_deref().unwrap_or(""))
        ),
        _ => "no desired state: nodes are compared with each other".to_string(),
    };
    let _ = write!(h, "<p id=\"target\">Target: {target}</p>");
}

fn pools_table(h: &mut String, rollout: &RolloutView) {
    h.push_str("<h2>Rollout per pool</h2><table id=\"pools\"><tr><th>pool</th><th>nodes</th><th>landed</th><th>lagging</th><th>stale</th></tr>");
    for p in &rollout.pools {
        let s = &p.summary;
        let cls = if s.complete { "ok" } else { "bad" };
        let _ = write!(
            h,
            "<tr><td class=\"nw\">{}</td><td>{}</td><td class=\"{cls}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(pool_label(&p.pool)),
            s.total,
            s.landed,
            s.lagging,
            s.stale
        );
    }
    h.push_str("</table>");
}

fn nodes_table(h: &mut String, nodes: &NodesView) {
    h.push_str("<h2>Nodes</h2><table id=\"nodes\"><tr><th>node</th><th>pool</th><th>state</th><th>effective configuration</th><th>last report</th><th>why not landed</th></tr>");
    for n in &nodes.nodes {
        let (cls, state) = match (n.landed, n.stale) {
            (true, _) => ("ok", "landed"),
            (false, true) => ("bad", "stale"),
            (false, false) => ("bad", "lagging"),
        };
        // The MachineConfigNode's phase (draining, rebooting, ...) says what the node is doing.
        let state = match &n.mcn_phase {
            Some(p) if !n.landed => format!("{state} ({})", esc(p)),
            _ => state.to_string(),
        };
        let _ = write!(
            h,
            "<tr class=\"node\" data-node=\"{}\"><td class=\"nw\">{}</td><td class=\"nw\">{}</td><td class=\"{cls} nw\">{state}</td><td><code>{}</code></td><td class=\"nw\">{}</td><td>",
            esc(&n.node),
            esc(&n.node),
            esc(pool_label(&n.pool)),
            esc(n.effective_digest.as_deref().map(short).unwrap_or("-")),
            n.last_report_at
                .as_deref()
                .map_or_else(|| "never".to_string(), |t| timestamp(Some(t))),
        );
        if !n.reasons.is_empty() {
            h.push_str("<ul class=\"reasons\">");
            for r in &n.reasons {
                let _ = write!(h, "<li>{}</li>", esc(r));
            }
            h.push_str("</ul>");
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table>");
}

fn registries_table(h: &mut String, registries: &RegistriesView) {
    h.push_str("<h2>Registries with fallbacks or failures</h2>");
    let troubled: Vec<_> = registries
        .registries
        .iter()
        .filter(|r| r.fallbacks + r.blocked + r.failed > 0 || r.mirror_rule == Some(false))
        .collect();
    if troubled.is_empty() {
        let _ = write!(
            h,
            "<p class=\"ok\" id=\"registries\">No registry had a fallback, a blocked or failed pull, or a pull with no mirror rule ({} registr{} pulled from).</p>",
            registries.registries.len(),
            if registries.registries.len() == 1 { "y" } else { "ies" }
        );
        return;
    }
    h.push_str("<table id=\"registries\"><tr><th>registry</th><th>pulls</th><th>by mirror</th><th>by source</th><th>fallbacks</th><th>blocked</th><th>failed</th><th>mirror rule</th></tr>");
    for r in troubled {
        let rule = match r.mirror_rule {
            Some(true) => "yes",
            Some(false) => "<span class=\"bad\">none</span>",
            None => "?",
        };
        let _ = write!(
            h,
            "<tr><td class=\"nw\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rule}</td></tr>",
            esc(&r.registry),
            r.pulls,
            r.by_mirror,
            r.by_source,
            r.fallbacks,
            r.blocked,
            r.failed
        );
    }
    h.push_str("</table>");
}

/// Pulls that fell back to their source or did not pull, with every location's error, the cause
/// first (a blocked source only says that nothing was left to try).
fn pulls_table(h: &mut String, troubled: &[std::sync::Arc<PullRecord>]) {
    h.push_str("<h2>Recent fallbacks and failures</h2>");
    if troubled.is_empty() {
        h.push_str(
            "<p class=\"ok\" id=\"pulls\">No recent pull fell back to its source or failed.</p>",
        );
        return;
    }
    h.push_str("<table id=\"pulls\"><tr><th>started</th><th>node</th><th>image</th><th>outcome</th><th>served by</th><th>fallback</th><th>errors, cause first</th></tr>");
    for p in troubled {
        let outcome_cls = match p.outcome {
            PullOutcome::Pulled => "ok",
            _ => "bad",
        };
        let _ = write!(
            h,
            "<tr class=\"pull\" data-pull=\"{}\"><td class=\"nw\">{}</td><td class=\"nw\">{}</td><td class=\"img\">{}</td><td class=\"{outcome_cls} nw\">{}</td><td class=\"img\">{}</td><td>{}</td><td class=\"err\">",
            esc(&p.pull_id),
            timestamp(p.started_at.as_deref()),
            esc(p.node.as_deref().unwrap_or("-")),
            breakable(&p.image),
            p.outcome.as_str(),
            breakable(p.served_by.as_deref().unwrap_or("-")),
            if p.fallback { "<span class=\"bad\">yes</span>" } else { "no" },
        );
        let errors = p.errors_cause_first();
        if !errors.is_empty() {
            h.push_str("<ul>");
            for (attempt, e) in errors {
                h.push_str("<li>");
                if let Some(a) = attempt {
                    let _ = write!(h, "<code>{}</code> ", breakable(&a.reference));
                    if let Some(c) = a.error_class {
                        let _ = write!(h, "<span class=\"cls\">{}</span>: ", c.as_str());
                    }
                }
                let _ = write!(h, "{}</li>", esc(e));
            }
            h.push_str("</ul>");
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table>");
}

/// Images the last audit found that fail, or that only their source serves, with the first
/// finding's fix: what to do before a node tries.
fn audit_section(h: &mut String, audit: &AuditView) {
    if !audit.enabled {
        return;
    }
    h.push_str("<h2>Images that will not pull</h2>");
    let Some(run) = &audit.last else {
        let state = if audit.running {
            "the first audit is running"
        } else {
            "no audit has finished yet"
        };
        let _ = write!(h, "<p class=\"muted\" id=\"audit\">{state}</p>");
        if let Some(e) = &audit.last_error {
            let _ = write!(h, "<p class=\"bad\">audit: {}</p>", esc(e));
        }
        return;
    };
    let _ = write!(
        h,
        "<p id=\"audit\">{} (audit of {}{})</p>",
        esc(&run.summary.to_string()),
        esc(&run.finished_at),
        if run.probed {
            ""
        } else {
            ", without probing the registries"
        }
    );
    if let Some(e) = &audit.last_error {
        let _ = write!(
            h,
            "<p class=\"bad\">the latest audit failed: {}</p>",
            esc(e)
        );
    }
    h.push_str("<table id=\"audit-images\"><tr><th>image</th><th>verdict</th><th>nodes</th><th>used by</th><th>finding</th><th>fix</th></tr>");
    for c in &run.configurations {
        let nodes = if c.desired {
            "desired configuration".to_string()
        } else {
            format!(
                "{} node{}",
                c.nodes.len(),
                if c.nodes.len() == 1 { "" } else { "s" }
            )
        };
        for e in c.images.iter().filter(|e| {
            e.verdict
                .at_or_past(mirrorscope_core::audit::Verdict::Source)
        }) {
            let (code, message, fix) = e.findings.first().map_or(("", "", ""), |f| {
                (f.code.as_str(), f.message.as_str(), f.fix.as_str())
            });
            let used_by = e.users_in_short().unwrap_or_default();
            let _ = write!(
                h,
                "<tr class=\"audit-image\"><td>{}</td><td class=\"bad\">{}</td><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td>{}</td></tr>",
                esc(&e.image),
                e.verdict.as_str(),
                esc(&nodes),
                esc(&used_by),
                esc(message),
                code,
                esc(fix)
            );
        }
    }
    h.push_str("</table>");
}

fn short(sha: &str) -> &str {
    let hex = sha.strip_prefix("sha256:").unwrap_or(sha);
    hex.get(..12).unwrap_or(hex)
}

/// An RFC 3339 time to the second, the full one in its tooltip: the fraction only widens the
/// column.
fn timestamp(t: Option<&str>) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let short = match (t.find('.'), t.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &t[..dot]),
        _ => t.to_string(),
    };
    format!("<span title=\"{}\">{}</span>", esc(t), esc(&short))
}

/// An image reference, escaped, that may wrap after a `/` but never inside a path component
/// (`notebook-controller` stays whole).
fn breakable(reference: &str) -> String {
    let parts: Vec<String> = reference
        .split_inclusive('/')
        .map(|p| format!("<span class=\"nw\">{}</span>", esc(p)))
        .collect();
    parts.join("<wbr>")
}

#[cfg(test)]
mod tests {
    use super::{breakable, esc, timestamp};

    #[test]
    fn timestamps_show_seconds_and_keep_the_fraction_in_the_tooltip() {
        assert_eq!(
            timestamp(Some("2026-12-04T02:47:31.342Z")),
            "<span title=\"2026-12-04T02:47:31.342Z\">2026-12-04T02:47:31Z</span>"
        );
        assert_eq!(
            timestamp(Some("2026-12-04T02:47:31+01:00")),
            "<span title=\"2026-12-04T02:47:31+01:00\">2026-12-04T02:47:31+01:00</span>"
        );
        assert_eq!(timestamp(None), "-");
    }

    #[test]
    fn references_break_only_after_a_slash() {
        assert_eq!(
            breakable("ghcr.io/kubeflow/notebook-controller:<v1>"),
            "<span class=\"nw\">ghcr.io/</span><wbr><span class=\"nw\">kubeflow/</span><wbr><span class=\"nw\">notebook-controller:&lt;v1&gt;</span>"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
