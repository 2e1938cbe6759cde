//! The agent's HTTP server: `GET /v1/report`, `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::{to_prometheus_text, OPENMETRICS, PROMETHEUS_TEXT};
use super::state::Shared;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn handle<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
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
        (&Method::GET, "/readyz") => {
            if shared.lock().config_read {
                reply(StatusCode::OK, text, "ready\n")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    "node files not read yet\n",
                )
            }
        }
        (_, "/v1/report" | "/metrics" | "/healthz" | "/readyz") => {
            reply(StatusCode::METHOD_NOT_ALLOWED, text, "use GET\n")
        }
        _ => reply(StatusCode::NOT_FOUND, text, "not found\n"),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = handle(&shared, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
