//! `mirrorscope-collector`: ingests node reports, keeps the cluster's state, serves the views.
//!
//! Start-up is here; [`routes`] answers requests, [`ingest`] files reports, [`cluster`] keeps
//! the API server's view current. Background tasks run in one join set under one cancellation
//! token: SIGTERM cancels them, open connections finish their requests, the state file is written,
//! and a task that ends early (or panics) is logged and stops the collector instead of leaving it
//! half alive.

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod errors;
pub mod html;
mod ingest;
pub mod metrics;
mod responses;
mod routes;
pub mod state;
pub mod views;
pub mod wal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use mirrorscope_core::openshift::inputs::read_paths;
use mirrorscope_core::openshift::{ParseOptions, RenderOptions};
use mirrorscope_core::rollout::{DesiredState, Policy};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use auth::Auth;
pub use routes::{handle, Door};
use state::{Snapshot, Store};

/// Largest accepted report (file contents plus a backlog of pull records).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// How long open connections may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(5);

/// Who may read the views and metrics on the main listener: callers whose bearer token the API
/// server authorizes (kube-rbac-proxy's way). `/metrics` is asked as the non-resource URL (what
/// Prometheus's ClusterRole grants); the views as `views`, the permission the API server
/// checks on the service-proxy path, so one role binding opens both ways in.
pub struct ViewsAuthz {
    pub authorizer: mirrorscope_serve::authz::Authorizer,
    pub views: mirrorscope_serve::authz::Attributes,
}

/// Everything the collector is started with.
pub struct Config {
    pub listen: SocketAddr,
    /// Read-only listener for the API server's service proxy (see [`Door::ServiceProxy`]).
    pub proxy_listen: Option<SocketAddr>,
    /// Plain HTTP, or TLS with a certificate reloaded as it rotates.
    pub acceptor: mirrorscope_serve::tls::Acceptor,
    pub views_authz: Option<ViewsAuthz>,
    pub desired: Vec<PathBuf>,
    pub render: RenderOptions,
    pub auth: Auth,
    pub kube: Option<kube::Client>,
    pub state_file: Option<PathBuf>,
    pub state_interval: Duration,
    pub policy: Policy,
    pub max_pulls: usize,
    pub audit: audit::AuditOptions,
}

/// Shared by every connection.
pub struct App {
    store: Mutex<Store>,
    auth: Auth,
    views_authz: Option<ViewsAuthz>,
    policy: Policy,
    pub errors: errors::Errors,
    /// With `--state-file`: pull records are made durable here before a push is answered.
    wal: Option<wal::Wal>,
    /// Images of the in-cluster objects, kept by the inventory watches.
    inventory: Mutex<audit::InventoryObjects>,
    audit: Mutex<audit::AuditState>,
    pub audit_enabled: bool,
}

impl App {
    /// A copy of the store without the pull window, taken under the lock in well under a
    /// millisecond at 5,000 nodes; views are computed on it so ingest never waits for them.
    fn light(&self) -> Store {
        self.store().light_copy()
    }

    fn inventory(&self) -> MutexGuard<'_, audit::InventoryObjects> {
        self.inventory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn audit(&self) -> MutexGuard<'_, audit::AuditState> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store half-updated in a way that
        // matters more than losing the whole collector, so keep serving.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The `--desired` objects' rendering; objects the API server would reject are fatal, since
/// they can never be the cluster's state.
pub fn desired_from_paths(
    paths: &[PathBuf],
    options: &RenderOptions,
) -> anyhow::Result<DesiredState> {
    let set = read_paths(
        paths,
        &ParseOptions {
            version: options.ocp_version,
        },
        &mut std::io::empty(),
    )?;
    if let Some(e) = set.errors.first() {
        anyhow::bail!("the API server would reject the desired objects: {e}");
    }
    let origin = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(DesiredState::from_inputs(&set, options, &origin))
}

fn restore(store: &mut Store, path: &std::path::Path) {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(snap) => {
                let n = snap.nodes.len();
                store.restore(snap);
                tracing::info!("restored {n} nodes from {}", path.display());
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring state file")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read state file"),
    }
}

