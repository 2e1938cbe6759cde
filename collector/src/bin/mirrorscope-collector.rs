//! `mirrorscope-collector`: aggregates node reports into the cluster's rollout and pull views.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use mirrorscope_collector::kube::KubeClient;
use mirrorscope_collector::service::{self, auth};
use mirrorscope_core::openshift::{OcpVersion, RenderOptions};
use mirrorscope_core::rollout::Policy;

#[derive(Parser)]
#[command(
    name = "mirrorscope-collector",
    version,
    about = "Collects mirrorscope node reports"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// IDMS/ITMS/ICSP/Image objects (files or directories, as with `render -f`): the desired state.
    #[arg(long, value_name = "PATH")]
    desired: Vec<PathBuf>,
    /// OpenShift release whose MCO rendering to predict (default: the cluster's, else 4.19).
    #[arg(long, value_name = "X.Y")]
    ocp_version: Option<OcpVersion>,
    /// Release image (protects the payload from blockedRegistries), as clusterversion reports it.
    #[arg(long, value_name = "IMAGE")]
    release_image: Option<String>,
    /// Authenticate agents with TokenReview and read the cluster's objects from the API server.
    #[arg(long)]
    in_cluster: bool,
    /// API server URL for --in-cluster (default: the pod's in-cluster address, with its
    /// ServiceAccount token and CA).
    #[arg(long, value_name = "URL")]
    kube_api: Option<String>,
    /// Bearer token file for --kube-api.
    #[arg(long, value_name = "FILE")]
    kube_token_file: Option<PathBuf>,
    /// CA certificates (PEM) for an https --kube-api.
    #[arg(long, value_name = "FILE")]
    kube_ca_file: Option<PathBuf>,
    /// The agents' ServiceAccount, NAMESPACE:NAME.
    #[arg(
        long,
        value_name = "NS:NAME",
        default_value = "mirrorscope:mirrorscope-agent"
    )]
    agent_service_account: String,
    /// Audience the agents' projected tokens are minted for (the DaemonSet's
    /// `serviceAccountToken.audience`); empty for the API server's own audience.
    #[arg(long, value_name = "AUDIENCE", default_value = "mirrorscope-collector")]
    token_audience: String,
    /// Seconds between listings of the cluster's objects.
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    kube_poll: u64,
    /// `TOKEN NODE` lines (re-read when changed): which token may report for which node.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// Snapshot of the state, written periodically and on exit, read at start.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Mark nodes not heard from for this long as stale (e.g. 90s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    stale_after: Duration,
    /// Do not hold nodes back when a check cannot tell (e.g. the agent reads no CRI-O journal).
    #[arg(long)]
    lenient_unknown: bool,
    /// Pull records kept in memory.
    #[arg(long, default_value = "100000")]
    max_pulls: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let mult = match unit {
        "ms" => 0.001,
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration {s:?}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(n * mult))
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mirrorscope-collector: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(start(args)) {
        eprintln!("mirrorscope-collector: {e:#}");
        std::process::exit(2);
    }
}

async fn start(args: Args) -> anyhow::Result<()> {
    let kube = match (args.in_cluster, &args.kube_api) {
        (false, _) => None,
        (true, Some(url)) => Some(
            KubeClient::from_url(
                url,
                args.kube_token_file.as_deref(),
                args.kube_ca_file.as_deref(),
            )
            .context("--kube-api")?,
        ),
        (true, None) => Some(KubeClient::in_cluster().context("--in-cluster")?),
    };
    let auth = match (&kube, &args.tokens_file) {
        (Some(_), Some(_)) => bail!("--in-cluster and --tokens-file are exclusive"),
        (Some(client), None) => {
            let (ns, sa) = args
                .agent_service_account
                .split_once(':')
                .context("--agent-service-account must be NAMESPACE:NAME")?;
            let audiences: Vec<String> = Some(args.token_audience.clone())
                .filter(|a| !a.is_empty())
                .into_iter()
                .collect();
            auth::Auth::Review(auth::TokenReviewer::new(client.clone(), ns, sa, audiences))
        }
        (None, Some(path)) => auth::Auth::Tokens(auth::TokensFile::open(path)?),
        (None, None) => {
            if !args.listen.ip().is_loopback() {
                bail!(
                    "refusing to listen on {} without authentication: use --in-cluster or --tokens-file (only loopback may be open)",
                    args.listen
                );
            }
            eprintln!(
                "mirrorscope-collector: WARNING: no --in-cluster or --tokens-file: ANY local process may push reports for ANY node (loopback only)"
            );
            auth::Auth::Open
        }
    };
    let cfg = service::Config {
        listen: args.listen,
        desired: args.desired,
        render: RenderOptions {
            ocp_version: args.ocp_version.unwrap_or_default(),
            release_image: args.release_image,
        },
        auth,
        kube,
        kube_poll: Duration::from_secs(args.kube_poll.max(1)),
        state_file: args.state_file,
        state_interval: Duration::from_secs(15),
        policy: Policy {
            stale_after_secs: args.stale_after.as_secs().max(1),
            unknown_blocks: !args.lenient_unknown,
        },
        max_pulls: args.max_pulls,
    };
    service::run(cfg).await
}
