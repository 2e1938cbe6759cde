//! `mirrorscope wait`: block until every selected node has landed.
//!
//! Used as a gate (`mirrorscope wait ... && oc adm upgrade`), so it never says "landed" for a
//! selection it cannot see whole: a named node that never reported is lagging, `--nodes N` is
//! not met until N nodes are known, an empty selection is a usage error, and a collector that
//! stops answering ends the wait with exit 2 instead of a silent timeout.
//!
//! Exit codes: 0 landed, 1 timeout (the laggards and why are printed) or a selected node the
//! MCD gave up on (Degraded: it fails at once), 2 usage or connection error. Replaces `until oc debug node/... | grep ...; do sleep 5; done`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use mirrorscope_core::api::{NodesView, RolloutView};
use mirrorscope_core::openshift::inputs::read_paths;
use mirrorscope_core::openshift::{OcpVersion, ParseOptions, RenderOptions};
use mirrorscope_core::query;
use mirrorscope_core::rollout::{DesiredState, Summary};
use mirrorscope_core::time::parse_duration;

use crate::client::{connect, Client, ConnArgs};
use crate::output::{cell, indent_continuation};

/// Arguments of `mirrorscope wait`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// IDMS/ITMS/ICSP/Image objects (files or directories): wait for their MCO rendering. Without
    /// it, wait until the selected nodes agree on one configuration and none is changing.
    #[arg(long, value_name = "PATH")]
    pub desired: Vec<PathBuf>,
    /// OpenShift release whose rendering to predict for --desired.
    #[arg(long, value_name = "X.Y")]
    pub ocp_version: Option<OcpVersion>,
    /// Release image for --desired (payload protection of blockedRegistries).
    #[arg(long, value_name = "IMAGE")]
    pub release_image: Option<String>,
    /// Only nodes of this MachineConfigPool.
    #[arg(long, value_name = "P", conflicts_with = "selector")]
    pub pool: Option<String>,
    /// Only nodes whose labels match, `key=value[,key=value]`.
    #[arg(long, value_name = "S")]
    pub selector: Option<String>,
    /// Node names (`a,b,c`; each must report), or a number: wait until at least that many
    /// nodes are known and landed.
    #[arg(long, value_name = "N")]
    pub nodes: Option<String>,
    /// Accept a selection that matches no node (and then exit 0 at once).
    #[arg(long)]
    pub allow_empty: bool,
    /// Give up after this long (e.g. 90s, 10m).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time between checks.
    #[arg(long, value_name = "D", default_value = "250ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// A progress line is printed at least this often, whether or not anything changed.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// A collector that does not answer for this long (or three request timeouts) ends the wait.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(30);

pub fn run(conn: &ConnArgs, args: Args) -> anyhow::Result<i32> {
    let desired = match desired_sha256(&args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mirrorscope wait: {e:#}");
            return Ok(2);
        }
    };
    let (names, min_nodes) = match args.nodes.as_deref() {
        None => (None, None),
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (None, Some(n.to_string()))
        }
        Some(n) => (Some(n.to_string()), None),
    };
    let path = format!(
        "/v1/rollout{}",
        query::build(&[
            ("desired", Some(desired)),
            ("pool", args.pool.clone()),
            ("selector", args.selector.clone()),
            ("nodes", names),
            ("min_nodes", min_nodes),
        ])
    );
    let (rt, client) = connect(conn)?;
    let give_up_unreachable = UNREACHABLE_AFTER.max(conn.request_timeout * 3);
    let mut progress = Progress::new(args.quiet);
    let start = Instant::now();
    let mut last: Option<RolloutView> = None;
    let mut failing_since: Option<Instant> = None;
    loop {
        match rt.block_on(client.get::<RolloutView>(&path)) {
            Ok(v) => {
                failing_since = None;
                if v.overall.total == 0 && args.allow_empty {
                    progress.finish();
                    if !args.quiet {
                        crate::outln!(
                            "no node matches the selection (--allow-empty): nothing to wait for"
                        )?;
                    }
                    return Ok(0);
                }
                if v.overall.total == 0 {
                    progress.finish();
                    let known = rt.block_on(describe_known(&client));
                    eprintln!(
                        "mirrorscope wait: no node matches the selection{}; {known} (--allow-empty accepts an empty selection)",
                        selection_words(&args)
                    );
                    return Ok(2);
                }
                if let Some(l) = v.overall.laggards.iter().find(|l| l.degraded.is_some()) {
                    progress.finish();
                    eprintln!(
                        "mirrorscope wait: node {} will not land by itself: {}",
                        cell(&l.node),
                        cell(l.degraded.as_deref().unwrap_or_default())
                    );
                    return Ok(1);
                }
                if v.complete {
                    progress.finish();
                    if !args.quiet {
                        crate::outln!(
                            "landed: {} of {} nodes after {:.1}s",
                            v.overall.landed,
                            v.overall.total,
                            start.elapsed().as_secs_f64()
                        )?;
                    }
                    return Ok(0);
                }
                progress.update(&v.overall, start.elapsed());
                last = Some(v);
            }
            // The collector must answer at least once.
            Err(e) if last.is_none() => {
                progress.finish();
                return Err(e);
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= give_up_unreachable {
                    progress.finish();
                    eprintln!(
                        "mirrorscope wait: the collector has not answered for {:.0}s: {e:#}",
                        since.elapsed().as_secs_f64()
                    );
                    return Ok(2);
                }
                progress.note_error(&e, since.elapsed());
            }
        }
        if start.elapsed() >= args.timeout {
            break;
        }
        std::thread::sleep(
            args.interval
                .min(args.timeout.saturating_sub(start.elapsed())),
        );
    }
    progress.finish();
    let Some(v) = last else {
        bail!("no answer from the collector")
    };
    crate::outln!(
        "timed out after {:.0}s: {} of {} nodes landed{}",
        args.timeout.as_secs_f64(),
        v.overall.landed,
        v.overall.total,
        match &args.nodes {
            Some(n) if n.parse::<usize>().is_ok_and(|want| v.overall.total < want) =>
                format!(" ({n} expected)"),
            _ => String::new(),
        }
    )?;
    for l in &v.overall.laggards {
        crate::outln!("  {}", cell(&l.node))?;
        for r in &l.reasons {
            crate::outln!("    - {}", indent_continuation(&cell(r)))?;
        }
    }
    Ok(1)
}

