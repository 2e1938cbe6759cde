//! `mirrorscope status`, `nodes`, `pulls`, `registries`: the collector's views as tables.

use std::fmt::Write as _;

use mirrorscope_core::journal::PullRecord;

use crate::client::{connect, ConnArgs};
use crate::output::{pool_name, short_sha, table, table_fit, terminal_width, Format};
use mirrorscope_core::api::{
    NodeDetail, NodesView, PullsView, RegistriesView, RegistryStats, RolloutView, TargetView,
};
use mirrorscope_core::query;

/// Arguments of `mirrorscope status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Output format: table, wide (every column), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
}

/// Arguments of `mirrorscope nodes`.
#[derive(clap::Args, Debug)]
pub struct NodesArgs {
    /// Output format: table, wide (every column), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
    /// One node: every check, whether it holds, and why.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

/// Arguments of `mirrorscope pulls`.
#[derive(clap::Args, Debug)]
pub struct PullsArgs {
    /// Output format: table, wide (every column), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
    /// Only pulls from this source registry (e.g. docker.io).
    #[arg(long, value_name = "R")]
    pub registry: Option<String>,
    /// Only pulls on this node.
    #[arg(long, value_name = "N")]
    pub node: Option<String>,
    /// Only pulls the source served after a mirror was tried.
    #[arg(long)]
    pub fallback: bool,
    /// Only failed pulls.
    #[arg(long)]
    pub failed: bool,
    /// At most this many (newest first).
    #[arg(long, default_value = "100")]
    pub limit: usize,
}

/// Arguments of `mirrorscope registries`.
#[derive(clap::Args, Debug)]
pub struct RegistriesArgs {
    /// Output format: table, wide (every column), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(serde::Serialize)]
struct Status {
    rollout: RolloutView,
    registries: RegistriesView,
}

pub fn status(conn: &ConnArgs, args: StatusArgs) -> anyhow::Result<i32> {
    let (rt, client) = connect(conn)?;
    let (rollout, registries) = rt.block_on(async {
        let r: RolloutView = client.get("/v1/rollout").await?;
        let g: RegistriesView = client.get("/v1/registries").await?;
        anyhow::Ok((r, g))
    })?;
    let s = Status {
        rollout,
        registries,
    };
    if !args.output.print_data(&s)? {
        crate::out!("{}", render_status(&s.rollout, &s.registries, 10))?;
        if s.rollout.overall.total == 0 {
            no_agent_hint();
        }
    }
    Ok(0)
}

/// The first screen after an install: say why it is empty and where to look.
fn no_agent_hint() {
    eprintln!(
        "No agent has reported to this collector yet. Check the DaemonSet and an agent's log:"
    );
    for c in mirrorscope_core::api::NO_AGENT_CHECKS {
        eprintln!("  {c}");
    }
}

pub fn target_line(t: &TargetView) -> String {
    match t.kind.as_str() {
        "desired" => format!(
            "Desired: {} ({})",
            t.digest.as_deref().unwrap_or("?"),
            t.origin.as_deref().unwrap_or("?")
        ),
        "refused" => format!("Desired: {}", t.reason.as_deref().unwrap_or("refused")),
        _ => "Desired: none given; nodes must agree with each other".into(),
    }
}

/// The `status` text: rollout per pool, lagging nodes with reasons, troubled registries.
pub fn render_status(r: &RolloutView, g: &RegistriesView, top: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", target_line(&r.target));
    let _ = writeln!(
        s,
        "Rollout: {} of {} nodes landed{}\n",
        r.overall.landed,
        r.overall.total,
        if r.complete { " (complete)" } else { "" }
    );
    let rows: Vec<Vec<String>> = r
        .pools
        .iter()
        .map(|p| {
            vec![
                pool_name(&p.pool),
                p.summary.total.to_string(),
                p.summary.landed.to_string(),
                p.summary.lagging.to_string(),
                p.summary.stale.to_string(),
            ]
        })
        .collect();
    s.push_str(&table(
        &["POOL", "NODES", "LANDED", "LAGGING", "STALE"],
        &rows,
    ));
    if !r.overall.laggards.is_empty() {
        s.push_str("\nNodes not landed:\n");
        for l in &r.overall.laggards {
            let _ = writeln!(s, "  {}", l.node);
            for reason in &l.reasons {
                let _ = writeln!(s, "    - {}", crate::output::indent_continuation(reason));
            }
        }
    }
    let troubled: Vec<&RegistryStats> = g
        .registries
        .iter()
        .filter(|x| x.fallbacks + x.blocked + x.failed > 0 || x.mirror_rule == Some(false))
        .take(top)
        .collect();
    if !troubled.is_empty() {
        s.push_str("\nRegistries with fallbacks, blocked pulls, failures or no mirror rule:\n");
        s.push_str(&registries_table(&troubled, false));
    }
    s
}

fn registries_table(rs: &[&RegistryStats], wide: bool) -> String {
    let mut header = vec![
        "REGISTRY",
        "PULLS",
        "MIRROR",
        "SOURCE",
        "FALLBACKS",
        "BLOCKED",
        "FAILED",
        "MIRROR-RULE",
    ];
    if wide {
        header.push("FAILURES-BY-CLASS");
    }
    let rows: Vec<Vec<String>> = rs
        .iter()
        .map(|r| {
            let mut row = vec![
                r.registry.clone(),
                r.pulls.to_string(),
                r.by_mirror.to_string(),
                r.by_source.to_string(),
                r.fallbacks.to_string(),
                r.blocked.to_string(),
                r.failed.to_string(),
                match r.mirror_rule {
                    Some(true) => "yes".into(),
                    Some(false) => "NONE".into(),
                    None => "?".into(),
                },
            ];
            if wide {
                let classes: Vec<String> = r
                    .failures_by_class
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                row.push(classes.join(","));
            }
            row
        })
        .collect();
    table(&header, &rows)
}

pub fn nodes(conn: &ConnArgs, args: NodesArgs) -> anyhow::Result<i32> {
    let (rt, client) = connect(conn)?;
    if let Some(name) = &args.name {
        let path = format!("/v1/nodes/{}", query::encode(name));
        let d: NodeDetail = rt.block_on(client.get(&path))?;
        if !args.output.print_data(&d)? {
            crate::out!("{}", node_detail(&d))?;
        }
        return Ok(0);
    }
    let v: NodesView = rt.block_on(client.get("/v1/nodes"))?;
    if args.output.print_data(&v)? {
        return Ok(0);
    }
    let wide = args.output.wide();
    let mut header = vec!["NODE", "POOL", "STATE", "CONFIG", "LAST-REPORT"];
    if wide {
        header.extend(["AGENT", "MACHINECONFIG", "MCN-PHASE"]);
    }
    header.push("REASON");
    let rows: Vec<Vec<String>> = v
        .nodes
        .iter()
        .map(|n| {
            let state = match (n.landed, n.stale) {
                (true, _) => "Landed",
                (false, true) => "Stale",
                (false, false) => "Lagging",
            };
            let mut row = vec![
                n.node.clone(),
                pool_name(&n.pool),
                state.into(),
                short_sha(n.effective_digest.as_deref()),
                n.report_age_secs
                    .map(|a| format!("{a}s ago"))
                    .unwrap_or_else(|| "never".into()),
            ];
            if wide {
                row.push(n.agent_version.clone().unwrap_or_else(|| "-".into()));
                row.push(n.current_config.clone().unwrap_or_else(|| "-".into()));
                row.push(n.mcn_phase.clone().unwrap_or_else(|| "-".into()));
                row.push(n.reasons.join("; "));
            } else {
                row.push(n.reasons.first().cloned().unwrap_or_default());
            }
            row
        })
        .collect();
    crate::outln!("{}", target_line(&v.target))?;
    crate::out!("{}", table_fit(&header, &rows, terminal_width()))?;
    if v.nodes.is_empty() {
        no_agent_hint();
    }
    Ok(0)
}

/// One node's checks as a table, with the facts a reader wants next to them.
pub fn node_detail(d: &NodeDetail) -> String {
    let v = &d.view;
    let mut s = String::new();
    let state = match (v.landed, v.stale) {
        (true, _) => "Landed",
        (false, true) => "Stale",
        (false, false) => "Lagging",
    };
    let _ = writeln!(s, "Node:           {}", v.node);
    let _ = writeln!(s, "Pool:           {}", pool_name(&v.pool));
    let _ = writeln!(s, "State:          {state}");
    let _ = writeln!(
        s,
        "Configuration:  {}",
        v.effective_digest.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        s,
        "MachineConfig:  {}",
        v.current_config.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        s,
        "Last report:    {}",
        v.last_report_at.as_deref().unwrap_or("never")
    );
    if let Some(r) = &d.report {
        let _ = writeln!(
            s,
            "Agent:          {} ({})",
            r.agent_version, r.agent_instance
        );
        if r.pulls_dropped > 0 {
            let _ = writeln!(
                s,
                "Pulls dropped:  {} (the agent's outbox overflowed)",
                r.pulls_dropped
            );
        }
    }
    s.push('\n');
    let rows: Vec<Vec<String>> = v
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.as_str().to_string(),
                serde_json::to_value(c.state)
                    .ok()
                    .and_then(|x| x.as_str().map(str::to_string))
                    .unwrap_or_default(),
                crate::output::indent_continuation(&c.detail),
            ]
        })
        .collect();
    s.push_str(&table(&["CHECK", "STATE", "DETAIL"], &rows));
    s
}

