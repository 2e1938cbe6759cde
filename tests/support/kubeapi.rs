//! A mocked Kubernetes API server on loopback, in the API's own shapes: collections with a
//! `resourceVersion`, lists (with `limit`), watch streams of `ADDED`/`MODIFIED`/`DELETED`/
//! `BOOKMARK` events resumed from a version, `410 Gone` for a version compacted away (which
//! forces the client to relist), TokenReview answers per token, and a service proxy to a
//! collector. Threads, one per connection, HTTP/1.1 with keep-alive; plain or TLS.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::collector::http;

/// The audience the mock's agent tokens are minted for (the DaemonSet's projected token).
pub const MOCK_TOKEN_AUDIENCE: &str = "mirrorscope-collector";

/// A reader's token (for the API server's own audience, as `oc whoami -t` prints): the mock
/// knows it as the user [`MOCK_READER`], granted everything unless a test says otherwise.
pub const MOCK_READER_TOKEN: &str = "reader-token";
pub const MOCK_READER: &str = "reader";

/// One change, as a watch reports it.
#[derive(Clone)]
struct Change {
    rv: u64,
    collection: String,
    kind: &'static str,
    object: serde_json::Value,
}

struct Watcher {
    collection: String,
    tx: Sender<String>,
}

#[derive(Default)]
pub struct MockState {
    /// Collection path (`/api/v1/nodes`) → object name → object.
    collections: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Collections whose kind the server serves (a list of an unknown path is 404).
    served: std::collections::BTreeSet<String>,
    /// Kind and apiVersion of each served collection's items, for its List.
    list_kinds: BTreeMap<String, (String, String)>,
    /// The newest resourceVersion.
    rv: u64,
    /// Every change since `compacted`, oldest first.
    history: Vec<Change>,
    /// Watches from a version below this are answered `410 Gone`.
    compacted: u64,
    watchers: Vec<Watcher>,
    /// Token → TokenReview `status` (agents' tokens, minted for [`MOCK_TOKEN_AUDIENCE`]).
    pub reviews: BTreeMap<String, serde_json::Value>,
    /// Token → `user` of a token for the API server's own audience (users, Prometheus).
    pub users: BTreeMap<String, serde_json::Value>,
    /// User → what a SubjectAccessReview allows: `verb /path` for non-resource URLs,
    /// `verb resource/subresource namespace/name` for resources, or `*`.
    pub grants: BTreeMap<String, Vec<String>>,
    /// Requests seen: "METHOD path" (watches as "WATCH path").
    pub seen: Vec<String>,
    /// Service proxy prefix → collector base URL.
    pub proxies: BTreeMap<String, String>,
    /// Bearer token every request must carry, when set.
    pub require_token: Option<String>,
    /// Paths (collection or object) answered with this status and a Status body.
    pub fail: BTreeMap<String, u16>,
}

impl MockState {
    fn bump(&mut self, collection: &str, kind: &'static str, mut object: serde_json::Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = serde_json::json!(self.rv.to_string());
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let items = self.collections.entry(collection.to_string()).or_default();
        if kind == "DELETED" {
            items.remove(&name);
        } else {
            items.insert(name, object.clone());
        }
        let change = Change {
            rv: self.rv,
            collection: collection.to_string(),
            kind,
            object,
        };
        let line = event_line(&change);
        self.watchers
            .retain(|w| w.collection != change.collection || w.tx.send(line.clone()).is_ok());
        self.history.push(change);
    }
}

fn event_line(c: &Change) -> String {
    serde_json::json!({"type": c.kind, "object": c.object}).to_string()
}

pub struct MockApi {
    pub url: String,
    pub state: Arc<Mutex<MockState>>,
}

