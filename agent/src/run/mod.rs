//! `mirrorscope-agent run`: the node agent (DaemonSet pod or host service).
//!
//! Small tasks on a current-thread runtime, plus two blocking threads:
//! - config watcher thread (inotify) → config task: re-reads the host files, updates the state;
//! - journal pipeline thread: follower → correlator → state (records, CRI-O reloads);
//! - HTTP server task: reads the state;
//! - push task: state changes and heartbeats → collector.

mod hostfiles;
mod http;
mod labels;
mod machine;
mod metrics;
mod persist;
mod pipeline;
mod push;
mod state;
mod truncate;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::hash::sha256_hex;
use tokio::sync::mpsc;

use crate::journal::cursor::Checkpoint;
use crate::logger::{self, LogFormat, LogTarget};
use hostfiles::HostRoot;
use mirrorscope_core::time::parse_since;
use persist::StateFile;
use state::Shared;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where the node's file system is mounted (default: /host when it exists, else /).
    #[arg(long, value_name = "DIR")]
    pub host_root: Option<PathBuf>,
    /// Node name in reports (default: $NODE_NAME, else the host name).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Address of the HTTP server (/v1/report, /metrics, /healthz, /readyz); plain HTTP only on
    /// loopback, unless --insecure-plain-http.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9401")]
    pub listen: String,
    /// Serving certificate chain (PEM) for the agent's endpoints, e.g. from the service CA;
    /// re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM); re-read with it.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Allow plain HTTP off loopback, both served and to the collector (never in the manifests).
    #[arg(long)]
    pub insecure_plain_http: bool,
    /// Answer /v1/report and /metrics only to callers the API server authorizes for that path
    /// (TokenReview + SubjectAccessReview, as kube-rbac-proxy does): in a pod, with its
    /// ServiceAccount; elsewhere with --kube-api/--kube-token-file/--kube-ca-file or --kubeconfig.
    #[arg(long)]
    pub authorize: bool,
    /// API server URL for --authorize (default: the pod's in-cluster address).
    #[arg(long, value_name = "URL", requires = "authorize")]
    pub kube_api: Option<String>,
    /// Bearer token file for --kube-api.
    #[arg(long, value_name = "FILE", requires = "authorize")]
    pub kube_token_file: Option<PathBuf>,
    /// CA certificates (PEM) for an https --kube-api.
    #[arg(long, value_name = "FILE", requires = "authorize")]
    pub kube_ca_file: Option<PathBuf>,
    /// Kubeconfig for --authorize outside a pod (instead of --kube-api).
    #[arg(
        long,
        value_name = "FILE",
        requires = "authorize",
        conflicts_with = "kube_api"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// Collector base URL (http://HOST:PORT or https://HOST:PORT); reports are POSTed to
    /// URL/v1/reports.
    #[arg(long, value_name = "URL")]
    pub collector: Option<String>,
    /// CA certificates (PEM) that sign an https collector's certificate (default: the system
    /// trust store), e.g. the service CA bundle injected into a ConfigMap.
    #[arg(long, value_name = "FILE")]
    pub collector_ca_file: Option<PathBuf>,
    /// Bearer token for the collector, re-read before every push (token rotation).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Where the journal checkpoint and unacknowledged pull records are kept across restarts.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/mirrorscope-agent")]
    pub state_dir: PathBuf,
    /// Journal directories, repeatable (default: var/log/journal and run/log/journal under the
    /// host root, those that exist).
    #[arg(long = "journal-dir", value_name = "DIR")]
    pub journal_dir: Vec<PathBuf>,
    /// Where to start reading the journal when there is no checkpoint yet (RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS` UTC or @SECONDS; default: one hour ago).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Pull records kept for the collector until acknowledged; older ones are dropped past it.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub outbox_size: usize,
    /// Resolve pull sources with the rules of this containers/image release.
    #[arg(long, value_name = "VERSION", default_value = "latest")]
    pub containers_image_version: CImageVersion,
    /// Seconds between heartbeat pushes when nothing changes.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, hide = true)]
    pub heartbeat_seconds: u64,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[arg(long, value_enum, default_value = "stderr")]
    pub log_target: LogTarget,
}

/// Quiet time after the last inotify event before re-reading (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A steady stream of events still gets a re-read this often.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);
/// Periodic re-read: a safety net for events inotify could not report (e.g. a directory not
/// readable when its watch was due).
const RESYNC: Duration = Duration::from_secs(30);
/// SIGTERM to exit: the journal pipeline saves, then one last push.
const STOP_JOURNAL: Duration = Duration::from_millis(1500);
const FINAL_PUSH: Duration = Duration::from_secs(2);
/// However stuck something is (a hung file system under a read), the process is gone this long
/// after SIGTERM: kubelet's grace period must not be what ends it.
const STOP_DEADLINE: Duration = Duration::from_millis(4500);
/// A read of the node files taking longer than this is reported (and `/readyz` fails).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A start-up error in how the agent was invoked (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn run(args: RunArgs) -> Result<()> {
    logger::init(args.log_format, args.log_target)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = rt.block_on(agent(args));
    // A read stuck in the kernel must not hold the exit (dropping the runtime would wait).
    rt.shutdown_background();
    result
}