/// The canonical hash `--desired` renders to, `none` without it.
fn desired_sha256(args: &Args) -> anyhow::Result<String> {
    if args.desired.is_empty() {
        return Ok("none".to_string());
    }
    let version = args.ocp_version.unwrap_or_default();
    let set = read_paths(
        &args.desired,
        &ParseOptions { version },
        &mut std::io::stdin(),
    )?;
    if let Some(e) = set.errors.first() {
        bail!("the API server would reject the desired objects: {e}");
    }
    let options = RenderOptions {
        ocp_version: version,
        release_image: args.release_image.clone(),
    };
    let origin = args
        .desired
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let d = DesiredState::from_inputs(&set, &options, &origin);
    d.sha256()
        .map(str::to_string)
        .map_err(|e| anyhow::anyhow!(e))
}

fn selection_words(args: &Args) -> String {
    let mut w = Vec::new();
    if let Some(p) = &args.pool {
        w.push(format!("--pool {p}"));
    }
    if let Some(s) = &args.selector {
        w.push(format!("--selector {s}"));
    }
    if let Some(n) = &args.nodes {
        w.push(format!("--nodes {n}"));
    }
    match w.is_empty() {
        true => String::new(),
        false => format!(" ({})", w.join(" ")),
    }
}

/// "known pools: a, b; known nodes: x, y" for an empty selection's message.
async fn describe_known(client: &Client) -> String {
    let Ok(v) = client.get::<NodesView>("/v1/nodes").await else {
        return "the collector's node list could not be read".into();
    };
    if v.nodes.is_empty() {
        return format!(
            "no agent has reported yet ({})",
            mirrorscope_core::api::NO_AGENT_CHECKS.join("; ")
        );
    }
    let mut pools: Vec<String> = v
        .nodes
        .iter()
        .map(|n| cell(mirrorscope_core::api::pool_label(&n.pool)))
        .collect();
    pools.sort();
    pools.dedup();
    let names: Vec<String> = v.nodes.iter().take(20).map(|n| cell(&n.node)).collect();
    let more = v.nodes.len().saturating_sub(names.len());
    format!(
        "known pools: {}; known nodes: {}{}",
        pools.join(", "),
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// Progress on stderr: a line when the count changes and at least every 30 s, naming the
/// lagging nodes and why; on a terminal, one line updated in place.
struct Progress {
    quiet: bool,
    tty: bool,
    last_line: Option<(usize, usize)>,
    last_at: Option<Instant>,
    open_line: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            last_line: None,
            last_at: None,
            open_line: false,
        }
    }

    fn update(&mut self, s: &Summary, elapsed: Duration) {
        if self.quiet {
            return;
        }
        let counts = (s.landed, s.total);
        let due = self.last_at.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if !self.tty && self.last_line == Some(counts) && !due {
            return;
        }
        let lagging: Vec<String> = s
            .laggards
            .iter()
            .take(3)
            .map(|l| {
                let why = l.reasons.first().map(|r| first_line(r)).unwrap_or_default();
                format!("{} ({})", cell(&l.node), cell(&why))
            })
            .collect();
        let more = s.laggards.len().saturating_sub(lagging.len());
        let text = format!(
            "{} of {} nodes landed ({:.0}s){}{}{}",
            s.landed,
            s.total,
            elapsed.as_secs_f64(),
            if lagging.is_empty() {
                ""
            } else {
                "; waiting for "
            },
            lagging.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        if self.tty {
            // One line, rewritten: clear it, then print without a newline.
            let width = terminal_width().saturating_sub(1).max(20);
            let shown: String = text.chars().take(width).collect();
            eprint!("\r\x1b[2K{shown}");
            self.open_line = true;
        } else {
            eprintln!("{text}");
        }
        self.last_line = Some(counts);
        self.last_at = Some(Instant::now());
    }

    fn note_error(&mut self, e: &anyhow::Error, for_how_long: Duration) {
        if self.quiet {
            return;
        }
        self.finish();
        eprintln!(
            "mirrorscope wait: check failed ({:.0}s): {e:#}",
            for_how_long.as_secs_f64()
        );
    }

    fn finish(&mut self) {
        if self.open_line {
            eprintln!();
            self.open_line = false;
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}
