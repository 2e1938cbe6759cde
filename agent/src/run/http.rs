//! The agent's HTTP server: `GET /v1/report`, `/metrics`, `/healthz`, `/readyz`, plain on
//! loopback or TLS. With an authorizer, `/v1/report` and `/metrics` answer only callers the API
//! server authorizes for that path (`nonResourceURLs` in RBAC, as kube-rbac-proxy asks); the
//! probes stay open for the kubelet.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use mirrorscope_serve::authz::{Attributes, Authorizer};
use mirrorscope_serve::tls::Acceptor;

use super::metrics::{to_prometheus_text, OPENMETRICS, PROMETHEUS_TEXT};
use super::state::Shared;

/// How the server meets its clients.
pub struct Edge {
    pub acceptor: Acceptor,
    pub authorizer: Option<Authorizer>,
}

/// The answer to a request that needs authorization and lacks it, or `None` to go on.
async fn refuse<B>(
    shared: &Shared,
    edge: &Edge,
    req: &Request<B>,
) -> Option<Response<Full<Bytes>>> {
    let authorizer = edge.authorizer.as_ref()?;
    let path = req.uri().path();
    if !matches!(path, "/v1/report" | "/metrics") {
        return None;
    }
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let attrs = Attributes::non_resource(req.method(), path);
    match authorizer.authorize(header, &attrs).await {
        Ok(_) => None,
        Err(e) => {
            shared.metrics.error("http", e.kind());
            Some(reply(
                e.status(),
                "text/plain; charset=utf-8",
                format!("{e}\n"),
            ))
        }
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn handle<B: hyper::body::Body>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    // No route takes a body; a large one is refused before anything reads it (the connection
    // is then closed rather than drained).
    if hyper::body::Body::size_hint(req.body())
        .upper()
        .is_none_or(|n| n > MAX_BODY)
    {
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            text,
            "request body too large\n",
        );
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/report") => match serde_json::to_vec(&shared.report(None)) {
            Ok(body) => reply(StatusCode::OK, "application/json", body),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, text, e.to_string()),
        },
        (&Method::GET, "/metrics") => {
            let om = shared.metrics.encode();
            // Prometheus asks for OpenMetrics; curl and promtool get the classic text format.
            let wants_om = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            if wants_om {
                reply(StatusCode::OK, OPENMETRICS, om)
            } else {
                reply(StatusCode::OK, PROMETHEUS_TEXT, to_prometheus_text(&om))
            }
        }
        (&Method::GET, "/healthz") => reply(StatusCode::OK, text, "ok\n"),
        (&Method::GET, "/readyz") => match shared.not_ready() {
            None => reply(StatusCode::OK, text, "ready\n"),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, text, format!("{why}\n")),
        },
        (_, "/v1/report" | "/metrics" | "/healthz" | "/readyz") => {
            reply(StatusCode::METHOD_NOT_ALLOWED, text, "use GET\n")
        }
        _ => reply(StatusCode::NOT_FOUND, text, "not found\n"),
    }
}

/// Most connections served at once. Scrapers, probes and the occasional curl need a handful;
/// past this the oldest connection is closed for the new one, so that clients holding
/// connections open (slow or half-sent requests) cannot lock out the kubelet's probes.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request head within this time (slow or half-sent requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection, keep-alive included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest request body accepted (no route reads one).
const MAX_BODY: u64 = 64 * 1024;
/// Largest request head buffered (hyper's minimum is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, edge: Arc<Edge>) {
    let mut open: VecDeque<AbortHandle> = VecDeque::with_capacity(MAX_CONNECTIONS);
    let mut accept_failed = false;
    let mut evicted_any = false;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, typically.
                shared.metrics.error("http", "accept");
                if !accept_failed {
                    tracing::warn!("accept: {e}");
                    accept_failed = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        open.retain(|h| !h.is_finished());
        if open.len() >= MAX_CONNECTIONS {
            if let Some(oldest) = open.pop_front() {
                oldest.abort();
            }
            shared.metrics.error("http", "too_many_connections");
            if !evicted_any {
                tracing::warn!(
                    "more than {MAX_CONNECTIONS} HTTP connections at once; closing the oldest"
                );
                evicted_any = true;
            }
        }
        let shared = Arc::clone(&shared);
        let edge = Arc::clone(&edge);
        let task = tokio::spawn(async move {
            // Bounded by the handshake timeout, in the connection's own task.
            let stream = match edge.acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    shared.metrics.error("http", "tls_handshake");
                    tracing::debug!("TLS handshake: {e}");
                    return;
                }
            };
            let svc = {
                let (shared, edge) = (Arc::clone(&shared), Arc::clone(&edge));
                hyper::service::service_fn(move |req| {
                    let (shared, edge) = (Arc::clone(&shared), Arc::clone(&edge));
                    async move {
                        let r = match refuse(&shared, &edge, &req).await {
                            Some(r) => r,
                            None => handle(&shared, &req),
                        };
                        Ok::<_, Infallible>(r)
                    }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), svc);
            // Past its lifetime a connection is simply closed; clients reconnect.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
        open.push_back(task.abort_handle());
    }
}
