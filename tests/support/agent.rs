//! `mirrorscope-agent run` as a real process on loopback, and a fake collector (a small hyper
//! server) that can go down and come back, checks the bearer token and records every report.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mirrorscope_core::report::{NodeReport, PushAck};
use serde_json::Value;

use crate::collector::{bin, http};

pub const SETPRIV: &str = "/usr/bin/setpriv";

/// A running agent; killed on drop.
pub struct Agent {
    pub child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts `mirrorscope-agent run --listen 127.0.0.1:0 ARGS…` and waits until it listens.
    pub fn start(args: &[&str]) -> Agent {
        Self::start_as(None, args)
    }

    /// Like [`Agent::start`], as user and group `uid` (through util-linux `setpriv`) when given.
    pub fn start_as(uid: Option<u32>, args: &[&str]) -> Agent {
        let mut cmd = match uid {
            Some(uid) => {
                crate::journal::require(SETPRIV);
                let mut c = Command::new(SETPRIV);
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(bin("mirrorscope-agent"));
                c
            }
            None => Command::new(bin("mirrorscope-agent")),
        };
        let mut child = cmd
            .args(["run", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("MIRRORSCOPE_LOG", "debug")
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on http") {
                    // Text or JSON log lines: the URL ends at the first character no URL has here.
                    let url: String = line[i + "listening on ".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ":/.[]".contains(*c))
                        .collect();
                    let _ = tx.send(url);
                }
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => Agent { child, url, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("agent did not start:\n{}", log.lock().unwrap());
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(&self.url, "GET", path, &[], b"")
    }

    pub fn report(&self) -> Value {
        let (status, body) = self.get("/v1/report");
        assert_eq!(status, 200, "GET /v1/report: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `/v1/report` until `ok` holds; panics with the last report after `within`.
    pub fn wait_report(&self, what: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self.report();
            if ok(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "report never showed {what} within {within:?}:\n{r:#}\nagent log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `/metrics` as Prometheus scrapes it without asking for OpenMetrics.
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns the exit status and how long the agent took to exit.
    pub fn terminate(mut self) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        crate::journal::signal(self.child.id(), "TERM");
        let deadline = t0 + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, t0.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "agent ignored SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET url+path`; `None` while nothing listens there.
pub fn try_get(url: &str, path: &str) -> Option<(u16, String)> {
    let authority = url.trim_start_matches("http://");
    std::net::TcpStream::connect(authority).ok()?;
    Some(http(url, "GET", path, &[], b""))
}

/// A metric's value in classic text format (`name{labels} value`); `None` when absent.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// What the fake collector saw.
#[derive(Debug, Default)]
pub struct Received {
    pub reports: Vec<NodeReport>,
    /// Pull ids stored (first copy).
    pub ids: HashSet<String>,
    /// Records received again after being stored.
    pub duplicates: u64,
    pub rejected_auth: u64,
    /// Pushes answered 413 (larger than [`FakeCollector::set_max_body`]).
    pub too_large: u64,
}

struct Control {
    up: bool,
    token: Option<String>,
    max_body: Option<usize>,
}

/// A fake collector on a fixed loopback port: `POST /v1/reports`, strict NodeReport JSON, bearer
/// token check, PushAck answers. While "down" nothing listens on the port.
pub struct FakeCollector {
    tls: Option<Arc<rustls::ServerConfig>>,
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
    control: Arc<Mutex<Control>>,
    wake: Arc<tokio::sync::Notify>,
    _thread: std::thread::JoinHandle<()>,
}

impl FakeCollector {
    pub fn start(token: Option<&str>) -> FakeCollector {
        Self::start_with(token, None)
    }

    /// The fake collector behind TLS with this certificate chain and key (PEM): its URL is
    /// `https://`.
    pub fn start_tls(token: Option<&str>, cert_pem: &[u8], key_pem: &[u8]) -> FakeCollector {
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
        Self::start_with(token, Some(Arc::new(config)))
    }

    fn start_with(token: Option<&str>, tls: Option<Arc<rustls::ServerConfig>>) -> FakeCollector {
        let received = Arc::new(Mutex::new(Received::default()));
        let control = Arc::new(Mutex::new(Control {
            up: true,
            token: token.map(str::to_owned),
            max_body: None,
        }));
        let wake = Arc::new(tokio::sync::Notify::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let (r2, c2, w2, tls2) = (
            Arc::clone(&received),
            Arc::clone(&control),
            Arc::clone(&wake),
            tls.clone(),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(r2, c2, w2, tx, tls2));
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        FakeCollector {
            tls,
            addr,
            received,
            control,
            wake,
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Closes (false) or re-opens (true) the listening socket; returns once it took effect.
    pub fn set_up(&self, up: bool) {
        self.control.lock().unwrap().up = up;
        self.wake.notify_one();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listening = std::net::TcpStream::connect(self.addr).is_ok();
            if listening == up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fake collector did not go up={up}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Answers 413 to bodies larger than `max`, as the real collector does past its 8 MiB.
    pub fn set_max_body(&self, max: usize) {
        self.control.lock().unwrap().max_body = Some(max);
    }

    pub fn set_token(&self, token: &str) {
        self.control.lock().unwrap().token = Some(token.to_owned());
    }

    pub fn ids(&self) -> HashSet<String> {
        self.received.lock().unwrap().ids.clone()
    }

    pub fn last_report(&self) -> Option<NodeReport> {
        self.received.lock().unwrap().reports.last().cloned()
    }

    pub fn report_count(&self) -> usize {
        self.received.lock().unwrap().reports.len()
    }

    /// Waits until `ok` holds for what was received.
    pub fn wait(&self, what: &str, within: Duration, ok: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            {
                let r = self.received.lock().unwrap();
                if ok(&r) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "fake collector never saw {what} within {within:?}: {} reports, {} ids",
                    r.reports.len(),
                    r.ids.len()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn serve(
    received: Arc<Mutex<Received>>,
    control: Arc<Mutex<Control>>,
    wake: Arc<tokio::sync::Notify>,
    tx: std::sync::mpsc::Sender<SocketAddr>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = first.local_addr().unwrap();
    tx.send(addr).unwrap();
    let mut listener = Some(first);
    loop {
        let up = control.lock().unwrap().up;
        match (up, listener.is_some()) {
            (false, true) => listener = None,
            (true, false) => listener = Some(tokio::net::TcpListener::bind(addr).await.unwrap()),
            _ => {}
        }
        let Some(l) = listener.as_ref() else {
            wake.notified().await;
            continue;
        };
        tokio::select! {
            _ = wake.notified() => continue,
            accepted = l.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (received, control) = (Arc::clone(&received), Arc::clone(&control));
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (received, control) = (Arc::clone(&received), Arc::clone(&control));
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &received, &control).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(cfg) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        }
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    received: &Mutex<Received>,
    control: &Mutex<Control>,
) -> hyper::Response<Full<Bytes>> {
    let answer = |status: u16, body: String| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        r
    };
    if req.method() != hyper::Method::POST || req.uri().path() != "/v1/reports" {
        return answer(404, "not found".into());
    }
    let expected = control.lock().unwrap().token.clone();
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if expected.is_some() && given != expected {
        received.lock().unwrap().rejected_auth += 1;
        return answer(401, "bad token".into());
    }
    let Ok(body) = req.into_body().collect().await else {
        return answer(400, "unreadable body".into());
    };
    let body = body.to_bytes();
    let max_body = control.lock().unwrap().max_body;
    if max_body.is_some_and(|max| body.len() > max) {
        received.lock().unwrap().too_large += 1;
        return answer(413, "report too large".into());
    }
    let report: NodeReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return answer(400, format!("bad report: {e}")),
    };
    let mut r = received.lock().unwrap();
    let mut ack = PushAck {
        accepted: 0,
        duplicates: 0,
        amended: 0,
    };
    for p in &report.pulls {
        if r.ids.insert(p.pull_id.clone()) {
            ack.accepted += 1;
        } else {
            ack.duplicates += 1;
        }
    }
    r.duplicates += ack.duplicates;
    r.reports.push(report);
    answer(200, serde_json::to_string(&ack).unwrap())
}

/// A temporary node root with the directories the agent watches.
pub struct HostRoot {
    pub dir: crate::collector::TempDir,
}

impl HostRoot {
    pub fn new(tag: &str) -> HostRoot {
        let dir = crate::collector::TempDir::new(tag);
        std::fs::create_dir_all(dir.path().join("etc/containers/registries.conf.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::create_dir_all(dir.path().join("journal")).unwrap();
        HostRoot { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A node path (`/etc/...`) below the root.
    pub fn at(&self, node_path: &str) -> PathBuf {
        self.path().join(node_path.trim_start_matches('/'))
    }

    /// `--host-root R --state-dir R/state --journal-dir R/journal` (an empty journal).
    pub fn args(&self) -> Vec<String> {
        vec![
            "--host-root".into(),
            self.path().display().to_string(),
            "--state-dir".into(),
            self.at("/state").display().to_string(),
            "--journal-dir".into(),
            self.at("/journal").display().to_string(),
        ]
    }
}

/// CRI-O pull lines written live into a standalone journald, as `crio.service` logs them.
pub struct LivePulls<'a>(pub &'a crate::journal::Journald);

/// The registries.conf [`LivePulls`] pulls resolve with: `quay.io/live` mirrored.
pub const LIVE_CONF: &str = r#"[[registry]]
prefix = "quay.io/live"
location = "quay.io/live"

[[registry.mirror]]
location = "mirror.live.example.net/live"
"#;

impl LivePulls<'_> {
    /// The CRI-O request id of pull `n`: the record's `pull_id`.
    pub fn id(n: u32) -> String {
        format!("{n:08}-1111-4222-8333-444455556666")
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    }

    pub fn crio_line(&self, line: &str) {
        self.0.send(&[
            ("SYSLOG_IDENTIFIER", "crio"),
            ("_SYSTEMD_UNIT", "crio.service"),
            ("MESSAGE", line),
        ]);
    }

    /// A CRI-O info line (`id` for the lines of a pull request), logged now.
    pub fn crio(&self, msg: &str, id: Option<&str>) {
        let line = crate::journal::crio_msg(
            Self::now(),
            crate::journal::TimeFormat::Rfc3339Nano,
            msg,
            id,
        );
        self.crio_line(&line);
    }

    /// The kubelet's v≥3 `Pulled` event for pull `n`'s image, naming its pod, logged now.
    pub fn kubelet_pulled(&self, n: u32, pod: &str) {
        let now = Self::now();
        // klog's `MMDD hh:mm:ss.uuuuuu`, cut from RFC 3339's `YYYY-MM-DDThh:mm:ss.uuuuuuZ`.
        let rfc = mirrorscope_core::time::format_usec(now);
        let klog_time = format!("{}{} {}", &rfc[5..7], &rfc[8..10], &rfc[11..26]);
        let line = format!(
            r#"I{klog_time}    2213 event.go:389] "Event occurred" object="{pod}" fieldPath="spec.containers{{app}}" kind="Pod" apiVersion="v1" type="Normal" reason="Pulled" message="Successfully pulled image \"quay.io/live/app-{n}:1\" in 1s (1s including waiting). Image size: 10 bytes.""#
        );
        self.0.send(&[
            ("SYSLOG_IDENTIFIER", "kubenswrapper"),
            ("_SYSTEMD_UNIT", "kubelet.service"),
            ("MESSAGE", &line),
        ]);
    }

    /// A pull served by the mirror.
    pub fn via_mirror(&self, n: u32) {
        let id = Self::id(n);
        self.crio(&format!("Pulling image: quay.io/live/app-{n}:1"), Some(&id));
        self.crio(
            &format!("Trying to access \"mirror.live.example.net/live/app-{n}:1\""),
            None,
        );
        self.crio(
            &format!("Pulled image: quay.io/live/app-{n}@sha256:{n:064x}"),
            Some(&id),
        );
    }

    /// A pull the mirror could not serve: the source did.
    pub fn fallback(&self, n: u32) {
        let id = Self::id(n);
        self.crio(&format!("Pulling image: quay.io/live/app-{n}:1"), Some(&id));
        self.crio(
            &format!("Trying to access \"mirror.live.example.net/live/app-{n}:1\""),
            None,
        );
        self.crio(
            &format!("Trying to access \"quay.io/live/app-{n}:1\""),
            None,
        );
        self.crio(
            &format!("Pulled image: quay.io/live/app-{n}@sha256:{n:064x}"),
            Some(&id),
        );
    }

    /// CRI-O's line after a successful SIGHUP reload.
    pub fn registries_applied(&self) {
        self.crio("Applied new registry configuration: ", None);
    }

    /// CRI-O's error line when a reload failed (it keeps the previous configuration).
    pub fn reload_failed(&self, why: &str) {
        let line = crate::journal::crio_msg(
            Self::now(),
            crate::journal::TimeFormat::Rfc3339Nano,
            &format!("system registries reload failed: {why}"),
            None,
        )
        .replacen("level=info", "level=error", 1);
        self.crio_line(&line);
    }
}
