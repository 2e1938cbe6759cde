//! `mirrorscope-collector`: aggregates node reports into the cluster's rollout and pull views.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use mirrorscope_collector::kubeapi::{self, KubeFlags};
use mirrorscope_collector::service::{self, auth};
use mirrorscope_core::openshift::{OcpVersion, RenderOptions};
use mirrorscope_core::rollout::Policy;
use mirrorscope_core::time::parse_duration;

#[derive(Parser)]
#[command(
    name = "mirrorscope-collector",
    version,
    about = "Collects mirrorscope node reports"
)]
struct Args {
    /// Address to listen on (plain HTTP only on loopback, unless --insecure-plain-http).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serving certificate chain (PEM), e.g. from the service CA's serving-cert Secret; re-read
    /// when it changes.
    #[arg(long, value_name = "FILE")]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM); re-read with it.
    #[arg(long, value_name = "FILE")]
    tls_key_file: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (tokens and node data in clear; never in the
    /// manifests).
    #[arg(long)]
    insecure_plain_http: bool,
    /// A second, read-only listener for the API server's service proxy (the CLI's way in),
    /// which authorizes callers itself; open it only to the API server (NetworkPolicy).
    #[arg(long, value_name = "ADDR")]
    proxy_listen: Option<SocketAddr>,
    /// The collector's namespace (for authorizing readers against its Service).
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "mirrorscope"
    )]
    namespace: String,
    /// The collector's Service: with --in-cluster, readers on --listen need `get services/proxy`
    /// on it, the permission the API server checks on the service-proxy path.
    #[arg(long, value_name = "NAME", default_value = "mirrorscope-collector")]
    service_name: String,
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
    /// Kubeconfig for --in-cluster outside a pod (instead of --kube-api).
    #[arg(long, value_name = "FILE", conflicts_with = "kube_api")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (with --kubeconfig).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    context: Option<String>,
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
    /// Audit every image the cluster uses this often, and at once when the desired state
    /// changes (0 turns it off): `GET /v1/audit`, the status page, `mirrorscope_audit_*`.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    audit_interval: Duration,
    /// Judge from the configurations alone, without asking the registries.
    #[arg(long)]
    audit_no_probe: bool,
    /// Registry credentials for the audit's probes (default in-cluster: openshift-config/pull-secret).
    #[arg(long, value_name = "FILE")]
    audit_authfile: Option<PathBuf>,
    /// PEM CAs the audit trusts besides the system's and the Image config's additionalTrustedCA.
    #[arg(long, value_name = "FILE")]
    audit_ca_file: Option<PathBuf>,
    /// Sources the audit probes at once.
    #[arg(long, value_name = "N", default_value = "16")]
    audit_concurrency: usize,
    /// Log lines as text or JSON (level from MIRRORSCOPE_LOG: error, warn, info, debug).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIRRORSCOPE_LOG")
        // kube-rs logs each failed request itself; our callers log it once, with its context.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

fn main() {
    let args = Args::parse();
    init_logging(args.log_format);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(start(args)) {
        tracing::error!("{e:#}");
        std::process::exit(2);
    }
}

async fn start(args: Args) -> anyhow::Result<()> {
    let tls = mirrorscope_serve::tls::CertFiles::from_flags(
        args.tls_cert_file.clone(),
        args.tls_key_file.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let acceptor = mirrorscope_serve::tls::Acceptor::from_files(tls)?;
    for addr in std::iter::once(args.listen).chain(args.proxy_listen) {
        mirrorscope_serve::plain::check_listen(addr, acceptor.is_tls(), args.insecure_plain_http)?;
    }
    let kube = match args.in_cluster {
        false => None,
        true => Some(
            kubeapi::client(&KubeFlags {
                api: args.kube_api.clone(),
                token_file: args.kube_token_file.clone(),
                ca_file: args.kube_ca_file.clone(),
                kubeconfig: args.kubeconfig.clone(),
                context: args.context.clone(),
            })
            .await
            .context("--in-cluster")?,
        ),
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
            tracing::warn!(
                "no --in-cluster or --tokens-file: ANY local process may push reports for ANY node (loopback only)"
            );
            auth::Auth::Open
        }
    };
    let views_authz = kube.clone().map(|client| service::ViewsAuthz {
        authorizer: mirrorscope_serve::authz::Authorizer::new(client, Vec::new()),
        views: mirrorscope_serve::authz::Attributes::Resource {
            namespace: args.namespace.clone(),
            group: String::new(),
            resource: "services".into(),
            subresource: "proxy".into(),
            name: args.service_name.clone(),
            verb: "get".into(),
        },
    });
    let cfg = service::Config {
        listen: args.listen,
        proxy_listen: args.proxy_listen,
        acceptor,
        views_authz,
        desired: args.desired,
        render: RenderOptions {
            ocp_version: args.ocp_version.unwrap_or_default(),
            release_image: args.release_image,
        },
        auth,
        kube,
        state_file: args.state_file,
        state_interval: Duration::from_secs(15),
        policy: Policy {
            stale_after_secs: args.stale_after.as_secs().max(1),
            unknown_blocks: !args.lenient_unknown,
        },
        max_pulls: args.max_pulls,
        audit: service::audit::AuditOptions {
            interval: args.audit_interval,
            probe: !args.audit_no_probe,
            authfile: args.audit_authfile,
            ca_file: args.audit_ca_file,
            concurrency: args.audit_concurrency.clamp(1, 256),
            timeout: Duration::from_secs(15),
        },
    };
    service::run(cfg).await
}