/// A host root that has neither the node's configuration directory nor a journal is a wrong
/// `--host-root` (or a missing mount), not a node without pulls.
fn check_host_root(root: &HostRoot, journal_dirs: &[PathBuf]) -> Result<()> {
    let etc = root.host("/etc/containers");
    if etc.is_dir() || journal_dirs.iter().any(|d| d.is_dir()) {
        return Ok(());
    }
    let tried: Vec<String> = journal_dirs
        .iter()
        .map(|d| d.display().to_string())
        .chain(
            ["/var/log/journal", "/run/log/journal"]
                .iter()
                .filter(|_| journal_dirs.is_empty())
                .map(|d| root.host(d).display().to_string()),
        )
        .collect();
    Err(UsageError(format!(
        "host root {}: neither {} nor a journal directory ({}) exists; is --host-root the node's root file system?",
        root.path().display(),
        etc.display(),
        tried.join(", ")
    ))
    .into())
}

fn default_host_root() -> PathBuf {
    let host = Path::new("/host");
    if host.is_dir() {
        host.to_path_buf()
    } else {
        PathBuf::from("/")
    }
}

fn node_name(args: &RunArgs) -> String {
    args.node_name
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn instance_id(node: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = sha256_hex(format!("{node}/{}/{nanos}", std::process::id()).as_bytes());
    h.trim_start_matches("sha256:").chars().take(16).collect()
}

async fn agent(args: RunArgs) -> Result<()> {
    // Installed first: a SIGTERM during start-up still stops the agent.
    let mut signals = Signals::install()?;
    let root = HostRoot::new(args.host_root.clone().unwrap_or_else(default_host_root));
    let dirs = journal_dirs(&args, &root);
    check_host_root(&root, &dirs)?;
    let node = node_name(&args);
    let shared = Shared::new(node.clone(), instance_id(&node), args.outbox_size);
    let version = args.containers_image_version;
    let tls = mirrorscope_serve::tls::CertFiles::from_flags(
        args.tls_cert_file.clone(),
        args.tls_key_file.clone(),
    )
    .map_err(UsageError)?;
    let acceptor = mirrorscope_serve::tls::Acceptor::from_files(tls)?;
    let authorizer = match args.authorize {
        false => None,
        true => {
            let flags = mirrorscope_serve::kubeapi::KubeFlags {
                api: args.kube_api.clone(),
                token_file: args.kube_token_file.clone(),
                ca_file: args.kube_ca_file.clone(),
                kubeconfig: args.kubeconfig.clone(),
                context: None,
            };
            let client = mirrorscope_serve::kubeapi::client(&flags)
                .await
                .context("--authorize")?;
            Some(mirrorscope_serve::authz::Authorizer::new(
                client,
                Vec::new(),
            ))
        }
    };
    {
        let shared = Arc::clone(&shared);
        acceptor.count_reload_failures_with(move || {
            shared.metrics.error("tls", "certificate_reload_failed")
        });
    }
    let edge = Arc::new(http::Edge {
        acceptor,
        authorizer,
    });
    let pusher = match &args.collector {
        Some(url) => {
            mirrorscope_serve::plain::check_url(url, args.insecure_plain_http)
                .map_err(|e| UsageError(format!("--collector: {e}")))?;
            let url = push::CollectorUrl::parse(url).map_err(anyhow::Error::msg)?;
            let client = url
                .client(args.collector_ca_file.as_deref())
                .map_err(anyhow::Error::msg)?;
            Some(push::Pusher {
                url,
                client,
                token_file: args.token_file.clone(),
                shared: Arc::clone(&shared),
                heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
                size: push::PushSize::default(),
                last_ids: Vec::new(),
            })
        }
        None => None,
    };
    let (state_file, checkpoint) = restore(&args.state_dir, &shared);
    // Watches go in before the first read, so a change made in between is not missed until
    // the next resync.
    let (tx, rx) = mpsc::channel(1);
    if let Err(e) = watch::spawn(root.clone(), tx) {
        tracing::error!(
            "inotify: {e}; re-reading the node files every {}s only",
            RESYNC.as_secs()
        );
    }
    let mut refresher = Refresher {
        root: root.clone(),
        version,
        shared: Arc::clone(&shared),
        pending: None,
        cache: Default::default(),
    };
    let listener = tokio::select! {
        _ = signals.wait() => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
        l = async {
            refresher.refresh().await;
            tokio::net::TcpListener::bind(&args.listen).await
        } => l.with_context(|| format!("listening on {}", args.listen))?,
    };
    let local = listener.local_addr()?;
    // Checked on the bound address: --listen may name a host, not an address.
    mirrorscope_serve::plain::check_listen(local, edge.acceptor.is_tls(), args.insecure_plain_http)
        .map_err(|e| UsageError(format!("--listen: {e}")))?;
    tracing::info!(
        "mirrorscope-agent {} on node {node}: host root {}, listening on {}://{local}{}",
        env!("CARGO_PKG_VERSION"),
        root.path().display(),
        edge.acceptor.scheme(),
        if edge.authorizer.is_some() {
            " (readers authorized by the API server)"
        } else {
            ""
        }
    );
    // Every task runs until the agent stops: one that ends (or panics) is a bug that would
    // silently stop pushes or the server, so it ends the agent instead (and kubelet restarts
    // it).
    let mut tasks = tokio::task::JoinSet::new();
    let shared_http = Arc::clone(&shared);
    tasks.spawn(async move {
        http::serve(listener, shared_http, edge).await;
        "HTTP server"
    });
    tasks.spawn(async move {
        config_loop(refresher, rx).await;
        "configuration reader"
    });

    let stop = Arc::new(AtomicBool::new(false));
    let mut journal_done = spawn_journal(
        pipeline::Pipeline {
            dirs,
            since_usec: since_usec(&args)?,
            state_file,
            saved: checkpoint,
        },
        Arc::clone(&shared),
        Arc::clone(&stop),
    )?;
    if let Some(p) = &pusher {
        let (p, changed) = (p.clone(), shared.subscribe());
        tasks.spawn(async move {
            p.run(changed).await;
            "push"
        });
    }

    let mut journal_ended = false;
    let failed = tokio::select! {
        _ = signals.wait() => None,
        ended = tasks.join_next() => Some(match ended {
            Some(Ok(name)) => format!("{name} task ended"),
            Some(Err(e)) if e.is_panic() => "a task panicked".to_owned(),
            Some(Err(e)) => format!("a task failed: {e}"),
            None => "no task left".to_owned(),
        }),
        _ = &mut journal_done => {
            journal_ended = true;
            Some("journal thread ended".to_owned())
        }
    };
    let failed = failed.inspect(|why| {
        tracing::error!("{why}; stopping the agent");
        shared.metrics.error("agent", "task_ended");
    });
    stop_deadline(STOP_DEADLINE);
    tracing::info!("stopping: saving the journal position and pushing a last report");
    stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    let journal_stopped = !journal_ended
        && tokio::time::timeout(STOP_JOURNAL, journal_done)
            .await
            .is_ok_and(|r| r.is_ok());
    if !journal_stopped {
        tracing::warn!(
            "journal thread did not stop within {}ms",
            STOP_JOURNAL.as_millis()
        );
    }
    if let Some(mut last) = pusher {
        match tokio::time::timeout(FINAL_PUSH, last.push_once()).await {
            Ok(Ok(_)) if journal_stopped => forget_acknowledged(&args.state_dir, &shared),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("last push failed: {e}"),
            Err(_) => tracing::warn!("last push got no answer in time"),
        }
    }
    if let Some(why) = failed {
        anyhow::bail!(why);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Ends the process `after` from now whatever still runs (a thread blocked in a read).
fn stop_deadline(after: Duration) {
    let spawned = std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::error!(
                "not stopped {}ms after the stop request; exiting now",
                after.as_millis()
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!("stop deadline thread: {e}");
    }
}

/// What the last run left in the state dir: its checkpoint, and its unacknowledged records
/// (put back into the outbox).
fn restore(state_dir: &Path, shared: &Shared) -> (Option<StateFile>, Option<Checkpoint>) {
    let state_file = match std::fs::create_dir_all(state_dir) {
        Ok(()) => StateFile::new(state_dir),
        Err(e) => {
            tracing::error!(
                "state dir {}: {e}; the journal position and unsent records will not survive a restart",
                state_dir.display()
            );
            return (None, None);
        }
    };
    let checkpoint = match state_file.load() {
        Ok(Some(saved)) => {
            shared.restore_outbox(saved.outbox);
            Some(saved.checkpoint)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("{e}; starting without it");
            None
        }
    };
    (Some(state_file), checkpoint)
}

fn journal_dirs(args: &RunArgs, root: &HostRoot) -> Vec<PathBuf> {
    if !args.journal_dir.is_empty() {
        return args.journal_dir.clone();
    }
    ["/var/log/journal", "/run/log/journal"]
        .iter()
        .map(|d| root.host(d))
        .filter(|d| d.is_dir())
        .collect()
}

/// Where reading starts without a checkpoint: `--since`, else an hour ago (pulls a restarted
/// node did just before the agent came up, without replaying the whole journal).
fn since_usec(args: &RunArgs) -> Result<u64> {
    match &args.since {
        Some(s) => Ok(parse_since(s)?),
        None => Ok(crate::clock::now_usec().saturating_sub(3600 * 1_000_000)),
    }
}

/// Runs the journal pipeline on its own thread; the receiver completes when it stopped.
fn spawn_journal(
    p: pipeline::Pipeline,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Result<tokio::sync::oneshot::Receiver<()>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("journal".into())
        .spawn(move || {
            pipeline::run(p, shared, stop);
            let _ = done_tx.send(());
        })
        .context("starting the journal thread")?;
    Ok(done_rx)
}

/// After the last push: the saved checkpoint stays, the saved outbox loses what the collector
/// just acknowledged (else the next start would send it again).
fn forget_acknowledged(state_dir: &Path, shared: &Shared) {
    let file = StateFile::new(state_dir);
    if let Ok(Some(mut saved)) = file.load() {
        saved.outbox = shared.lock().outbox.all();
        if let Err(e) = file.save(&saved) {
            tracing::error!("{e}");
        }
    }
}

/// SIGTERM (kubelet, systemd) and SIGINT (a terminal).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

type HostRead = (
    hostfiles::RegistriesRead,
    (
        mirrorscope_core::report::MachineConfigState,
        Option<crate::readfile::ReadError>,
    ),
);

/// Re-reads the host files off the runtime thread and publishes them; one read at a time, and
/// a read that hangs (a dead network file system) is reported instead of waited for.
struct Refresher {
    root: HostRoot,
    version: CImageVersion,
    shared: Arc<Shared>,
    /// A read that outlived [`READ_TIMEOUT`]: waited on again instead of starting another.
    pending: Option<tokio::task::JoinHandle<HostRead>>,
    cache: Arc<std::sync::Mutex<hostfiles::ReadCache>>,
}

impl Refresher {
    async fn refresh(&mut self) {
        let mut read = match self.pending.take() {
            Some(h) => h,
            None => {
                let (root, version) = (self.root.clone(), self.version);
                let cache = Arc::clone(&self.cache);
                tokio::task::spawn_blocking(move || {
                    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                    (
                        hostfiles::read_registries(&root, version, &mut cache),
                        machine::read_machine_config(&root),
                    )
                })
            }
        };
        let shared = &self.shared;
        match tokio::time::timeout(READ_TIMEOUT, &mut read).await {
            Err(_) => {
                let first = shared.lock().config_stalled.is_none();
                let why = format!(
                    "reading the node files under {} takes more than {}s",
                    self.root.path().display(),
                    READ_TIMEOUT.as_secs()
                );
                if first {
                    tracing::error!("{why}; the report keeps the last read");
                    shared.metrics.error("config", "read_timeout");
                    shared.config_stalled(why);
                }
                self.pending = Some(read);
            }
            Ok(Ok((reg, (mc, mc_failure)))) => {
                let error = reg.effective.as_ref().err().cloned();
                let changed = shared.set_host_files(reg, mc, mc_failure);
                release_freed_memory();
                if changed {
                    match error {
                        Some(e) => {
                            shared.metrics.error("config", "invalid");
                            tracing::warn!(
                                "registries configuration invalid (CRI-O keeps the last valid one): {e}"
                            )
                        }
                        None => tracing::info!(
                            "registries configuration: {}",
                            shared
                                .lock()
                                .registries
                                .effective_digest
                                .clone()
                                .unwrap_or_default()
                        ),
                    }
                }
            }
            Ok(Err(e)) => {
                shared.metrics.error("config", "reader_panicked");
                tracing::error!("reading node files: {e}");
            }
        }
    }
}

/// Hands memory freed after a large read (a big registries.conf parses into many small
/// allocations) back to the system; glibc keeps it otherwise, and RSS is what the pod's
/// memory limit sees.
fn release_freed_memory() {
    crate::journal::pages::release_freed_memory();
}

async fn config_loop(mut refresher: Refresher, mut rx: mpsc::Receiver<()>) {
    loop {
        tokio::select! {
            ping = rx.recv() => {
                if ping.is_none() {
                    // The watcher is gone: periodic re-reads only.
                    tokio::time::sleep(RESYNC).await;
                } else {
                    debounce(&mut rx).await;
                }
            }
            _ = tokio::time::sleep(RESYNC) => {}
        }
        refresher.refresh().await;
    }
}

async fn debounce(rx: &mut mpsc::Receiver<()>) {
    let limit = tokio::time::Instant::now() + DEBOUNCE_MAX;
    loop {
        tokio::select! {
            more = rx.recv() => if more.is_none() { return },
            _ = tokio::time::sleep(DEBOUNCE) => return,
            _ = tokio::time::sleep_until(limit) => return,
        }
    }
}