pub fn pulls(conn: &ConnArgs, args: PullsArgs) -> anyhow::Result<i32> {
    let (rt, client) = connect(conn)?;
    let q = query::build(&[
        ("registry", args.registry.clone()),
        ("node", args.node.clone()),
        ("fallback", args.fallback.then(|| "true".to_string())),
        ("outcome", args.failed.then(|| "failed".to_string())),
        ("limit", Some(args.limit.to_string())),
    ]);
    let v: PullsView = rt.block_on(client.get(&format!("/v1/pulls{q}")))?;
    if args.output.print_data(&v)? {
        return Ok(0);
    }
    crate::out!("{}", pulls_table(&v.pulls, args.output.wide()))?;
    if v.matching > v.pulls.len() {
        crate::outln!("({} of {} matching pulls shown)", v.pulls.len(), v.matching)?;
    }
    Ok(0)
}

/// Recent pulls; without `wide`, digests are shortened and the table fits the terminal.
pub fn pulls_table(ps: &[PullRecord], wide: bool) -> String {
    let short = |s: String| {
        if wide {
            s
        } else {
            crate::output::short_digests(&s)
        }
    };
    let mut header = vec![
        "STARTED",
        "NODE",
        "IMAGE",
        "OUTCOME",
        "SERVED-BY",
        "FALLBACK",
    ];
    if wide {
        header.extend(["POD", "ATTEMPTS", "CAUSE"]);
    }
    let rows: Vec<Vec<String>> = ps
        .iter()
        .map(|p| {
            let mut row = vec![
                p.started_at.clone().unwrap_or_else(|| "-".into()),
                p.node.clone().unwrap_or_else(|| "-".into()),
                short(p.image.clone()),
                p.outcome.as_str().into(),
                short(match p.served_by.as_deref() {
                    None => "-".into(),
                    Some(s) if mirrorscope_core::explain::is_node_local(s) => {
                        format!("{s} (node-local)")
                    }
                    Some(s) => s.to_string(),
                }),
                if p.fallback {
                    "yes".into()
                } else {
                    "no".into()
                },
            ];
            if wide {
                row.push(p.pod.clone().unwrap_or_else(|| "-".into()));
                let tried: Vec<&str> = p.attempts.iter().map(|a| a.reference.as_str()).collect();
                row.push(tried.join(" > "));
                row.push(p.cause().unwrap_or_default().to_string());
            }
            row
        })
        .collect();
    match wide {
        true => table(&header, &rows),
        false => crate::output::table_fit(&header, &rows, crate::output::terminal_width()),
    }
}

pub fn registries(conn: &ConnArgs, args: RegistriesArgs) -> anyhow::Result<i32> {
    let (rt, client) = connect(conn)?;
    let v: RegistriesView = rt.block_on(client.get("/v1/registries"))?;
    if args.output.print_data(&v)? {
        return Ok(0);
    }
    let all: Vec<&RegistryStats> = v.registries.iter().collect();
    crate::out!("{}", registries_table(&all, args.output.wide()))?;
    if !v.without_mirror_rule.is_empty() {
        crate::outln!(
            "\nPulled with no mirror rule: {}",
            v.without_mirror_rule.join(", ")
        )?;
    }
    Ok(0)
}
