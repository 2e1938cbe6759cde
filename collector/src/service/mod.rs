//! `mirrorscope-collector`: ingests node reports, keeps the cluster's state, serves the views.
//!
//! Start-up is here; [`routes`] answers requests, [`ingest`] files reports, [`cluster`] keeps
//! the API server's view current. Background tasks run in one join set under one cancellation
//! token: SIGTERM cancels them, open connections finish their requests, the state file is written,
//! and a task that ends early (or panics) is logged and stops the collector instead of leaving it
//! half alive.

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
pub use routes::handle;
use state::{Snapshot, Store};

/// Largest accepted report (file contents plus a backlog of pull records).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// How long open connections may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(5);

/// Everything the collector is started with.
pub struct Config {
    pub listen: SocketAddr,
    pub desired: Vec<PathBuf>,
    pub render: RenderOptions,
    pub auth: Auth,
    pub kube: Option<kube::Client>,
    pub state_file: Option<PathBuf>,
    pub state_interval: Duration,
    pub policy: Policy,
    pub max_pulls: usize,
}

/// Shared by every connection.
pub struct App {
    store: Mutex<Store>,
    auth: Auth,
    policy: Policy,
    pub errors: errors::Errors,
}

impl App {
    /// A copy of the store without the pull window, taken under the lock in well under a
    /// millisecond at 5,000 nodes; views are computed on it so ingest never waits for them.
    fn light(&self) -> Store {
        self.store().light_copy()
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
    if let Some(path) = &cfg.state_file {
        restore(&mut store, path);
    }
    let app = Arc::new(App {
        store: Mutex::new(store),
        auth: cfg.auth,
        policy: cfg.policy,
        errors: errors::Errors::default(),
    });
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");

    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<&'static str> = JoinSet::new();
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
    {
        let (app, cancel) = (app.clone(), cancel.clone());
        tasks.spawn(async move {
            serve(listener, app, cancel).await;
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

/// Accepts connections until cancelled, then lets open ones finish (for at most [`DRAIN`]).
async fn serve(listener: TcpListener, app: Arc<App>, cancel: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&app, req).await) }
        });
        let conn =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
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

async fn save_state(app: &Arc<App>, path: &std::path::Path) {
    let snap = app.store().snapshot();
    let path = path.to_path_buf();
    let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&snap).map_err(std::io::Error::other)?;
        mirrorscope_core::fsutil::write_atomic(&path, &bytes)
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
