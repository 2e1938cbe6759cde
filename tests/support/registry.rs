//! Real Debian `docker-registry` processes on 127.0.0.1, plus scratch directories and port helpers.
//!
//! ```no_run
//! use mirrorscope_e2e::registry::{closed_port, Registry};
//! let plain = Registry::plain();            // http://127.0.0.1:PORT, no auth
//! let auth = Registry::basic_auth("u", "pw"); // htpasswd (bcrypt) basic auth, plain HTTP
//! let tls = Registry::tls();                // self-signed certificate for IP 127.0.0.1
//! let dead = closed_port();                 // a port nothing listens on
//! println!("{} {} {} 127.0.0.1:{dead}", plain.host(), auth.host(), tls.host());
//! // every registry is killed and its storage removed when dropped
//! ```
//!
//! Everything panics with a readable message: these are test fixtures, and a missing real part must fail
//! the test loudly instead of skipping it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Path of the Debian registry binary (package `docker-registry`).
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// A directory under the system temp dir, removed (recursively) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh, empty directory whose name contains `tag`, the process id and a counter, so
    /// concurrent tests and concurrent test binaries never collide.
    pub fn new(tag: &str) -> ScratchDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "mirrorscope-e2e-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create scratch dir {}: {e}", path.display()));
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to `rel` inside the directory (creating parent dirs) and returns the full path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago (bind to port 0, read the port, release it).
///
/// The kernel hands out ephemeral ports round-robin, so reuse by another test within the next seconds
/// is unlikely; [`Registry`] still retries with a new port if its bind fails.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind a probe socket on 127.0.0.1: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("probe socket has no address: {e}"))
        .port()
}

/// A loopback port where nothing listens: connections are refused at once, which makes every pull
/// attempt against it fail fast (so skopeo logs the whole source list).
pub fn closed_port() -> u16 {
    for _ in 0..20 {
        let port = free_port();
        if TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_millis(200),
        )
        .is_err()
        {
            return port;
        }
    }
    panic!("could not find a closed loopback port in 20 tries");
}

/// How a [`Registry`] is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Plain HTTP, anonymous.
    Plain,
    /// Plain HTTP with htpasswd basic auth.
    BasicAuth { user: String, password: String },
    /// HTTPS with a self-signed certificate (CN and SAN `IP:127.0.0.1`), anonymous.
    Tls,
    /// HTTPS with a certificate signed by a throw-away CA (made with the `openssl` CLI) and
    /// htpasswd basic auth: a production mirror's shape.
    TlsBasicAuth { user: String, password: String },
    /// Plain HTTP with `auth: token`: a [`crate::token::TokenService`] on loopback hands out
    /// Bearer tokens for `user:password`, as Docker Hub's and Quay's token services do.
    TokenAuth { user: String, password: String },
}

/// A running `docker-registry serve` on 127.0.0.1; killed (by its own pid) and its storage removed on
/// drop.
pub struct Registry {
    child: Child,
    port: u16,
    access: Access,
    dir: ScratchDir,
    _token: Option<crate::token::TokenService>,
}

impl Registry {
    /// Plain-HTTP registry without authentication.
    pub fn plain() -> Registry {
        Registry::start(Access::Plain)
    }

