//! HTTPS with a certificate that follows its files: the service CA (and cert-manager) rotate a
//! serving certificate by replacing the Secret's files in place, so the files are looked at
//! again (at most once a second, on a handshake) and a changed pair is loaded without a
//! restart. A pair that does not load (half-written, mismatched) is logged once and the
//! previous certificate kept: a rotation in progress must not take the endpoint down.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client must finish its TLS handshake within this time (a slow handshake holds a
/// connection like a half-sent request).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Certificate and key files are small; anything past this is not one.
const MAX_PEM: u64 = 1 << 20;
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: not a regular file")]
    NotRegular { path: String },
    #[error("{path}: larger than {MAX_PEM} bytes")]
    TooLarge { path: String },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("{cert} and {key}: {error}")]
    Pair {
        cert: String,
        key: String,
        error: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// A serving certificate chain and its key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Both flags or neither; one alone is a mistake worth refusing.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<CertFiles>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(CertFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err("--tls-cert-file needs --tls-key-file".into()),
            (None, Some(_)) => Err("--tls-key-file needs --tls-cert-file".into()),
        }
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let shown = || path.display().to_string();
    let read = |error| TlsError::Read {
        path: shown(),
        error,
    };
    // A FIFO in place of the file would block open() for good: look before opening.
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(TlsError::NotRegular { path: shown() });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_PEM + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(TlsError::TooLarge { path: shown() });
    }
    Ok(bytes)
}

/// Loads a chain and key and checks that they belong together.
pub fn load(files: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_pem(&files.cert)?;
    let key_pem = read_pem(&files.key)?;
    let pem_error = |path: &Path, what: String| TlsError::Pem {
        path: path.display().to_string(),
        what,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(&files.cert, "no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(&files.key, format!("no usable private key: {e}")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Pair {
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
        error,
    })
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
    checked: Instant,
}

/// Counts a changed pair that did not load, in the service's own error counter.
type FailureCounter = Box<dyn Fn() + Send + Sync>;

/// Resolves every handshake to the newest certificate that loaded.
pub struct ReloadingCert {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
    count_failure: OnceLock<FailureCounter>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    pub fn new(files: CertFiles, provider: Arc<CryptoProvider>) -> Result<ReloadingCert, TlsError> {
        let stamps = (stamp(&files.cert), stamp(&files.key));
        let key = Arc::new(load(&files, &provider)?);
        Ok(ReloadingCert {
            files,
            provider,
            current: Mutex::new(Current {
                key,
                stamps,
                checked: Instant::now(),
            }),
            count_failure: OnceLock::new(),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.checked.elapsed() >= RECHECK {
            cur.checked = Instant::now();
            let stamps = (stamp(&self.files.cert), stamp(&self.files.key));
            if stamps != cur.stamps {
                // Remember the stamps either way: a bad pair is reported once, not per handshake.
                cur.stamps = stamps;
                match load(&self.files, &self.provider) {
                    Ok(key) => {
                        cur.key = Arc::new(key);
                        tracing::info!(cert = %self.files.cert.display(), "serving certificate re-read");
                    }
                    Err(e) => {
                        if let Some(count) = self.count_failure.get() {
                            count();
                        }
                        tracing::error!("{e}; still serving the previous certificate");
                    }
                }
            }
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Turns accepted TCP connections into plain or TLS streams.
#[derive(Clone)]
pub struct Acceptor {
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<ReloadingCert>)>,
}

impl Acceptor {
    pub fn plain() -> Acceptor {
        Acceptor { tls: None }
    }

    /// HTTPS (TLS 1.2 and 1.3, HTTP/1.1) with the certificate of `files`, reloaded as it changes.
    pub fn tls(files: CertFiles) -> Result<Acceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(ReloadingCert::new(files, provider.clone())?);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Acceptor {
            tls: Some((tokio_rustls::TlsAcceptor::from(Arc::new(config)), resolver)),
        })
    }

    /// Plain, or TLS when cert files are given.
    pub fn from_files(files: Option<CertFiles>) -> Result<Acceptor, TlsError> {
        files.map_or(Ok(Acceptor::plain()), Acceptor::tls)
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn scheme(&self) -> &'static str {
        if self.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// Has `count` called for every changed certificate that does not load (set once; the
    /// service's error counter exists only after the acceptor).
    pub fn count_reload_failures_with(&self, count: impl Fn() + Send + Sync + 'static) {
        if let Some((_, r)) = &self.tls {
            let _ = r.count_failure.set(Box::new(count));
        }
    }

    /// Completes the TLS handshake (bounded by [`HANDSHAKE_TIMEOUT`]).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        let Some((acceptor, _)) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// An accepted connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