/// Runs the collector until SIGTERM or Ctrl-C.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let mut store = Store::new(cfg.max_pulls);
    if !cfg.desired.is_empty() {
        store.desired = desired_from_paths(&cfg.desired, &cfg.render).context("--desired")?;
        tracing::info!(desired = %store.desired.describe(), "desired state");
    }
    let errors = errors::Errors::default();
    let mut wal = None;
    let mut replayed = 0;
    if let Some(path) = &cfg.state_file {
        restore(&mut store, path);
        let wal_path = wal::path_for(path);
        let (entries, torn) = wal::read(&wal_path).context("--state-file")?;
        if torn > 0 {
            errors.add("state", "wal_torn_line", torn as u64);
            tracing::warn!(
                "{torn} unreadable lines in {} (a push cut short by a crash: never acknowledged)",
                wal_path.display()
            );
        }
        for e in entries {
            replayed += store.file_pulls(&e.node, e.pulls).accepted;
        }
        if replayed > 0 {
            tracing::info!(
                "replayed {replayed} pull records from {}",
                wal_path.display()
            );
        }
        wal = Some(wal::Wal::open(&wal_path).context("--state-file")?);
    }
    let app = Arc::new(App {
        store: Mutex::new(store),
        auth: cfg.auth,
        views_authz: cfg.views_authz,
        policy: cfg.policy,
        errors,
        wal,
        inventory: Mutex::default(),
        audit: Mutex::default(),
        audit_enabled: !cfg.audit.interval.is_zero(),
    });
    {
        let app = app.clone();
        cfg.acceptor.count_reload_failures_with(move || {
            app.errors.count("tls", "certificate_reload_failed")
        });
    }
    if let (Some(path), true) = (&cfg.state_file, replayed > 0) {
        // Fold the replayed log into the state file (and empty it) before serving.
        save_state(&app, path).await;
    }
    let scheme = cfg.acceptor.scheme();
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
    let proxy_listener = match cfg.proxy_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("--proxy-listen {addr}"))?;
            tracing::info!(
                "listening on {scheme}://{} for the API server's service proxy (reads only)",
                l.local_addr()?
            );
            Some(l)
        }
        None => None,
    };

    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<&'static str> = JoinSet::new();
    if app.audit_enabled {
        let (app, cancel, opts) = (app.clone(), cancel.clone(), cfg.audit.clone());
        let kube = cfg.kube.clone();
        if let Some(client) = kube.clone() {
            let (app, cancel) = (app.clone(), cancel.clone());
            tasks.spawn(async move {
                cluster::run_inventory(client, app, cancel).await;
                "the inventory watch"
            });
        }
        tasks.spawn(async move {
            audit::run(app, opts, kube, cancel).await;
            "the audit"
        });
    }
    if let Some(client) = cfg.kube {
        let (app, cancel) = (app.clone(), cancel.clone());
        let render_desired = cfg.desired.is_empty();
        let version = cfg.render.ocp_version;
        tasks.spawn(async move {
            cluster::run(client, app, render_desired, version, cancel).await;
            "the API server watch"
        });
    }
    if let Some(path) = cfg.state_file.clone() {
        let (app, cancel, every) = (app.clone(), cancel.clone(), cfg.state_interval);
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(every) => save_state(&app, &path).await,
                }
            }
            "the state file writer"
        });
    }
    let doors = std::iter::once((listener, Door::Main))
        .chain(proxy_listener.map(|l| (l, Door::ServiceProxy)));
    for (listener, door) in doors {
        let (app, cancel, acceptor) = (app.clone(), cancel.clone(), cfg.acceptor.clone());
        tasks.spawn(async move {
            serve(listener, door, acceptor, app, cancel).await;
            "the HTTP server"
        });
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut failed = None;
    tokio::select! {
        _ = &mut shutdown => tracing::info!("stopping"),
        ended = tasks.join_next() => {
            let what = match ended {
                Some(Ok(name)) => format!("{name} ended"),
                Some(Err(e)) => format!("a task failed: {e}"),
                None => "no task left".to_string(),
            };
            tracing::error!("{what}; stopping");
            failed = Some(what);
        }
    }
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    if let Some(path) = &cfg.state_file {
        save_state(&app, path).await;
    }
    tracing::info!("stopped");
    match failed {
        Some(what) => anyhow::bail!("{what}"),
        None => Ok(()),
    }
}

/// A client must send a request head within this time (slow or half-sent requests, and idle
/// keep-alive connections, are closed past it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections open at once (lowered to fit the process's limit of open files).
pub const MAX_CONNECTIONS: usize = 1024;
/// File descriptors left for everything but client connections (state file, API server,
/// the runtime's own).
const FD_RESERVE: usize = 64;

/// The connection cap for this process: [`MAX_CONNECTIONS`], or fewer when the soft limit of
/// open files (from /proc/self/limits) would be reached first.
fn connection_cap() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        });
    match soft {
        Some(n) => MAX_CONNECTIONS.min(n.saturating_sub(FD_RESERVE).max(16)),
        None => MAX_CONNECTIONS,
    }
}