    /// Plain-HTTP registry requiring basic auth `user:password` (htpasswd file made with `htpasswd -B`).
    pub fn basic_auth(user: &str, password: &str) -> Registry {
        Registry::start(Access::BasicAuth {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// HTTPS registry with a fresh self-signed certificate (made with the `openssl` CLI).
    pub fn tls() -> Registry {
        Registry::start(Access::Tls)
    }

    /// HTTPS registry whose certificate a test CA signed ([`Registry::ca_path`]), with basic auth.
    pub fn tls_basic_auth(user: &str, password: &str) -> Registry {
        Registry::start(Access::TlsBasicAuth {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// Plain-HTTP registry whose clients need a Bearer token from a loopback token service.
    pub fn token_auth(user: &str, password: &str) -> Registry {
        Registry::start(Access::TokenAuth {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// Starts a registry with the given access mode, retrying with another port if the chosen one was
    /// taken in the meantime.
    pub fn start(access: Access) -> Registry {
        require_binary(DOCKER_REGISTRY, "docker-registry");
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = ScratchDir::new("registry");
            let port = free_port();
            let token =
                match &access {
                    Access::TokenAuth { user, password } => Some(
                        crate::token::TokenService::start(dir.path(), user, password),
                    ),
                    _ => None,
                };
            let config = write_config(&dir, port, &access, token.as_ref());
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
            let log_err = log
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot dup log file handle: {e}"));
            let child = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {DOCKER_REGISTRY} serve: {e}"));
            let mut reg = Registry {
                child,
                port,
                access: access.clone(),
                dir,
                _token: token,
            };
            match reg.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return reg,
                Err(why) => {
                    last_log = format!("{why}\n--- registry log ---\n{}", reg.log());
                    // Drop kills the process; then try again with a new port.
                }
            }
        }
        panic!("docker-registry did not become ready on 127.0.0.1 after 3 tries: {last_log}");
    }

    /// `127.0.0.1:PORT`, the registry host as written in image references and registries.conf.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// `user:password` for skopeo `--creds`/`--dest-creds` when the registry uses basic auth.
    pub fn creds(&self) -> Option<String> {
        match &self.access {
            Access::BasicAuth { user, password }
            | Access::TlsBasicAuth { user, password }
            | Access::TokenAuth { user, password } => Some(format!("{user}:{password}")),
            _ => None,
        }
    }

    /// PEM file of the self-signed certificate (TLS registries only).
    pub fn cert_path(&self) -> Option<PathBuf> {
        (self.access == Access::Tls).then(|| self.dir.path().join("cert.pem"))
    }

    /// An auth file with this registry's credentials (basic or token auth registries only).
    pub fn auth_file_json(&self) -> String {
        auth_file_json(
            &self.host(),
            &self.creds().expect("a registry with credentials"),
        )
    }

    /// PEM file of the CA that signed the certificate ([`Access::TlsBasicAuth`] only).
    pub fn ca_path(&self) -> Option<PathBuf> {
        matches!(self.access, Access::TlsBasicAuth { .. }).then(|| self.dir.path().join("ca.pem"))
    }

    /// Storage and configuration directory of this registry.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's combined stdout/stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("docker-registry exited early with {status}"));
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "/v2/ on {} did not answer within {limit:?}",
                    self.host()
                ));
            }
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                if matches!(self.access, Access::Tls | Access::TlsBasicAuth { .. }) {
                    // The listener exists, so the TLS server accepts; speaking TLS here would need a
                    // TLS crate, and skopeo itself checks the handshake on first use.
                    if self.log().contains("listening on") {
                        return Ok(());
                    }
                } else if let Some(status) = http_get_status(stream, &self.host(), "/v2/") {
                    // 200 anonymous, 401 with basic auth: both mean the API is up.
                    if status == 200 || status == 401 {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A containers auth file (auth.json, or a pull secret's `.dockerconfigjson`) with one entry:
/// `user_password` (`user:password`) for `registry`.
pub fn auth_file_json(registry: &str, user_password: &str) -> String {
    format!(
        r#"{{"auths":{{"{registry}":{{"auth":"{}"}}}}}}"#,
        crate::collector::base64(user_password.as_bytes())
    )
}

/// Runs the openssl CLI in `dir`, failing loudly with its stderr.
/// A new P-256 private key (PEM) written to `dir/file`.
pub fn ec_private_key(dir: &Path, file: &str) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            file,
        ],
    );
}

pub fn openssl(dir: &Path, args: &[&str]) {
    require_binary("/usr/bin/openssl", "openssl");
    let out = Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails loudly when a real part is missing (tests must never skip silently).
pub fn require_binary(path: &str, package: &str) {
    if !Path::new(path).exists() {
        panic!(
            "{path} is missing: install the Debian package `{package}` (tests/run does this as root)"
        );
    }
}

/// Minimal HTTP/1.0 GET returning the status code, enough for a readiness probe.
fn http_get_status(mut stream: TcpStream, host: &str, path: &str) -> Option<u16> {
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn write_config(
    dir: &ScratchDir,
    port: u16,
    access: &Access,
    token: Option<&crate::token::TokenService>,
) -> PathBuf {
    let storage = dir.path().join("storage");
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    match access {
        Access::Plain => {}
        Access::TokenAuth { .. } => {
            let t = token.expect("a token service for a token-auth registry");
            yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                t.realm,
                crate::token::SERVICE,
                crate::token::ISSUER,
                t.cert_path.display()
            ));
        }
        Access::Tls => {
            let (cert, key) = make_self_signed_cert(dir);
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        Access::TlsBasicAuth { user, password } => {
            // Writes ca.pem, srv.pem and srv.key into the registry's directory.
            crate::collector::test_certificates(dir.path());
            let (cert, key) = (dir.path().join("srv.pem"), dir.path().join("srv.key"));
            let htpasswd = make_htpasswd(dir, user, password);
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                cert.display(),
                key.display(),
                htpasswd.display()
            ));
        }
        Access::BasicAuth { user, password } => {
            let htpasswd = make_htpasswd(dir, user, password);
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                htpasswd.display()
            ));
        }
    }
    dir.write("config.yml", &yaml)
}

fn make_htpasswd(dir: &ScratchDir, user: &str, password: &str) -> PathBuf {
    require_binary("/usr/bin/htpasswd", "apache2-utils");
    let path = dir.path().join("htpasswd");
    // distribution's htpasswd backend only accepts bcrypt entries, hence -B.
    let out = Command::new("/usr/bin/htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&path)
        .args([user, password])
        .output()
        .unwrap_or_else(|e| panic!("cannot run htpasswd: {e}"));
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn make_self_signed_cert(dir: &ScratchDir) -> (PathBuf, PathBuf) {
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    (dir.path().join("cert.pem"), dir.path().join("key.pem"))
}