/// `/apis/g/v/plural/name` → (`/apis/g/v/plural`, `name`); `/apis/g/v/plural` → (itself, None);
/// `/api/v1/namespaces/ns/plural/name` → (`/api/v1/namespaces/ns/plural`, `name`).
fn split_path(path: &str) -> (String, Option<String>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // api/v1/PLURAL[/NAME], apis/G/V/PLURAL[/NAME], and either with namespaces/NS/ before PLURAL
    let mut base = if segs.first() == Some(&"api") { 3 } else { 4 };
    if segs.get(base - 1) == Some(&"namespaces") && segs.len() >= base + 2 {
        base += 2;
    }
    if segs.len() > base {
        let coll = format!("/{}", segs[..base].join("/"));
        (coll, Some(segs[base].to_string()))
    } else {
        (path.to_string(), None)
    }
}

impl MockApi {
    pub fn start() -> MockApi {
        Self::start_with(None)
    }

    /// The mock behind TLS with this server certificate chain and key (PEM).
    pub fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> MockApi {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Self::start_with(Some(Arc::new(config)))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let mut state = MockState {
            rv: 100,
            compacted: 0,
            ..Default::default()
        };
        state.users.insert(
            MOCK_READER_TOKEN.into(),
            serde_json::json!({"username": MOCK_READER, "uid": "u-1", "groups": ["system:authenticated"]}),
        );
        state.grants.insert(MOCK_READER.into(), vec!["*".into()]);
        let state = Arc::new(Mutex::new(state));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(conn, &st),
                    Some(cfg) => {
                        let Ok(server) = rustls::ServerConnection::new(cfg) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(server, conn), &st)
                    }
                });
            }
        });
        MockApi { url, state }
    }

    /// Serves `path`: a List (`items`) replaces a whole collection (its changes become watch
    /// events); any other object is created or replaced at `collection/name`.
    pub fn set(&self, path: &str, v: serde_json::Value) {
        let mut s = self.state.lock().unwrap();
        if let Some(items) = v["items"].as_array() {
            let item_kind = v["kind"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches("List")
                .to_string();
            let api_version = v["apiVersion"].as_str().unwrap_or("v1").to_string();
            s.served.insert(path.to_string());
            s.list_kinds
                .insert(path.to_string(), (item_kind, api_version));
            let new: BTreeMap<String, serde_json::Value> = items
                .iter()
                .map(|i| {
                    (
                        i["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        i.clone(),
                    )
                })
                .collect();
            let old = s.collections.get(path).cloned().unwrap_or_default();
            for (name, obj) in &old {
                if !new.contains_key(name) {
                    s.bump(path, "DELETED", obj.clone());
                }
            }
            for (name, mut obj) in new {
                let kind = match old.get(&name) {
                    None => "ADDED",
                    Some(o) => {
                        let mut a = o.clone();
                        a["metadata"]["resourceVersion"] = serde_json::Value::Null;
                        obj["metadata"]["resourceVersion"] = serde_json::Value::Null;
                        if a == obj {
                            continue;
                        }
                        "MODIFIED"
                    }
                };
                s.bump(path, kind, obj);
            }
            return;
        }
        let (coll, name) = split_path(path);
        let mut obj = v;
        if let Some(n) = name {
            obj["metadata"]["name"] = serde_json::json!(n);
        }
        s.served.insert(coll.clone());
        let exists = obj["metadata"]["name"]
            .as_str()
            .is_some_and(|n| s.collections.get(&coll).is_some_and(|c| c.contains_key(n)));
        s.bump(&coll, if exists { "MODIFIED" } else { "ADDED" }, obj);
    }

    /// Deletes the object at `collection/name`.
    pub fn delete(&self, path: &str) {
        let (coll, name) = split_path(path);
        let mut s = self.state.lock().unwrap();
        let Some(obj) = name.and_then(|n| s.collections.get(&coll)?.get(&n).cloned()) else {
            return;
        };
        s.bump(&coll, "DELETED", obj);
    }

    /// Sends a BOOKMARK with the current version to every open watch.
    pub fn bookmark(&self) {
        let mut s = self.state.lock().unwrap();
        let rv = s.rv.to_string();
        let list_kinds = s.list_kinds.clone();
        s.watchers.retain(|w| {
            let (kind, api_version) = list_kinds.get(&w.collection).cloned().unwrap_or_default();
            let line = serde_json::json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv}}}).to_string();
            w.tx.send(line).is_ok()
        });
    }

    /// Forgets the history (as etcd compaction does) and ends every open watch: a client that
    /// resumes from its last version gets `410 Gone` and must list again.
    pub fn compact_and_close_watches(&self) {
        let mut s = self.state.lock().unwrap();
        s.compacted = s.rv + 1;
        s.history.clear();
        s.watchers.clear();
    }

    /// How many watches are open.
    pub fn watchers(&self) -> usize {
        self.state.lock().unwrap().watchers.len()
    }

    /// How often `entry` ("GET /path" or "WATCH /path") was seen.
    pub fn seen_count(&self, entry: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| *s == entry)
            .count()
    }
}

fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

fn serve<S: Read + Write>(conn: S, st: &Arc<Mutex<MockState>>) {
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut len = 0usize;
        let mut auth = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = target.split('?').next().unwrap_or("").to_string();
        let watch = matches!(query_param(&target, "watch"), Some("1" | "true"));
        if method == "GET" && watch {
            if let Some((status, body)) = refuse(st, &path, auth.as_deref()) {
                let _ = respond(reader.get_mut(), status, &body);
                continue;
            }
            stream_watch(reader.get_mut(), st, &path, &target);
            return;
        }
        let (status, resp) = answer(st, &method, &path, &target, auth.as_deref(), &body);
        if respond(reader.get_mut(), status, &resp).is_err() {
            return;
        }
    }
}

fn respond<W: Write>(w: &mut W, status: u16, body: &str) -> std::io::Result<()> {
    let out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(out.as_bytes())?;
    w.flush()
}

fn status_body(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}).to_string()
}

/// Authentication and injected failures, before anything is served.
fn refuse(st: &Arc<Mutex<MockState>>, path: &str, auth: Option<&str>) -> Option<(u16, String)> {
    let s = st.lock().unwrap();
    if let Some(t) = &s.require_token {
        if auth != Some(format!("Bearer {t}").as_str()) {
            return Some((401, status_body(401, "Unauthorized", "Unauthorized")));
        }
    }
    let (coll, _) = split_path(path);
    let code = s.fail.get(path).or_else(|| s.fail.get(&coll))?;
    Some((
        *code,
        status_body(*code, "Forbidden", &format!("{path} is refused")),
    ))
}

/// A SubjectAccessReview's question in the form [`MockState::grants`] lists.
fn sar_question(spec: &serde_json::Value) -> String {
    let str_of = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    if spec["nonResourceAttributes"].is_object() {
        let a = &spec["nonResourceAttributes"];
        return format!("{} {}", str_of(&a["verb"]), str_of(&a["path"]));
    }
    let a = &spec["resourceAttributes"];
    let mut resource = str_of(&a["resource"]);
    if !str_of(&a["subresource"]).is_empty() {
        resource = format!("{resource}/{}", str_of(&a["subresource"]));
    }
    format!(
        "{} {resource} {}/{}",
        str_of(&a["verb"]),
        str_of(&a["namespace"]),
        str_of(&a["name"])
    )
}

