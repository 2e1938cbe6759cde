//! `POST /v1/reports`: authenticate, bound, decode and file one agent's report.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use mirrorscope_core::report::{NodeReport, NODE_REPORT_VERSION};

use super::auth::AuthError;
use super::responses::{error, json, Resp};
use super::state::{MAX_REGISTRIES, OTHER_REGISTRY};
use super::{now_unix, App, MAX_BODY};

/// A report body (at most [`MAX_BODY`]) must arrive within this time once its head has: a
/// connection busy with a slow body is never closed for a new one.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Files one report; every refusal is logged and counted by kind.
pub async fn ingest(app: &App, req: Request<Incoming>) -> Resp {
    let resp = file_report(app, req).await;
    let kind = match resp.status().as_u16() {
        200..=299 => return resp,
        413 => "too_large",
        408 => "body_timeout",
        401 => "unauthenticated",
        403 => "forbidden",
        503 => "auth_unavailable",
        // Logged and counted where the write-ahead log failed.
        507 => return resp,
        _ => "invalid_report",
    };
    app.errors.count("ingest", kind);
    tracing::warn!(status = resp.status().as_u16(), "report refused: {kind}");
    resp
}

async fn file_report(app: &App, req: Request<Incoming>) -> Resp {
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
    let read = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    );
    let body = match read.await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "report body not received within {}s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
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
    // With --state-file, the records are on disk before the agent hears 200 (and forgets them).
    let _gate = match &app.wal {
        Some(wal) if !report.pulls.is_empty() => {
            // Stale reports too: their records are filed all the same.
            let gate = wal.gate.lock().await;
            if let Err(e) = wal.append(&report.node, &report.pulls).await {
                app.errors.count("state", "wal_write_failed");
                tracing::error!("{e}; report refused so the agent keeps its records");
                return error(
                    StatusCode::INSUFFICIENT_STORAGE,
                    &format!("cannot make the records durable: {e}"),
                );
            }
            Some(gate)
        }
        _ => None,
    };
    let done = app.store().ingest_checked(report, now_unix());
    if done.folded > 0 {
        app.errors.add("ingest", "registry_folded", done.folded);
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let msg = format!(
            "{} pulls counted under registry {OTHER_REGISTRY:?}: {MAX_REGISTRIES} registries already kept",
            done.folded
        );
        if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::debug!("{msg}");
        } else {
            tracing::warn!("{msg} (further ones are only counted: mirrorscope_errors_total{{component=\"ingest\",error_type=\"registry_folded\"}})");
        }
    }
    let ack = done.ack;
    match done.stale {
        None => json(StatusCode::OK, &ack),
        Some(why) => {
            // 200 all the same: the records are filed, and the agent may forget them.
            app.errors.count("ingest", "stale_report");
            tracing::warn!("report refused: {why}");
            json(
                StatusCode::OK,
                &StaleAck {
                    accepted: ack.accepted,
                    duplicates: ack.duplicates,
                    stale: why,
                },
            )
        }
    }
}

/// A [`mirrorscope_core::report::PushAck`] for a stale report, saying why it was ignored.
#[derive(serde::Serialize)]
struct StaleAck {
    accepted: u64,
    duplicates: u64,
    stale: String,
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
    error(e.status(), &e.to_string())
}
