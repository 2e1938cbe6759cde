//! The collector and CLI as real processes, fake nodes that push reports built from real
//! registries.conf files (parsed by the engine, as the agent does), and the shapes of the
//! objects the mocked API server ([`crate::kubeapi`]) serves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::journal::PullRecord;
use mirrorscope_core::machineconfig::parse_current_config;
use mirrorscope_core::registries::{list_drop_ins, load, ConfigLocation};
use mirrorscope_core::report::*;
use mirrorscope_core::time::format_secs as format_rfc3339;
use sha2::{Digest, Sha256};

/// Where the workspace binaries are (`MIRRORSCOPE_BIN_DIR`, set by tests/run, else target/debug).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("MIRRORSCOPE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// A unique temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "mirrorscope-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// A `TempDir` is used where a path is: `dir.join(..)`, `&dir` for `&Path`.
impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn now_rfc3339() -> String {
    format_rfc3339(now_unix())
}

/// Writes a file by atomic rename, as MCO's daemon does.
pub fn write_atomic(path: &Path, contents: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("mirrorscope-tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running `mirrorscope-collector`; killed on drop.
pub struct Collector {
    pub child: Child,
    pub url: String,
    /// The `--proxy-listen` listener's URL, when one was asked for.
    pub proxy_url: Option<String>,
    pub log: Arc<Mutex<String>>,
}

impl Collector {
    /// Starts the collector on an ephemeral loopback port with extra arguments.
    pub fn start(args: &[&str]) -> Collector {
        Self::try_start(args).unwrap_or_else(|log| panic!("collector did not start:\n{log}"))
    }

    /// Like [`Collector::start`], with the soft limit of open files lowered to `nofile` (as a
    /// small container's would be), so that file descriptor exhaustion is reachable in a test.
    pub fn start_with_nofile(nofile: u32, args: &[&str]) -> Collector {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(bin("mirrorscope-collector"));
        Self::spawn(cmd, args).unwrap_or_else(|log| panic!("collector did not start:\n{log}"))
    }

    /// Like [`Collector::start`], but returns the log when the process exits before listening.
    pub fn try_start(args: &[&str]) -> Result<Collector, String> {
        Self::spawn(Command::new(bin("mirrorscope-collector")), args)
    }

    /// Like [`Collector::start`] on a given `listen` address (a collector that comes back where
    /// its agents last saw it).
    pub fn start_at(listen: &str, args: &[&str]) -> Collector {
        Self::spawn_at(Command::new(bin("mirrorscope-collector")), listen, args)
            .unwrap_or_else(|log| panic!("collector did not start:\n{log}"))
    }

    fn spawn(cmd: Command, args: &[&str]) -> Result<Collector, String> {
        Self::spawn_at(cmd, "127.0.0.1:0", args)
    }

    fn spawn_at(mut cmd: Command, listen: &str, args: &[&str]) -> Result<Collector, String> {
        let mut child = cmd
            .args(["--listen", listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (ptx, prx) = std::sync::mpsc::channel();
        let wants_proxy = args.contains(&"--proxy-listen");
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on http") {
                    let url = line[i + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    if line.contains("service proxy") {
                        let _ = ptx.send(url);
                    } else {
                        let _ = tx.send(url);
                    }
                }
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let started = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .and_then(|url| {
                let proxy_url = match wants_proxy {
                    true => Some(prx.recv_timeout(Duration::from_secs(5)).ok()?),
                    false => None,
                };
                Some((url, proxy_url))
            });
        match started {
            Some((url, proxy_url)) => Ok(Collector {
                child,
                url,
                proxy_url,
                log,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().unwrap().clone())
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// GETs a path as the mock API server's reader (the token is ignored by collectors that
    /// authorize nobody).
    pub fn get(&self, path: &str) -> (u16, String) {
        let auth = format!("Bearer {}", crate::kubeapi::MOCK_READER_TOKEN);
        http(&self.url, "GET", path, &[("Authorization", &auth)], b"")
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Kills the process at once (SIGKILL), as a node failure would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (the collector writes its state file on the way out).
    pub fn stop(mut self) {
        // SAFETY-free: `kill` with SIGTERM through the standard tool keeps this crate libc-free.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One HTTP/1.1 request over a fresh connection; returns (status, body).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

/// One HTTPS GET over a fresh connection that trusts only `ca_pem`; `Err` when the handshake
/// (or the connection) fails, with rustls' reason.
pub fn https_get(
    base: &str,
    path: &str,
    ca_pem: &[u8],
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let authority = base.trim_start_matches("https://").trim_end_matches('/');
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let name = ServerName::try_from(host.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(authority).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(e.to_string());
        }
    }
    Ok(status_and_body(&raw))
}

/// Sends only the head of a request declaring `content_length` body bytes, then reads the answer.
pub fn http_head_only(
    base: &str,
    method: &str,
    path: &str,
    content_length: usize,
) -> (u16, String) {
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {content_length}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    status_and_body(&raw)
}

/// The status code (0 when there is none) and the body of a raw HTTP/1.1 answer.
fn status_and_body(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The `/v1/registries` entry of `registry`.
pub fn registry_stats(c: &Collector, registry: &str) -> serde_json::Value {
    let regs = c.get_json("/v1/registries");
    regs["registries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["registry"] == registry)
        .unwrap_or_else(|| panic!("no {registry} in {regs}"))
        .clone()
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// POSTs a report; returns (status, body).
pub fn push(url: &str, token: Option<&str>, report: &NodeReport) -> (u16, String) {
    let body = serde_json::to_vec(report).unwrap();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = auth.as_deref() {
        headers.push(("Authorization", a));
    }
    http(url, "POST", "/v1/reports", &headers, &body)
}

/// Runs the `mirrorscope` CLI against a collector URL.
pub fn cli(collector: &str, args: &[&str]) -> Output {
    Command::new(bin("mirrorscope"))
        .args(args)
        .env("MIRRORSCOPE_COLLECTOR", collector)
        .env("MIRRORSCOPE_TOKEN", crate::kubeapi::MOCK_READER_TOKEN)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

/// A node simulated by the test: its own host root with real files, and a report builder that
/// reads them with the engine the way the agent does.
pub struct FakeNode {
    pub name: String,
    pub root: TempDir,
    pub token: Option<String>,
    instance: String,
    seq: u64,
    last_valid: Option<(String, String)>,
    changed_at: Option<String>,
    /// Simulates CRI-O: a valid change is "applied" (and an invalid one "fails to reload") at
    /// the next report.
    pub crio_follows: bool,
    pub crio: CrioState,
    pub pulls: Vec<PullRecord>,
}

impl FakeNode {
    pub fn new(name: &str) -> FakeNode {
        FakeNode {
            name: name.to_string(),
            root: TempDir::new(&format!("node-{name}")),
            token: None,
            instance: format!("fake-{name}-{}", std::process::id()),
            seq: 0,
            last_valid: None,
            changed_at: None,
            crio_follows: true,
            crio: CrioState::default(),
            pulls: Vec::new(),
        }
    }

    pub fn registries_conf(&self) -> PathBuf {
        self.root.path().join("etc/containers/registries.conf")
    }

    /// Replaces registries.conf by atomic rename.
    pub fn write_registries(&self, text: &str) {
        write_atomic(&self.registries_conf(), text.as_bytes());
    }

    /// Writes the MCD's currentconfig: a rendered MachineConfig carrying `registries_conf`.
    pub fn write_machine_config(&self, name: &str, registries_conf: &str) {
        let mc = machine_config_object(name, registries_conf);
        write_atomic(
            &self
                .root
                .path()
                .join("etc/machine-config-daemon/currentconfig"),
            serde_json::to_string(&mc).unwrap().as_bytes(),
        );
    }

    /// Builds the next report from the files on disk now.
    pub fn report(&mut self) -> NodeReport {
        self.seq += 1;
        let root = self.root.path();
        let loc = ConfigLocation::under_root(root);
        let loaded = load(&loc, CImageVersion::default());
        let now = now_rfc3339();
        let (valid, error) = match &loaded {
            Ok(cfg) => {
                let sha = cfg.canonical_sha256();
                if self.last_valid.as_ref().map(|x| &x.0) != Some(&sha) {
                    self.changed_at = Some(now.clone());
                    if self.crio_follows {
                        self.crio.last_applied_at = Some(now.clone());
                    }
                }
                self.last_valid = Some((sha, cfg.canonical_json()));
                (true, None)
            }
            Err(e) => {
                let msg = e.to_string().replace(&root.display().to_string(), "");
                if self.crio_follows && self.crio.last_reload_failure.as_deref() != Some(&msg) {
                    self.crio.last_reload_failure_at = Some(now.clone());
                    self.crio.last_reload_failure = Some(msg.clone());
                }
                (false, Some(msg))
            }
        };
        let mut files = Vec::new();
        let mut paths = vec![(loc.main.clone(), FileRole::Main)];
        for d in &loc.dirs {
            for p in list_drop_ins(d).unwrap_or_default() {
                paths.push((p, FileRole::DropIn));
            }
        }
        for (p, role) in paths {
            let bytes = std::fs::read(&p).ok();
            let mtime = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| format_rfc3339(t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()));
            files.push(FileState {
                path: format!("/{}", p.strip_prefix(root).unwrap().display()),
                role,
                exists: bytes.is_some(),
                digest: bytes.as_ref().map(|b| sha256(b)),
                size: bytes.as_ref().map(|b| b.len() as u64),
                mtime,
                error: None,
                contents: bytes.map(|b| String::from_utf8_lossy(&b).into_owned()),
            });
        }
        let mc_path = root.join("etc/machine-config-daemon/currentconfig");
        let machine_config = match std::fs::read(&mc_path) {
            Err(_) => MachineConfigState {
                current_config: None,
                registries_conf: None,
                signature_files: Vec::new(),
                force_file: false,
                error: None,
            },
            Ok(bytes) => match parse_current_config(&bytes) {
                Ok(cc) => {
                    let on_disk = std::fs::read(self.registries_conf()).ok();
                    MachineConfigState {
                        registries_conf: Some(
                            cc.compare("/etc/containers/registries.conf", on_disk.as_deref()),
                        ),
                        signature_files: Vec::new(),
                        current_config: Some(cc.name),
                        force_file: false,
                        error: None,
                    }
                }
                Err(e) => MachineConfigState {
                    current_config: None,
                    registries_conf: None,
                    signature_files: Vec::new(),
                    force_file: false,
                    error: Some(e.to_string()),
                },
            },
        };
        NodeReport {
            version: NODE_REPORT_VERSION,
            node: self.name.clone(),
            agent_version: "fake".into(),
            agent_instance: self.instance.clone(),
            seq: self.seq,
            generated_at: now,
            registries: RegistriesState {
                files,
                valid,
                error,
                effective_digest: self.last_valid.as_ref().map(|x| x.0.clone()),
                effective_canonical: self.last_valid.as_ref().map(|x| x.1.clone()),
                changed_at: self.changed_at.clone(),
            },
            machine_config,
            crio: self.crio.clone(),
            journal: JournalState {
                following: true,
                cursor: None,
                error: None,
            },
            pulls: std::mem::take(&mut self.pulls),
            pulls_dropped: 0,
            counters: PullCounters::default(),
        }
    }

    /// Builds a report and pushes it; panics unless the collector accepts it.
    pub fn push_to(&mut self, url: &str) -> PushAck {
        let r = self.report();
        let (status, body) = push(url, self.token.as_deref(), &r);
        assert_eq!(status, 200, "push from {}: {body}", self.name);
        serde_json::from_str(&body).unwrap()
    }
}

/// A rendered MachineConfig carrying `registries_conf` (as the API serves it and the MCD stores it).
pub fn machine_config_object(name: &str, registries_conf: &str) -> serde_json::Value {
    machine_config_with_files(
        name,
        &[("/etc/containers/registries.conf", registries_conf)],
    )
}

/// A rendered MachineConfig carrying `files` (path, contents), in that order.
pub fn machine_config_with_files(name: &str, files: &[(&str, &str)]) -> serde_json::Value {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, text)| {
            serde_json::json!({"path": path, "mode": 420, "overwrite": true,
                "contents": {"source": format!("data:,{}", percent(text))}})
        })
        .collect();
    serde_json::json!({
        "apiVersion": "machineconfiguration.openshift.io/v1",
        "kind": "MachineConfig",
        "metadata": {"name": name, "annotations": {"machineconfiguration.openshift.io/generated-by-controller-version": "abc"}},
        "spec": {"config": {"ignition": {"version": "3.4.0"}, "storage": {"files": files}}}
    })
}

/// A throw-away CA and a server certificate for 127.0.0.1 signed by it, made with the openssl
/// CLI: (CA PEM, server chain PEM, server key PEM).
pub fn test_certificates(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let run = |args: &[&str]| crate::registry::openssl(dir, args);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mirrorscope test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    (read("ca.pem"), read("srv.pem"), read("srv.key"))
}

/// Standard base64 (kubeconfig `*-data` fields).
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn sha256(b: &[u8]) -> String {
    let d = Sha256::digest(b);
    let hex: String = d.iter().map(|x| format!("{x:02x}")).collect();
    format!("sha256:{hex}")
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A pull record as the agent would report it from the journal.
pub fn pull_record(
    id: &str,
    image: &str,
    served_by: &str,
    via_mirror: bool,
    fallback: bool,
) -> PullRecord {
    // Built from JSON so fields added to the wire type later (all optional) do not break it.
    let mut attempts = Vec::new();
    if fallback {
        let mirror = format!(
            "mirror.example.com/{}",
            image.split('/').next_back().unwrap_or(image)
        );
        attempts.push(serde_json::json!({
            "reference": mirror, "mirror": true, "outcome": "failed",
            "error_class": "manifest_unknown", "error": "manifest unknown", "tries": 1,
        }));
    }
    attempts.push(serde_json::json!({
        "reference": served_by, "mirror": via_mirror, "outcome": "served", "tries": 1,
    }));
    serde_json::from_value(serde_json::json!({
        "pull_id": id, "image": image, "started_at": now_rfc3339(), "finished_at": now_rfc3339(),
        "outcome": "pulled", "attempts": attempts, "served_by": served_by,
        "via_mirror": via_mirror, "fallback": fallback, "pod": "default/app",
    }))
    .unwrap()
}

/// A Node object with the MCO annotations.
pub fn node_object(
    name: &str,
    role: &str,
    current: &str,
    desired: &str,
    state: &str,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, format!("node-role.kubernetes.io/{role}"): ""},
            "annotations": {
                "machineconfiguration.openshift.io/currentConfig": current,
                "machineconfiguration.openshift.io/desiredConfig": desired,
                "machineconfiguration.openshift.io/state": state,
                "machineconfiguration.openshift.io/reason": "",
            },
        },
        "status": {"nodeInfo": {"containerRuntimeVersion": "cri-o://1.32.3"}},
    })
}

/// A MachineConfigPool selecting `node-role.kubernetes.io/<name>`.
pub fn pool_object(name: &str, target: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "machineconfiguration.openshift.io/v1", "kind": "MachineConfigPool",
        "metadata": {"name": name, "labels": {"machineconfiguration.openshift.io/mco-built-in": ""}},
        "spec": {
            "configuration": {"name": target, "source": [{"apiVersion": "machineconfiguration.openshift.io/v1", "kind": "MachineConfig", "name": format!("99-{name}-generated-registries")}]},
            "machineConfigSelector": {"matchLabels": {"machineconfiguration.openshift.io/role": name}},
            "nodeSelector": {"matchLabels": {format!("node-role.kubernetes.io/{name}"): ""}},
            "paused": false,
        },
        "status": {"configuration": {"name": target}, "machineCount": 1, "updatedMachineCount": 1},
    })
}

/// `{"kind": "<Kind>List", "items": [...]}`.
pub fn list(kind: &str, api_version: &str, items: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

pub use crate::kubeapi::{MockApi, MockState, MOCK_TOKEN_AUDIENCE};
