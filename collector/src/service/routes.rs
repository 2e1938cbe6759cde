//! Routes: which view answers which path. Views are computed on a copy of the store in the
//! blocking pool, so ingest (on the runtime thread) never waits for an evaluation of every node.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use mirrorscope_core::journal::PullRecord;
use mirrorscope_core::query;
use mirrorscope_core::rollout::Policy;

use super::responses::{error, json, text, Resp};
use super::state::Store;
use super::views::{self, PullFilter, Selection};
use super::{audit, html, ingest, metrics, now_unix, App};
use mirrorscope_core::api::AuditView;
use mirrorscope_serve::authz::Attributes;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `--listen`: agents push here, Prometheus scrapes here, and every other caller shows a
    /// bearer token that the API server authorizes.
    Main,
    /// `--proxy-listen`: only the API server's service proxy reaches it (NetworkPolicy). The
    /// API server has authorized the caller for `get services/proxy` on the collector and
    /// removed the caller's credentials, so nothing is left to check here; it serves reads only.
    ServiceProxy,
}

/// Routes one request. Views are computed on a copy of the store in the blocking pool, so
/// ingest (on the runtime thread) never waits for an evaluation of every node.
pub async fn handle(app: &App, door: Door, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    if path == "/v1/reports" && door == Door::Main {
        return if req.method() == Method::POST {
            ingest::ingest(app, req).await
        } else {
            error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
        };
    }
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    if door == Door::Main && path != "/healthz" {
        if let Some(authz) = &app.views_authz {
            let attrs = if path == "/metrics" {
                Attributes::non_resource(req.method(), &path)
            } else {
                authz.views.clone()
            };
            let header = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if let Err(e) = authz.authorizer.authorize(header, &attrs).await {
                app.errors.count("http", e.kind());
                return error(e.status(), &e.to_string());
            }
        }
    }
    match path.as_str() {
        "/v1/audit" => return json(StatusCode::OK, &audit::view(app)),
        "/v1/inventory" => return json(StatusCode::OK, &audit::inventory_view(app)),
        _ => {}
    }
    let q = query::parse(req.uri().query().unwrap_or(""));
    let audit = audit::view(app);
    let store = app.light();
    let pulls: Vec<Arc<PullRecord>> = if path == "/v1/pulls" || path == "/" {
        app.store().pulls().cloned().collect()
    } else {
        Vec::new()
    };
    let policy = app.policy;
    let errors = app.errors.snapshot();
    match tokio::task::spawn_blocking(move || {
        get_view(&store, &pulls, &policy, &errors, &audit, &path, &q)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn get_view(
    store: &Store,
    pulls: &[Arc<PullRecord>],
    policy: &Policy,
    errors: &[((&'static str, &'static str), u64)],
    audit: &AuditView,
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
        "/v1/configurations" => {
            let node = param("node").filter(|n| !n.is_empty());
            match views::configurations(store, node.as_deref()) {
                Ok(c) => json(StatusCode::OK, &c),
                Err(e) => error(StatusCode::NOT_FOUND, &e),
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
            match metrics::render(&rollout, &regs, counters, errors, audit) {
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
                audit,
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
