//! `mirrorscope-collector`: ingests node reports, keeps the cluster's state, serves the views.

pub mod auth;
pub mod desired;
pub mod html;
pub mod kubewatch;
pub mod metrics;
pub mod state;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mirrorscope_core::journal::PullRecord;
use mirrorscope_core::openshift::RenderOptions;
use mirrorscope_core::report::{NodeReport, NODE_REPORT_VERSION};
use mirrorscope_core::rollout::Policy;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::api::ErrorBody;
use crate::kube::KubeClient;
use crate::query;
use auth::{Auth, AuthError};
use state::{DesiredState, Snapshot, Store};
use views::{PullFilter, Selection};

/// Largest accepted report (file contents plus a backlog of pull records).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Everything the collector is started with.
pub struct Config {
    pub listen: SocketAddr,
    pub desired: Vec<PathBuf>,
    pub render: RenderOptions,
    pub auth: Auth,
    pub kube: Option<KubeClient>,
    pub kube_poll: Duration,
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

/// Runs the collector until SIGTERM or Ctrl-C.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let mut store = Store::new(cfg.max_pulls);
    if !cfg.desired.is_empty() {
        store.desired = desired::from_paths(&cfg.desired, &cfg.render).context("--desired")?;
        eprintln!(
            "mirrorscope-collector: desired state: {}",
            describe(&store.desired)
        );
    }
    if let Some(path) = &cfg.state_file {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(snap) => {
                    let n = snap.nodes.len();
                    store.restore(snap);
                    eprintln!(
                        "mirrorscope-collector: restored {n} nodes from {}",
                        path.display()
                    );
                }
                Err(e) => eprintln!(
                    "mirrorscope-collector: ignoring state file {}: {e}",
                    path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "mirrorscope-collector: cannot read state file {}: {e}",
                path.display()
            ),
        }
    }
    let app = Arc::new(App {
        store: Mutex::new(store),
        auth: cfg.auth,
        policy: cfg.policy,
    });
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("mirrorscope-collector: listening on http://{addr}");

    if let Some(client) = cfg.kube.clone() {
        tokio::spawn(watch_nodes(client, app.clone()));
    }
    if let Some(client) = cfg.kube {
        let app = app.clone();
        let render_desired = cfg.desired.is_empty();
        let version = cfg.render.ocp_version;
        let every = cfg.kube_poll;
        tokio::spawn(async move {
            loop {
                match kubewatch::snapshot(&client, render_desired, version).await {
                    Ok(snap) => {
                        let mut s = app.store();
                        s.kube = Arc::new(state::KubeView {
                            nodes: snap.nodes,
                            pools: Arc::new(snap.pools),
                            nodes_version: snap.nodes_version,
                            error: None,
                        });
                        if let Some(d) = snap.desired {
                            if s.desired.target != d.target {
                                eprintln!("mirrorscope-collector: desired state: {}", describe(&d));
                            }
                            s.desired = d;
                        }
                    }
                    Err(e) => {
                        eprintln!("mirrorscope-collector: API server: {e}");
                        let mut s = app.store();
                        let mut k = (*s.kube).clone();
                        k.error = Some(e.to_string());
                        s.kube = Arc::new(k);
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    if let Some(path) = cfg.state_file.clone() {
        let app = app.clone();
        let every = cfg.state_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                save_state(&app, &path).await;
            }
        });
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        eprintln!("mirrorscope-collector: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&app, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    if let Some(path) = &cfg.state_file {
        save_state(&app, path).await;
    }
    eprintln!("mirrorscope-collector: stopped");
    Ok(())
}

/// Replaces the API view with a modified copy (views hold the old one meanwhile).
fn update_kube(app: &App, f: impl FnOnce(&mut state::KubeView)) {
    let mut s = app.store();
    let mut k = (*s.kube).clone();
    f(&mut k);
    s.kube = Arc::new(k);
}

/// Follows Node changes between listings. Starts from the last listing's resourceVersion,
/// resumes after the server ends a watch, and waits for the next listing after an error (e.g.
/// 410 Gone: the version is too old).
async fn watch_nodes(client: KubeClient, app: Arc<App>) {
    let mut resume: Option<String> = None;
    loop {
        let (listed, pools) = {
            let s = app.store();
            (s.kube.nodes_version.clone(), s.kube.pools.clone())
        };
        let Some(rv) = resume.take().or((!listed.is_empty()).then_some(listed)) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut last = rv.clone();
        let mut gone = false;
        let mut on_event = |kind: &str, obj: &serde_json::Value| -> bool {
            if let Some(v) = obj["metadata"]["resourceVersion"].as_str() {
                last = v.to_string();
            }
            match kind {
                "ADDED" | "MODIFIED" => {
                    if let Some((name, node)) = kubewatch::kube_node(obj, &pools) {
                        update_kube(&app, |k| {
                            k.nodes.insert(name, node);
                        });
                    }
                }
                "DELETED" => {
                    if let Some(name) = obj["metadata"]["name"].as_str() {
                        update_kube(&app, |k| {
                            k.nodes.remove(name);
                        });
                    }
                }
                "ERROR" => {
                    gone = true;
                    return false;
                }
                _ => {}
            }
            true
        };
        let result = client.watch("/api/v1/nodes", &rv, &mut on_event).await;
        match result {
            Ok(()) if !gone => resume = Some(last),
            Ok(()) => update_kube(&app, |k| k.nodes_version.clear()),
            Err(e) => {
                eprintln!("mirrorscope-collector: watching nodes: {e}");
                update_kube(&app, |k| k.nodes_version.clear());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn describe(d: &DesiredState) -> String {
    match &d.target {
        mirrorscope_core::rollout::Target::Desired(x) => format!("{} from {}", x.sha256, x.origin),
        mirrorscope_core::rollout::Target::Refused { reason, .. } => {
            format!("MCO will not render this; nodes keep the old config: {reason}")
        }
        mirrorscope_core::rollout::Target::Agreement => "none (nodes must agree)".into(),
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
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("mirrorscope-collector: writing state file: {e}"),
        Err(e) => eprintln!("mirrorscope-collector: writing state file: {e}"),
    }
}

type Resp = Response<Full<Bytes>>;

fn json<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(b)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, msg: &str) -> Resp {
    let body = serde_json::to_vec(&ErrorBody {
        error: msg.to_string(),
    })
    .unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn text(status: StatusCode, content_type: &str, body: String) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Routes one request. Views are computed on a copy of the store in the blocking pool, so
/// ingest (on the runtime thread) never waits for an evaluation of every node.
pub async fn handle(app: &App, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    if path == "/v1/reports" {
        return if req.method() == Method::POST {
            ingest(app, req).await
        } else {
            error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
        };
    }
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let q = query::parse(req.uri().query().unwrap_or(""));
    let store = app.light();
    let pulls: Vec<Arc<PullRecord>> = if path == "/v1/pulls" || path == "/" {
        app.store().pulls().cloned().collect()
    } else {
        Vec::new()
    };
    let policy = app.policy;
    match tokio::task::spawn_blocking(move || get_view(&store, &pulls, &policy, &path, &q)).await {
        Ok(r) => r,
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn get_view(
    store: &Store,
    pulls: &[Arc<PullRecord>],
    policy: &Policy,
    path: &str,
    q: &[(String, String)],
) -> Resp {
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let now = now_unix();
    match path {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/v1/nodes" => json(StatusCode::OK, &views::nodes(store, policy, now)),
        p if p.starts_with("/v1/nodes/") => {
            let name = &query::decode(&p["/v1/nodes/".len()..]);
            match views::node(store, policy, now, name) {
                Some(d) => json(StatusCode::OK, &d),
                None => error(StatusCode::NOT_FOUND, &format!("no node {name:?}")),
            }
        }
        "/v1/rollout" => {
            let sel = match selection(&param) {
                Ok(s) => s,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let desired = param("desired");
            json(
                StatusCode::OK,
                &views::rollout(store, policy, now, &sel, desired.as_deref()),
            )
        }
        "/v1/pulls" => {
            let fallback = match param("fallback").as_deref() {
                None | Some("") => None,
                Some("true" | "1") => Some(true),
                Some("false" | "0") => Some(false),
                Some(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("fallback={other:?}: expected true or false"),
                    )
                }
            };
            let outcome = param("outcome").filter(|o| !o.is_empty());
            if let Some(o) = &outcome {
                if !["pulled", "failed", "in_progress", "abandoned"].contains(&o.as_str()) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "outcome={o:?}: expected pulled, failed, in_progress or abandoned"
                        ),
                    );
                }
            }
            let limit = match param("limit").map(|l| l.parse::<usize>()) {
                None => 500,
                Some(Ok(l)) => l,
                Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "limit: expected a number"),
            };
            let f = PullFilter {
                registry: param("registry").filter(|x| !x.is_empty()),
                node: param("node").filter(|x| !x.is_empty()),
                outcome,
                fallback,
                limit,
            };
            json(StatusCode::OK, &views::pulls(pulls, &f))
        }
        "/v1/registries" => json(StatusCode::OK, &views::registries(store)),
        "/v1/explain" => {
            let image = param("image").unwrap_or_default();
            let node = param("node").filter(|n| !n.is_empty());
            match views::explain_image(store, &image, node.as_deref()) {
                Ok(e) => json(StatusCode::OK, &e),
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            }
        }
        "/metrics" => {
            let rollout = views::rollout(store, policy, now, &Selection::default(), None);
            let regs = views::registries(store);
            let counters = (
                store.reports_total,
                store.pulls_accepted_total,
                store.pulls_duplicate_total,
            );
            match metrics::render(&rollout, &regs, counters) {
                Ok(body) => text(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        "/" => {
            let rollout = views::rollout(store, policy, now, &Selection::default(), None);
            let nodes = views::nodes(store, policy, now);
            let regs = views::registries(store);
            let troubled = views::troubled_pulls(pulls, 50);
            let page = html::page(
                &rollout,
                &nodes,
                &regs,
                &troubled,
                &store.desired.notes,
                store.kube.error.as_deref(),
            );
            text(StatusCode::OK, "text/html; charset=utf-8", page)
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    }
}

fn selection(param: &dyn Fn(&str) -> Option<String>) -> Result<Selection, String> {
    let mut sel = Selection {
        pool: param("pool").filter(|p| !p.is_empty()),
        ..Default::default()
    };
    if let Some(s) = param("selector").filter(|s| !s.is_empty()) {
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("selector {part:?}: expected key=value"))?;
            sel.selector
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if let Some(n) = param("nodes").filter(|n| !n.is_empty()) {
        sel.names = n.split(',').map(|x| x.trim().to_string()).collect();
    }
    if let Some(m) = param("min_nodes").filter(|n| !n.is_empty()) {
        sel.min_nodes = m
            .parse()
            .map_err(|_| format!("min_nodes={m:?}: expected a number"))?;
    }
    Ok(sel)
}

async fn ingest(app: &App, req: Request<Incoming>) -> Resp {
    let authz = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return too_large();
    }
    let identity = match app.auth.authenticate(authz.as_deref()).await {
        Ok(i) => i,
        Err(e) => return auth_error(&e),
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large();
            }
            return error(StatusCode::BAD_REQUEST, &format!("reading body: {e}"));
        }
    };
    let report: NodeReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            #[derive(serde::Deserialize)]
            struct V {
                version: Option<u32>,
            }
            if let Ok(V { version: Some(v) }) = serde_json::from_slice::<V>(&body) {
                if v != NODE_REPORT_VERSION {
                    return version_error(v);
                }
            }
            return error(StatusCode::BAD_REQUEST, &format!("invalid NodeReport: {e}"));
        }
    };
    if report.version != NODE_REPORT_VERSION {
        return version_error(report.version);
    }
    if report.node.is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid NodeReport: node is empty");
    }
    if let Err(e) = identity.may_report(&report.node) {
        return auth_error(&e);
    }
    let ack = app.store().ingest(report, now_unix());
    json(StatusCode::OK, &ack)
}

fn too_large() -> Resp {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("report larger than {MAX_BODY} bytes"),
    )
}

fn version_error(v: u32) -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        &format!(
            "NodeReport version {v} is not supported: this collector accepts version {NODE_REPORT_VERSION}; run agents and collector of the same release"
        ),
    )
}

fn auth_error(e: &AuthError) -> Resp {
    let status = match e {
        AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, &e.to_string())
}
