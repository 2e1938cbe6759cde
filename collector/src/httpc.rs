//! A minimal HTTP/1.1 client over hyper for the CLI and the collector's API-server calls: one
//! connection per request, plain `http://` only.
//!
//! TLS is not built in (it would add rustls and a crypto provider to every build); the API
//! server is reached over `kubectl proxy` or a plain-HTTP endpoint (see the README).

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
    #[error("{url}: https is not supported by this build; use an http:// URL (e.g. through `kubectl proxy`)")]
    Https { url: String },
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

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub authority: String,
    /// Path and query, always starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        if url.starts_with("https://") {
            return Err(HttpError::Https { url: url.into() });
        }
        let rest = url.strip_prefix("http://").ok_or_else(|| HttpError::Url {
            url: url.into(),
            reason: "must start with http://".into(),
        })?;
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
        } else {
            format!("{authority}:80")
        };
        Ok(Url {
            authority,
            path: path.to_string(),
        })
    }

    /// Joins a path (which may carry a query) onto this URL's path.
    pub fn join(&self, path: &str) -> Url {
        let base = self.path.trim_end_matches('/');
        Url {
            authority: self.authority.clone(),
            path: format!("{base}{path}"),
        }
    }

    pub fn to_string_lossy(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
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

/// Sends one request and reads the whole answer.
pub async fn request(
    method: hyper::Method,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
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
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| HttpError::Http {
                url: shown.clone(),
                error,
            })?;
        let conn_task = tokio::spawn(conn);
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(&url.path)
            .header(hyper::header::HOST, &url.authority);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| HttpError::Request {
                url: shown.clone(),
                error,
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|error| HttpError::Http {
                url: shown.clone(),
                error,
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|error| HttpError::Http {
                url: shown.clone(),
                error,
            })?
            .to_bytes();
        conn_task.abort();
        Ok(Response { status, body })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout {
            url: shown,
            secs: timeout.as_secs(),
        }),
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
        assert!(matches!(
            Url::parse("https://x"),
            Err(HttpError::Https { .. })
        ));
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http://u@x/").is_err());
    }
}
