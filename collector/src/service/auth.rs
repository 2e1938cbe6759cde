//! Who may push a report for which node: a TokenReview against the API server (in a cluster),
//! a tokens file (outside), or nobody checked at all (loopback only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use mirrorscope_serve::authz::bearer_token;
use mirrorscope_serve::cache::TtlCache;

/// Why a push is refused: the same 401/403/503 as a refused reader.
pub use mirrorscope_serve::authz::AuthzError as AuthError;

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("reading tokens file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}:{line}: expected \"TOKEN NODE\"")]
    Syntax { path: String, line: usize },
}

/// The identity a push was authenticated as: the only node it may report for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Open mode: any node.
    Anyone,
    Node(String),
}

impl Identity {
    /// Checks that this identity may report for `node`.
    pub fn may_report(&self, node: &str) -> Result<(), AuthError> {
        match self {
            Identity::Anyone => Ok(()),
            Identity::Node(n) if n == node => Ok(()),
            Identity::Node(n) => Err(AuthError::Forbidden(format!(
                "this token may only report for node {n:?}, not {node:?}"
            ))),
        }
    }
}

/// How pushes are authenticated.
pub enum Auth {
    Open,
    Tokens(TokensFile),
    Review(TokenReviewer),
}

impl Auth {
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        if let Auth::Open = self {
            return Ok(Identity::Anyone);
        }
        let token = authorization.and_then(bearer_token).ok_or_else(|| {
            AuthError::Unauthenticated("missing \"Authorization: Bearer <token>\"".into())
        })?;
        match self {
            Auth::Open => Ok(Identity::Anyone),
            Auth::Tokens(f) => f.lookup(token),
            Auth::Review(r) => r.review(token).await,
        }
    }
}

/// `TOKEN NODE` lines, re-read when the file changes (checked at most once a second).
pub struct TokensFile {
    path: PathBuf,
    inner: Mutex<TokensInner>,
}

struct TokensInner {
    tokens: HashMap<String, String>,
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

impl TokensFile {
    pub fn open(path: &Path) -> Result<TokensFile, TokensFileError> {
        let (tokens, stamp) = read_tokens(path)?;
        Ok(TokensFile {
            path: path.to_path_buf(),
            inner: Mutex::new(TokensInner {
                tokens,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    fn lookup(&self, token: &str) -> Result<Identity, AuthError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| AuthError::Unavailable("tokens lock poisoned".into()))?;
        if inner.checked.elapsed() >= Duration::from_secs(1) {
            inner.checked = Instant::now();
            let now = stamp_of(&self.path);
            if now != inner.stamp {
                match read_tokens(&self.path) {
                    Ok((tokens, stamp)) => {
                        tracing::info!(
                            "tokens file {} re-read ({} tokens)",
                            self.path.display(),
                            tokens.len()
                        );
                        inner.tokens = tokens;
                        inner.stamp = stamp;
                    }
                    // Keep the previous tokens: a half-written file must not lock every agent out.
                    Err(e) => tracing::error!("{e}; keeping the previous tokens"),
                }
            }
        }
        inner
            .tokens
            .get(token)
            .map(|n| Identity::Node(n.clone()))
            .ok_or_else(|| AuthError::Unauthenticated("unknown token".into()))
    }
}

fn stamp_of(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

type Stamp = Option<(SystemTime, u64)>;

/// Most TokenReview answers cached; past it the oldest goes.
pub const REVIEW_CACHE_ENTRIES: usize = 10_000;
/// How long an accepted token's answer is reused.
const REVIEW_TTL: Duration = Duration::from_secs(60);
/// How long a refused token's answer is reused: long enough that an agent retrying with a bad
/// token costs one review, short enough that a token fixed on the API server side works soon.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// How long an answer is reused (an unreachable API server is asked again at once).
fn ttl_of(r: &Result<Identity, AuthError>) -> Option<Duration> {
    match r {
        Ok(_) => Some(REVIEW_TTL),
        Err(AuthError::Unavailable(_)) => None,
        Err(_) => Some(NEGATIVE_TTL),
    }
}

fn read_tokens(path: &Path) -> Result<(HashMap<String, String>, Stamp), TokensFileError> {
    let stamp = stamp_of(path);
    let text = std::fs::read_to_string(path).map_err(|error| TokensFileError::Read {
        path: path.display().to_string(),
        error,
    })?;
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(n), None) => {
                tokens.insert(t.to_string(), n.to_string());
            }
            _ => {
                return Err(TokensFileError::Syntax {
                    path: path.display().to_string(),
                    line: i + 1,
                })
            }
        }
    }
    Ok((tokens, stamp))
}

/// TokenReview: the token must be valid, belong to the agent's ServiceAccount, and carry a node
/// claim. Answers are cached briefly so 5,000 agents do not turn into 5,000 reviews a heartbeat.
pub struct TokenReviewer {
    client: kube::Client,
    /// `system:serviceaccount:<namespace>:<name>`.
    username: String,
    audiences: Vec<String>,
    cache: Mutex<TtlCache<Result<Identity, AuthError>>>,
}

impl TokenReviewer {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        service_account: &str,
        audiences: Vec<String>,
    ) -> TokenReviewer {
        TokenReviewer {
            client,
            username: format!("system:serviceaccount:{namespace}:{service_account}"),
            audiences,
            cache: Mutex::new(TtlCache::new(REVIEW_CACHE_ENTRIES)),
        }
    }

