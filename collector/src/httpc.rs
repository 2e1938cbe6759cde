//! A minimal HTTP/1.1 client over hyper for the CLI and the collector's API-server calls: one
//! connection per request, `http://` or `https://` (rustls with ring; roots are only what the
//! caller trusts: the cluster CA from the ServiceAccount or the kubeconfig).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request failed before an HTTP status was received.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: https needs a CA (certificate-authority) or insecure-skip-tls-verify")]
    Https { url: String },
    #[error("{url}: a streamed line is longer than 16 MiB")]
    LineTooLong { url: String },
    #[error("TLS to {host}: {error}")]
    Tls { host: String, error: std::io::Error },
    #[error("connecting to {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("{url}: {error}")]
    Http { url: String, error: hyper::Error },
    #[error("{url}: building the request: {error}")]
    Request {
        url: String,
        error: hyper::http::Error,
    },
    #[error("{url}: no answer within {secs}s")]
    Timeout { url: String, secs: u64 },
}

/// A parsed `http[s]://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// `host:port` (the port always present).
    pub authority: String,
    /// Path and query, always starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(HttpError::Url {
                url: url.into(),
                reason: "must start with http:// or https://".into(),
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(HttpError::Url {
                url: url.into(),
                reason: "needs a host[:port] and no user info".into(),
            });
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        }) || authority.ends_with(']')
        {
            authority.to_string()
        } else if https {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        };
        Ok(Url {
            https,
            authority,
            path: path.to_string(),
        })
    }

    /// The host without the port (and without IPv6 brackets), for SNI and certificate checks.
    pub fn host(&self) -> &str {
        let h = match self.authority.rsplit_once(':') {
            Some((h, _)) => h,
            None => &self.authority,
        };
        h.trim_start_matches('[').trim_end_matches(']')
    }

    /// Joins a path (which may carry a query) onto this URL's path.
    pub fn join(&self, path: &str) -> Url {
        let base = self.path.trim_end_matches('/');
        Url {
            https: self.https,
            authority: self.authority.clone(),
            path: format!("{base}{path}"),
        }
    }

    pub fn to_string_lossy(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole answer; `tls` is required for `https://` URLs.
pub async fn request(
    method: hyper::Method,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Response, HttpError> {
    let shown = url.to_string_lossy();
    let fut = async {
        let stream =
            TcpStream::connect(&url.authority)
                .await
                .map_err(|error| HttpError::Connect {
                    addr: url.authority.clone(),
                    error,
                })?;
        let _ = stream.set_nodelay(true);
        let req = build(method, url, headers, body, &shown)?;
        if !url.https {
            return send(TokioIo::new(stream), req, &shown).await;
        }
        let config = tls.ok_or_else(|| HttpError::Https { url: shown.clone() })?;
        let host = url.host().to_string();
        let name =
            rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| HttpError::Url {
                url: shown.clone(),
                reason: format!("invalid TLS server name: {e}"),
            })?;
        let tls_stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(|error| HttpError::Tls { host, error })?;
        send(TokioIo::new(tls_stream), req, &shown).await
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout {
            url: shown,
            secs: timeout.as_secs(),
        }),
    }
}

/// Longest line a streamed answer may hold (one watch event).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Sends a GET and hands each line of the answer's body to `on_line` as it arrives (a
/// Kubernetes watch), until `on_line` returns false or the server ends the body. Returns the
/// status; the body of a non-2xx answer is not read. `connect_timeout` bounds connecting only.
pub async fn stream_lines(
    url: &Url,
    headers: &[(&str, &str)],
    connect_timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
    on_line: &mut (dyn FnMut(&[u8]) -> bool + Send),
) -> Result<u16, HttpError> {
    let shown = url.to_string_lossy();
    let req = build(hyper::Method::GET, url, headers, None, &shown)?;
    let timeout = |_| HttpError::Timeout {
        url: shown.clone(),
        secs: connect_timeout.as_secs(),
    };
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&url.authority))
        .await
        .map_err(timeout)?
        .map_err(|error| HttpError::Connect {
            addr: url.authority.clone(),
            error,
        })?;
    let _ = stream.set_nodelay(true);
    if !url.https {
        return stream_on(TokioIo::new(stream), req, &shown, on_line).await;
    }
    let config = tls.ok_or_else(|| HttpError::Https { url: shown.clone() })?;
    let host = url.host().to_string();
    let name =
        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| HttpError::Url {
            url: shown.clone(),
            reason: format!("invalid TLS server name: {e}"),
        })?;
    let tls_stream = tokio::time::timeout(
        connect_timeout,
        tokio_rustls::TlsConnector::from(config.clone()).connect(name, stream),
    )
    .await
    .map_err(timeout)?
    .map_err(|error| HttpError::Tls { host, error })?;
    stream_on(TokioIo::new(tls_stream), req, &shown, on_line).await
}

