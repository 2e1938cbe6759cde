//! `GET /`: the status page. Server-rendered, no scripts, no external assets; every string that
//! comes from a report or the journal goes through [`esc`].

use std::fmt::Write as _;

use mirrorscope_core::api::AuditView;

use mirrorscope_core::api::{NodesView, RegistriesView, RolloutView};
use mirrorscope_core::journal::PullRecord;

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
.ok{color:#17692d}.bad{color:#a11}.muted{color:#777}code{font-size:90%}";

/// Renders the whole page.
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
    let t = &rollout.target;
    let target = match t.kind.as_str() {
        "desired" => format!(
            "desired configuration <code>{}</code> from {}",
            esc(t.sha256.as_deref().unwrap_or("")),
            esc(t.origin.as_deref().unwrap_or(""))
        ),
        "refused" => format!(
            "<span class=\"bad\">{}</span>",
            esc(t.reason.as_deref().unwrap_or(""))
        ),
        _ => "no desired state: nodes are compared with each other".to_string(),
    };
    let _ = write!(h, "<p id=\"target\">Target: {target}</p>");
    if let Some(e) = kube_error {
        let _ = write!(h, "<p class=\"bad\">API server: {}</p>", esc(e));
    }
    for n in notes {
        let _ = write!(h, "<p class=\"muted\">{}</p>", esc(n));
    }

    h.push_str("<h2>Rollout per pool</h2><table id=\"pools\"><tr><th>pool</th><th>nodes</th><th>landed</th><th>lagging</th><th>stale</th></tr>");
    for p in &rollout.pools {
        let s = &p.summary;
        let cls = if s.complete { "ok" } else { "bad" };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{cls}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(pool_name(&p.pool)),
            s.total,
            s.landed,
            s.lagging,
            s.stale
        );
    }
    h.push_str("</table>");

    audit_section(&mut h, audit);

    h.push_str("<h2>Nodes</h2><table id=\"nodes\"><tr><th>node</th><th>pool</th><th>state</th><th>effective configuration</th><th>last report</th><th>why not landed</th></tr>");
    for n in &nodes.nodes {
        let (cls, state) = match (n.landed, n.stale) {
            (true, _) => ("ok", "landed"),
            (false, true) => ("bad", "stale"),
            (false, false) => ("bad", "lagging"),
        };
        let reasons: Vec<String> = n.reasons.iter().map(|r| esc(r)).collect();
        // The MachineConfigNode's phase (draining, rebooting, ...) says what the node is doing.
        let state = match &n.mcn_phase {
            Some(p) if !n.landed => format!("{state} ({})", esc(p)),
            _ => state.to_string(),
        };
        let _ = write!(
            h,
            "<tr class=\"node\" data-node=\"{}\"><td>{}</td><td>{}</td><td class=\"{cls}\">{state}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&n.node),
            esc(&n.node),
            esc(pool_name(&n.pool)),
            esc(n.effective_sha256.as_deref().map(short).unwrap_or("-")),
            esc(n.last_report_at.as_deref().unwrap_or("never")),
            reasons.join("<br>")
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Registries with fallbacks or failures</h2><table id=\"registries\"><tr><th>registry</th><th>pulls</th><th>by mirror</th><th>by source</th><th>fallbacks</th><th>blocked</th><th>failed</th><th>mirror rule</th></tr>");
    for r in registries
        .registries
        .iter()
        .filter(|r| r.fallbacks + r.blocked + r.failed > 0 || r.mirror_rule == Some(false))
    {
        let rule = match r.mirror_rule {
            Some(true) => "yes",
            Some(false) => "<span class=\"bad\">none</span>",
            None => "?",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rule}</td></tr>",
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

    h.push_str("<h2>Recent fallbacks and failures</h2><table id=\"pulls\"><tr><th>started</th><th>node</th><th>image</th><th>served by</th><th>last error</th></tr>");
    for p in troubled {
        let err = p
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.error.as_deref())
            .unwrap_or("");
        let _ = write!(
            h,
            "<tr class=\"pull\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
            esc(p.started_at.as_deref().unwrap_or("-")),
            esc(p.node.as_deref().unwrap_or("")),
            esc(&p.image),
            esc(p.served_by.as_deref().unwrap_or(if p.fallback { "source" } else { "-" })),
            esc(err)
        );
    }
    h.push_str("</table></body></html>\n");
    h
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

fn pool_name(p: &str) -> &str {
    if p.is_empty() {
        "(no pool)"
    } else {
        p
    }
}

fn short(sha: &str) -> &str {
    let hex = sha.strip_prefix("sha256:").unwrap_or(sha);
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