/// One open connection: busy while a request is being answered.
struct Open {
    task: tokio::task::AbortHandle,
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

/// Logs the first occurrence of a failure kind at warn (the rest at debug); counts each.
struct Once {
    logged: std::collections::BTreeSet<&'static str>,
}

impl Once {
    fn report(&mut self, app: &App, kind: &'static str, msg: &str) {
        app.errors.count("http", kind);
        if self.logged.insert(kind) {
            tracing::warn!("{msg} (further ones are only counted: mirrorscope_errors_total{{component=\"http\",error_type=\"{kind}\"}})");
        } else {
            tracing::debug!("{msg}");
        }
    }
}

/// Accepts connections until cancelled, then lets open ones finish (for at most [`DRAIN`]).
/// Past the connection cap the oldest idle connection is closed for the new one (clients that
/// hold connections open cannot lock out probes and agents); when every one is busy the new
/// connection is refused.
async fn serve(
    listener: TcpListener,
    door: Door,
    acceptor: mirrorscope_serve::tls::Acceptor,
    app: Arc<App>,
    cancel: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let cap = connection_cap();
    tracing::info!("serving at most {cap} connections at once");
    let mut open: std::collections::VecDeque<Open> = std::collections::VecDeque::new();
    let once = Arc::new(Mutex::new(Once {
        logged: Default::default(),
    }));
    let report = |kind: &'static str, msg: &str| {
        once.lock()
            .unwrap_or_else(|p| p.into_inner())
            .report(&app, kind, msg)
    };
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, typically.
                report("accept", &format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        open.retain(|o| !o.task.is_finished());
        if open.len() >= cap {
            match open
                .iter()
                .position(|o| o.busy.load(Ordering::Relaxed) == 0)
            {
                Some(i) => {
                    if let Some(idle) = open.remove(i) {
                        idle.task.abort();
                    }
                    report(
                        "too_many_connections",
                        &format!("more than {cap} connections at once; closed the oldest idle one"),
                    );
                }
                None => {
                    report(
                        "connections_all_busy",
                        &format!("{cap} connections all busy; refused a new one"),
                    );
                    drop(stream);
                    continue;
                }
            }
        }
        let _ = stream.set_nodelay(true);
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc = {
            let (app, busy) = (app.clone(), busy.clone());
            hyper::service::service_fn(move |req| {
                let (app, busy) = (app.clone(), busy.clone());
                async move {
                    busy.fetch_add(1, Ordering::Relaxed);
                    let r = handle(&app, door, req).await;
                    busy.fetch_sub(1, Ordering::Relaxed);
                    Ok::<_, std::convert::Infallible>(r)
                }
            })
        };
        let (app2, once2, acceptor) = (app.clone(), once.clone(), acceptor.clone());
        let watcher = graceful.watcher();
        let task = tokio::spawn(async move {
            // The handshake runs in the connection's task (bounded there), so a slow client
            // never holds up the accept loop.
            let stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    once2.lock().unwrap_or_else(|p| p.into_inner()).report(
                        &app2,
                        "tls_handshake",
                        &format!("TLS handshake: {e}"),
                    );
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn).await {
                let kind = if e.is_timeout() {
                    "header_timeout"
                } else {
                    "connection"
                };
                once2.lock().unwrap_or_else(|p| p.into_inner()).report(
                    &app2,
                    kind,
                    &format!("HTTP connection: {e}"),
                );
            }
        });
        open.push_back(Open {
            task: task.abort_handle(),
            busy,
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// Writes the state file; then empties the write-ahead log, whose records the snapshot holds
/// (pushes with records wait meanwhile, so none is truncated unsaved).
async fn save_state(app: &Arc<App>, path: &std::path::Path) {
    let _gate = match &app.wal {
        Some(w) => Some(w.gate.lock().await),
        None => None,
    };
    let snap = app.store().snapshot();
    let path = path.to_path_buf();
    let wal_file = app.wal.as_ref().map(|w| w.file());
    let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&snap).map_err(std::io::Error::other)?;
        mirrorscope_core::fsutil::write_atomic(&path, &bytes)?;
        match wal_file {
            Some(f) => wal::Wal::truncate_blocking(&f),
            None => Ok(()),
        }
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            app.errors.count("state", "save_failed");
            tracing::error!(error = %e, "writing state file")
        }
        Err(e) => {
            app.errors.count("state", "save_failed");
            tracing::error!(error = %e, "writing state file")
        }
    }
}