/// A chunked answer that stays open: one JSON event per line, as the API server does. From a
/// compacted version, a single ERROR event with a 410 Status, then the end of the stream.
fn stream_watch<W: Write>(w: &mut W, st: &Arc<Mutex<MockState>>, path: &str, target: &str) {
    let from: u64 = query_param(target, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query_param(target, "timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290u64);
    let (tx, rx): (Sender<String>, Receiver<String>) = channel();
    let backlog: Vec<String> = {
        let mut s = st.lock().unwrap();
        s.seen.push(format!("WATCH {path}"));
        if from != 0 && from < s.compacted {
            vec![serde_json::json!({"type": "ERROR", "object": serde_json::from_str::<serde_json::Value>(&status_body(410, "Expired", &format!("too old resource version: {from} ({})", s.compacted))).unwrap()}).to_string()]
        } else {
            let lines = s
                .history
                .iter()
                .filter(|c| c.collection == path && c.rv > from)
                .map(event_line)
                .collect();
            s.watchers.push(Watcher {
                collection: path.to_string(),
                tx,
            });
            lines
        }
    };
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() || w.flush().is_err() {
        return;
    }
    let send = |w: &mut W, line: &str| -> bool {
        let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
        w.write_all(chunk.as_bytes()).is_ok() && w.flush().is_ok()
    };
    for line in &backlog {
        if !send(w, line) {
            return;
        }
    }
    let gone = backlog.first().is_some_and(|l| l.contains("\"ERROR\""));
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while !gone && Instant::now() < deadline {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if !send(w, &line) {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = w.write_all(b"0\r\n\r\n").and_then(|()| w.flush());
}

fn answer(
    st: &Arc<Mutex<MockState>>,
    method: &str,
    path: &str,
    target: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    if let Some(r) = refuse(st, path, auth) {
        st.lock().unwrap().seen.push(format!("{method} {path}"));
        return r;
    }
    let mut s = st.lock().unwrap();
    s.seen.push(format!("{method} {path}"));
    if method == "POST" && path == "/apis/authentication.k8s.io/v1/tokenreviews" {
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let token = req["spec"]["token"].as_str().unwrap_or("");
        let mut status = s.reviews.get(token).cloned().unwrap_or_else(
            || serde_json::json!({"authenticated": false, "error": "invalid bearer token"}),
        );
        // The agents' tokens are projected for the collector's audience: like the real API
        // server, refuse them unless the review names that audience.
        let audiences = req["spec"]["audiences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if audiences.is_empty() {
            if let Some(user) = s.users.get(token) {
                status = serde_json::json!({"authenticated": true, "user": user});
            } else if status["authenticated"] == true {
                status = serde_json::json!({
                    "authenticated": false,
                    "error": format!("[invalid bearer token, token audiences [{MOCK_TOKEN_AUDIENCE:?}] is invalid for the target audiences []]"),
                });
            }
        } else if status["authenticated"] == true {
            if audiences.iter().any(|a| a == MOCK_TOKEN_AUDIENCE) {
                status["audiences"] = serde_json::json!([MOCK_TOKEN_AUDIENCE]);
            } else {
                status = serde_json::json!({
                    "authenticated": false,
                    "error": format!("[invalid bearer token, token audiences [{MOCK_TOKEN_AUDIENCE:?}] is invalid for the target audiences {audiences:?}]"),
                });
            }
        }
        let resp = serde_json::json!({
            "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null}, "spec": {"token": token}, "status": status,
        });
        return (201, resp.to_string());
    }
    if method == "POST" && path == "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let spec = &req["spec"];
        let asked = sar_question(spec);
        let user = spec["user"].as_str().unwrap_or("");
        let allowed = s
            .grants
            .get(user)
            .is_some_and(|g| g.iter().any(|x| x == "*" || *x == asked));
        s.seen.push(format!("SAR {user}: {asked}"));
        let mut status = serde_json::json!({"allowed": allowed});
        if !allowed {
            status["reason"] =
                serde_json::json!(format!("RBAC: {user} has no role granting {asked}"));
        }
        let resp = serde_json::json!({
            "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null}, "spec": spec, "status": status,
        });
        return (201, resp.to_string());
    }
    for (prefix, base) in &s.proxies {
        if let Some(rest) = target.strip_prefix(prefix.as_str()) {
            let base = base.clone();
            let rest = if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            };
            drop(s);
            return http(&base, "GET", &rest, &[], b"");
        }
    }
    if method != "GET" {
        return (
            405,
            status_body(405, "MethodNotAllowed", "method not allowed"),
        );
    }
    let not_found = || {
        (
            404,
            status_body(404, "NotFound", &format!("{path} not found")),
        )
    };
    if s.served.contains(path) {
        let (kind, api_version) = s.list_kinds.get(path).cloned().unwrap_or_default();
        let items: Vec<serde_json::Value> = s
            .collections
            .get(path)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        let list = serde_json::json!({
            "apiVersion": api_version, "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items,
        });
        return (200, list.to_string());
    }
    let (coll, name) = split_path(path);
    match name.and_then(|n| s.collections.get(&coll)?.get(&n).cloned()) {
        Some(obj) => (200, obj.to_string()),
        None => not_found(),
    }
}
