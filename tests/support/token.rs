//! A Docker token service on loopback for a real `docker-registry` configured with `auth: token`:
//! it checks Basic credentials and answers with an ES256 JWT the registry verifies against the
//! signer's certificate (`rootcertbundle`), carried in the token's `x5c` header. Keys and
//! certificate are made with the openssl CLI; the signature with ring.
//!
//! The shape is the distribution token spec's (as Docker Hub's and Quay's token services
//! answer): `GET realm?service=S&scope=repository:NAME:pull[,push]`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub const SERVICE: &str = "mirrorscope-test-registry";
pub const ISSUER: &str = "mirrorscope-test-token-issuer";

/// A running token service; stops accepting on drop.
pub struct TokenService {
    pub realm: String,
    /// PEM of the signer's certificate, for the registry's `rootcertbundle`.
    pub cert_path: PathBuf,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TokenService {
    /// Starts a service granting every requested scope to `user:password`, nothing to others.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenService {
        let openssl = |args: &[&str]| crate::registry::openssl(dir, args);
        crate::registry::ec_private_key(dir, "token-key.pem");
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "token-key.pem",
            "-outform",
            "DER",
            "-out",
            "token-key.p8",
        ]);
        openssl(&[
            "req",
            "-x509",
            "-key",
            "token-key.pem",
            "-subj",
            "/CN=mirrorscope test token signer",
            "-days",
            "2",
            "-out",
            "token-cert.pem",
        ]);
        openssl(&[
            "x509",
            "-in",
            "token-cert.pem",
            "-outform",
            "DER",
            "-out",
            "token-cert.der",
        ]);
        let pkcs8 = std::fs::read(dir.join("token-key.p8")).unwrap();
        let cert_der = std::fs::read(dir.join("token-cert.der")).unwrap();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .expect("the openssl-made P-256 key");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!(
            "Basic {}",
            crate::collector::base64(format!("{user}:{password}").as_bytes())
        );
        let header = format!(
            r#"{{"typ":"JWT","alg":"ES256","x5c":["{}"]}}"#,
            crate::collector::base64(&cert_der)
        );
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut authorization = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            authorization = Some(v.trim().to_string());
                        }
                    }
                }
                let target = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if authorization.as_deref() == Some(expected.as_str()) {
                    let jwt = token(&key, &rng, &header, &scopes(target));
                    (
                        "200 OK",
                        format!(r#"{{"token":"{jwt}","access_token":"{jwt}","expires_in":300}}"#),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"details":"incorrect username or password"}"#.to_string(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenService {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert_path: dir.join("token-cert.pem"),
            stop,
            port,
        }
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// `(repository, actions)` of every `scope=repository:NAME:ACTIONS` parameter.
fn scopes(target: &str) -> Vec<(String, Vec<String>)> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(|s| {
            s.replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2C", ",")
                .replace("%2c", ",")
                .replace("%2F", "/")
                .replace("%2f", "/")
        })
        .filter_map(|s| {
            let rest = s.strip_prefix("repository:")?.to_string();
            let (name, actions) = rest.rsplit_once(':')?;
            Some((
                name.to_string(),
                actions.split(',').map(String::from).collect(),
            ))
        })
        .collect()
}

fn token(
    key: &EcdsaKeyPair,
    rng: &SystemRandom,
    header: &str,
    scopes: &[(String, Vec<String>)],
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "puller", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", scopes.len()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key.sign(rng, signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64url(sig.as_ref()))
}

fn b64url(b: &[u8]) -> String {
    crate::collector::base64(b)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}
