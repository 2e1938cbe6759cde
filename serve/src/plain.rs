//! The one rule for plain HTTP: bearer tokens, node configurations and pull records travel in
//! clear only over loopback (`run-local`, tests), unless an operator explicitly says otherwise.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlainHttpError {
    #[error("refusing to serve plain HTTP on {0}: give --tls-cert-file and --tls-key-file, listen on a loopback address, or say --insecure-plain-http")]
    Listen(SocketAddr),
    #[error("refusing to send to {0} over plain HTTP: use https:// (with --collector-ca-file), a loopback address, or say --insecure-plain-http")]
    Url(String),
}

/// May a server listen on `addr` without TLS?
pub fn check_listen(addr: SocketAddr, tls: bool, insecure: bool) -> Result<(), PlainHttpError> {
    if tls || insecure || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(PlainHttpError::Listen(addr))
    }
}

/// May a client send to `url`? Only `http://` URLs to a host other than loopback are refused.
pub fn check_url(url: &str, insecure: bool) -> Result<(), PlainHttpError> {
    let Some(rest) = strip_prefix_ignore_case(url, "http://") else {
        return Ok(());
    };
    if insecure || is_loopback_host(authority_host(rest)) {
        Ok(())
    } else {
        Err(PlainHttpError::Url(url.to_string()))
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The host of `user@host:port/path`, without brackets.
fn authority_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_rule() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(check_listen(lo, false, false).is_ok());
        assert!(check_listen(v6, false, false).is_ok());
        assert!(check_listen(any, true, false).is_ok());
        assert!(check_listen(any, false, true).is_ok());
        let e = check_listen(any, false, false).unwrap_err().to_string();
        assert!(
            e.contains("0.0.0.0:8080") && e.contains("--tls-cert-file"),
            "{e}"
        );
    }

    #[test]
    fn url_rule() {
        for ok in [
            "https://collector.example:8443",
            "http://127.0.0.1:8080",
            "http://127.3.4.5/",
            "HTTP://localhost:1/x",
            "http://[::1]:80/v1",
            "http://user@127.0.0.1:9",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://collector:8080",
            "http://127.0.0.1.evil:80",
            "http://[fe80::1]:80",
            "http://127.0.0.1@evil:80",
        ] {
            let e = check_url(bad, false).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
            assert!(check_url(bad, true).is_ok());
        }
    }
}
