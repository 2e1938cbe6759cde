//! `mirrorscope wait`: block until every selected node has landed.
//!
//! Exit codes: 0 landed, 1 timeout (the laggards and why are printed), 2 usage or connection
//! error. Replaces `until oc debug node/... | grep ...; do sleep 5; done`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mirrorscope_core::openshift::{OcpVersion, RenderOptions};

use super::client::{runtime, Client, ConnArgs};
use crate::api::RolloutView;
use crate::query;
use crate::service::desired::desired_sha256;

/// Arguments of `mirrorscope wait`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
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
    /// Node names (`a,b,c`), or a number: wait until at least that many nodes are known.
    #[arg(long, value_name = "N")]
    pub nodes: Option<String>,
    /// Give up after this long (e.g. 90s, 10m).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time between checks.
    #[arg(long, value_name = "D", default_value = "250ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Print nothing on success.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `90s`, `5m`, `250ms`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: e.g. 90s, 5m, 250ms"))?;
    let mult = match unit {
        "ms" => 0.001,
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration {s:?}: use ms, s, m or h")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(n * mult))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let desired = if args.desired.is_empty() {
        "none".to_string()
    } else {
        let opts = RenderOptions {
            ocp_version: args.ocp_version.unwrap_or_default(),
            release_image: args.release_image.clone(),
        };
        match desired_sha256(&args.desired, &opts) {
            Ok(sha) => sha,
            Err(e) => {
                eprintln!("mirrorscope wait: {e}");
                return Ok(2);
            }
        }
    };
    let (names, min_nodes) = match args.nodes.as_deref() {
        None => (None, None),
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (None, Some(n.to_string()))
        }
        Some(n) => (Some(n.to_string()), None),
    };
    let q = query::build(&[
        ("desired", Some(desired)),
        ("pool", args.pool.clone()),
        ("selector", args.selector.clone()),
        ("nodes", names),
        ("min_nodes", min_nodes),
    ]);
    let path = format!("/v1/rollout{q}");
    let client = Client::new(&args.conn)?;
    let rt = runtime()?;
    let start = Instant::now();
    let mut last: Option<RolloutView> = None;
    let mut last_progress: Option<(usize, usize)> = None;
    let mut last_error: Option<anyhow::Error>;
    loop {
        last_error = None;
        match rt.block_on(client.get::<RolloutView>(&path)) {
            Ok(v) => {
                if v.complete {
                    if !args.quiet {
                        println!(
                            "landed: {} of {} nodes after {:.1}s",
                            v.overall.landed,
                            v.overall.total,
                            start.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(0);
                }
                let progress = (v.overall.landed, v.overall.total);
                if !args.quiet && last_progress != Some(progress) {
                    eprintln!(
                        "{} of {} nodes landed ({:.0}s)",
                        progress.0,
                        progress.1,
                        start.elapsed().as_secs_f64()
                    );
                    last_progress = Some(progress);
                }
                last = Some(v);
            }
            // The collector must answer at least once; later hiccups are retried until the timeout.
            Err(e) if last.is_none() => return Err(e).context("mirrorscope wait"),
            Err(e) => last_error = Some(e),
        }
        if start.elapsed() >= args.timeout {
            break;
        }
        std::thread::sleep(
            args.interval
                .min(args.timeout.saturating_sub(start.elapsed())),
        );
    }
    if let Some(e) = last_error {
        eprintln!("mirrorscope wait: last check failed: {e:#}");
    }
    let Some(v) = last else { return Ok(2) };
    println!(
        "timed out after {:.0}s: {} of {} nodes landed{}",
        args.timeout.as_secs_f64(),
        v.overall.landed,
        v.overall.total,
        match args.nodes.as_deref() {
            Some(n)
                if n.bytes().all(|b| b.is_ascii_digit())
                    && v.overall.total < n.parse().unwrap_or(0) =>
                format!(" ({n} expected)"),
            _ => String::new(),
        }
    );
    for l in &v.overall.laggards {
        println!("  {}", l.node);
        for r in &l.reasons {
            println!("    - {}", super::output::indent_continuation(r));
        }
    }
    Ok(1)
}