    async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        let key = TtlCache::<()>::key(token, "");
        if let Ok(cache) = self.cache.lock() {
            if let Some(r) = cache.get(&key, Instant::now()) {
                return r;
            }
        }
        let reviewed = self.token_review(token).await?;
        let result = if !reviewed.authenticated {
            Err(AuthError::Unauthenticated(format!(
                "token rejected by the API server{}",
                reviewed.error.map(|e| format!(": {e}")).unwrap_or_default()
            )))
        } else if reviewed.username != self.username {
            Err(AuthError::Forbidden(format!(
                "token belongs to {:?}, not the agent's ServiceAccount {:?}",
                reviewed.username, self.username
            )))
        } else {
            match reviewed.node_name {
                Some(n) => Ok(Identity::Node(n)),
                None => Err(AuthError::Forbidden(
                    "token carries no node claim (authentication.kubernetes.io/node-name): use a projected ServiceAccount token"
                        .into(),
                )),
            }
        };
        if let (Ok(mut cache), Some(ttl)) = (self.cache.lock(), ttl_of(&result)) {
            cache.insert(key, Instant::now() + ttl, result.clone());
        }
        result
    }
}

/// What a TokenReview said of a token.
struct Reviewed {
    authenticated: bool,
    username: String,
    /// `authentication.kubernetes.io/node-name` from the token's claims.
    node_name: Option<String>,
    error: Option<String>,
}

impl TokenReviewer {
    /// Asks the API server who a bearer token belongs to. A projected token minted for another
    /// audience than the API server's own is only accepted when that audience is named.
    async fn token_review(&self, token: &str) -> Result<Reviewed, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(format!("TokenReview failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        Ok(Reviewed {
            authenticated: status.authenticated.unwrap_or(false),
            username: user.username.unwrap_or_default(),
            node_name: user
                .extra
                .and_then(|mut e| e.remove("authentication.kubernetes.io/node-name"))
                .and_then(|v| v.into_iter().next()),
            error: status.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_reused_briefly_and_outages_not_at_all() {
        assert_eq!(ttl_of(&Ok(Identity::Node("n".into()))), Some(REVIEW_TTL));
        assert_eq!(
            ttl_of(&Err(AuthError::Unauthenticated("no".into()))),
            Some(NEGATIVE_TTL)
        );
        assert!(NEGATIVE_TTL < REVIEW_TTL);
        assert_eq!(ttl_of(&Err(AuthError::Unavailable("down".into()))), None);
    }

    #[test]
    fn tokens_file_lines() {
        let dir = mirrorscope_e2e::collector::TempDir::new("tokens");
        let p = dir.join("tokens");
        std::fs::write(&p, "# comment\n\nt1 node-a\nt2 node-b\n").unwrap();
        let f = TokensFile::open(&p).unwrap();
        assert_eq!(f.lookup("t1").unwrap(), Identity::Node("node-a".into()));
        assert!(matches!(
            f.lookup("nope"),
            Err(AuthError::Unauthenticated(_))
        ));
        std::fs::write(&p, "t1 node-a extra\n").unwrap();
        let e = TokensFile::open(&p).err().unwrap().to_string();
        assert!(e.ends_with("tokens:1: expected \"TOKEN NODE\""), "{e}");
        assert!(Identity::Node("a".into()).may_report("b").is_err());
    }
}
