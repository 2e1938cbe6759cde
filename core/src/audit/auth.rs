//! Registry credentials as containers/image finds them: an auth file (`auth.json`, a
//! `.dockerconfigjson` pull secret) looked up from the most specific namespace to the host, and
//! the `WWW-Authenticate` challenges a registry answers with.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// A user name and password (or token) for Basic auth or a Bearer token service.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthFileError {
    #[error("{file}: not a containers auth file: {error}")]
    Json { file: String, error: String },
    #[error("{file}: auths.{key:?}.auth: {error}")]
    Entry {
        file: String,
        key: String,
        error: String,
    },
}

/// The credentials of an auth file, by normalised key (`host` or `host/namespace…`).
#[derive(Debug, Default, Clone)]
pub struct AuthFile {
    entries: BTreeMap<String, Credentials>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    auths: BTreeMap<String, RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Docker Hub's other names mean docker.io in an auth file.
fn normalise_registry(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// Legacy keys (`https://index.docker.io/v1/`) name only a host; keys without a scheme may name
/// a namespace.
fn normalise_key(key: &str) -> String {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    match stripped {
        Some(rest) => normalise_registry(rest.split('/').next().unwrap_or(rest)).to_string(),
        None => {
            let (host, rest) = key
                .split_once('/')
                .map_or((key, None), |(h, r)| (h, Some(r)));
            match rest {
                Some(r) if !r.is_empty() => format!("{}/{r}", normalise_registry(host)),
                _ => normalise_registry(host).to_string(),
            }
        }
    }
}

impl AuthFile {
    /// Parses an auth file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<AuthFile, AuthFileError> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| AuthFileError::Json {
            file: file.to_string(),
            error: e.to_string(),
        })?;
        let mut entries = BTreeMap::new();
        for (key, entry) in raw.auths {
            let entry_error = |error: String| AuthFileError::Entry {
                file: file.to_string(),
                key: key.clone(),
                error,
            };
            let creds = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| entry_error(format!("not base64: {e}")))?;
                    let text = String::from_utf8(bytes)
                        .map_err(|_| entry_error("not UTF-8 once decoded".into()))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| entry_error("expected base64 of user:password".into()))?;
                    Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }
                }
                (_, Some(username), Some(password)) => Credentials { username, password },
                // An entry with only an identity token or nothing: anonymous for us.
                _ => continue,
            };
            entries.insert(normalise_key(&key), creds);
        }
        Ok(AuthFile { entries })
    }

    /// Credentials for a repository (`host/path`): `host/a/b`, then `host/a`, then `host`.
    pub fn lookup(&self, repository: &str) -> Option<&Credentials> {
        let (host, path) = repository.split_once('/').unwrap_or((repository, ""));
        let host = normalise_registry(host);
        let mut key = if path.is_empty() {
            host.to_string()
        } else {
            format!("{host}/{path}")
        };
        loop {
            if let Some(c) = self.entries.get(&key) {
                return Some(c);
            }
            match key.rfind('/') {
                Some(i) => key.truncate(i),
                None => return None,
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased: `bearer`, `basic`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` value (RFC 7235: schemes followed by `k=v` or `k="v"` pairs).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ']);
        let token_end = rest.find([' ', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = &rest[token_end..];
        if let Some(value_part) = after.strip_prefix('=') {
            // A parameter of the current challenge.
            let (value, remaining) = if let Some(q) = value_part.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &q[end.min(q.len())..])
            } else {
                let end = value_part.find(',').unwrap_or(value_part.len());
                (value_part[..end].trim().to_string(), &value_part[end..])
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else if token.is_empty() {
            break;
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
            rest = after;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn lookup_goes_from_the_namespace_to_the_host() {
        let text = format!(
            r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/team":{{"auth":"{}"}},
               "https://index.docker.io/v1/":{{"auth":"{}"}},"token-only.example":{{"identitytoken":"x"}}}}}}"#,
            b64("host:pw1"),
            b64("team:pw:with:colons"),
            b64("hub:pw3")
        );
        let f = AuthFile::parse("auth.json", &text).unwrap();
        assert_eq!(f.lookup("quay.io/team/app").unwrap().username, "team");
        assert_eq!(
            f.lookup("quay.io/team/app").unwrap().password,
            "pw:with:colons"
        );
        assert_eq!(f.lookup("quay.io/other/app").unwrap().username, "host");
        assert_eq!(f.lookup("docker.io/library/nginx").unwrap().username, "hub");
        assert_eq!(
            f.lookup("registry-1.docker.io/library/nginx")
                .unwrap()
                .username,
            "hub"
        );
        assert!(f.lookup("token-only.example/x").is_none());
        assert!(f.lookup("quay.io.evil/team").is_none());
        assert!(!format!("{:?}", f.lookup("quay.io").unwrap()).contains("pw1"));
    }

    #[test]
    fn bad_entries_name_the_file_and_key() {
        let e = AuthFile::parse("pull-secret", r#"{"auths":{"r.example":{"auth":"%%%"}}}"#)
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("pull-secret: auths.\"r.example\".auth: not base64"));
        let e = AuthFile::parse("a.json", "[1]").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("a.json: not a containers auth file"));
    }

    #[test]
    fn challenges_parse_quoted_and_bare_parameters() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.example/token");
        assert_eq!(c[0].params["scope"], "repository:a/b:pull");
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        let c = parse_challenges(r#"Basic realm=x, Bearer realm="q\"uote""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].params["realm"], "q\"uote");
        assert!(parse_challenges("").is_empty());
    }
}