/// Sends one request on a fresh HTTP/1 connection; the caller aborts the connection task when
/// done with the body.
async fn request_on<IO>(
    io: IO,
    req: hyper::Request<Full<Bytes>>,
    shown: &str,
) -> Result<
    (
        hyper::Response<hyper::body::Incoming>,
        tokio::task::JoinHandle<Result<(), hyper::Error>>,
    ),
    HttpError,
>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let err = |error| HttpError::Http {
        url: shown.to_string(),
        error,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(err)?;
    let conn_task = tokio::spawn(conn);
    match sender.send_request(req).await {
        Ok(resp) => Ok((resp, conn_task)),
        Err(e) => {
            conn_task.abort();
            Err(err(e))
        }
    }
}

async fn stream_on<IO>(
    io: IO,
    req: hyper::Request<Full<Bytes>>,
    shown: &str,
    on_line: &mut (dyn FnMut(&[u8]) -> bool + Send),
) -> Result<u16, HttpError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let err = |error| HttpError::Http {
        url: shown.to_string(),
        error,
    };
    let (resp, conn_task) = request_on(io, req, shown).await?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        conn_task.abort();
        return Ok(status);
    }
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let result = 'read: loop {
        match body.frame().await {
            None => break Ok(status),
            Some(Err(e)) => break Err(err(e)),
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                buf.extend_from_slice(data);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    if !on_line(line.strip_suffix(b"\n").unwrap_or(&line)) {
                        break 'read Ok(status);
                    }
                }
                if buf.len() > MAX_LINE {
                    break Err(HttpError::LineTooLong {
                        url: shown.to_string(),
                    });
                }
            }
        }
    };
    conn_task.abort();
    result
}

fn build(
    method: hyper::Method,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    shown: &str,
) -> Result<hyper::Request<Full<Bytes>>, HttpError> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(&url.path)
        .header(hyper::header::HOST, &url.authority);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|error| HttpError::Request {
            url: shown.to_string(),
            error,
        })
}

async fn send<IO>(
    io: IO,
    req: hyper::Request<Full<Bytes>>,
    shown: &str,
) -> Result<Response, HttpError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let err = |error| HttpError::Http {
        url: shown.to_string(),
        error,
    };
    let (resp, conn_task) = request_on(io, req, shown).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(err)?.to_bytes();
    conn_task.abort();
    Ok(Response { status, body })
}

/// What to trust and present over TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM CA certificates to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (kubeconfig `insecure-skip-tls-verify`).
    pub insecure: bool,
    /// PEM client certificate chain and key (kubeconfig `client-certificate(-data)`).
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
}

/// Why TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no CA certificate in the PEM data")]
    NoCa,
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsSettings {
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(pem) = &self.ca_pem {
                for c in CertificateDer::pem_slice_iter(pem) {
                    let c = c.map_err(|e| TlsError::Pem(e.to_string()))?;
                    roots.add(c)?;
                }
            }
            if roots.is_empty() {
                return Err(TlsError::NoCa);
            }
            builder.with_root_certificates(roots)
        };
        let config = match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsError::Pem(e.to_string()))?;
                let key =
                    PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem(e.to_string()))?;
                builder.with_client_auth_cert(chain, key)?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// `insecure-skip-tls-verify`: signatures are still checked, the chain and name are not.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/base/").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.join("/v1/nodes?x=1").path, "/base/v1/nodes?x=1");
        assert_eq!(
            Url::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        let h = Url::parse("https://10.0.0.1").unwrap();
        assert!(h.https);
        assert_eq!(
            (h.authority.as_str(), h.host()),
            ("10.0.0.1:443", "10.0.0.1")
        );
        assert_eq!(h.join("/x").to_string_lossy(), "https://10.0.0.1:443/x");
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http://u@x/").is_err());
    }
}
