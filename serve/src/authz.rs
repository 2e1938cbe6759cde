//! Who may read an endpoint, decided as kube-rbac-proxy decides it, in process: the caller's
//! bearer token is reviewed (TokenReview), then the API server is asked whether that user may
//! perform the request (SubjectAccessReview), so the cluster's RBAC is the only policy.
//! Answers are cached (bounded, keyed by a hash of the token and the question; refusals for
//! less time than grants) so a scrape every 30 s costs no API-server load, and random tokens
//! cannot grow memory or hammer the API server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::cache::TtlCache;

/// Most answers cached; past it the oldest goes.
pub const CACHE_ENTRIES: usize = 10_000;
/// How long a grant is reused.
pub const ALLOWED_TTL: Duration = Duration::from_secs(60);
/// How long a refusal is reused: one review per bad caller per interval, and a role binding
/// fixed on the API server side works soon.
pub const DENIED_TTL: Duration = Duration::from_secs(10);

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 503: the API server could not be asked.
    #[error("{0}")]
    Unavailable(String),
}

impl AuthzError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthzError::Unauthenticated(_) => http::StatusCode::UNAUTHORIZED,
            AuthzError::Forbidden(_) => http::StatusCode::FORBIDDEN,
            AuthzError::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The label it is counted under.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthzError::Unauthenticated(_) => "unauthenticated",
            AuthzError::Forbidden(_) => "forbidden",
            AuthzError::Unavailable(_) => "authorizer_unavailable",
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235), so `bearer` and `BEARER` are accepted too.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What is asked of the API server: may this user do this?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A path outside the API (`/metrics`), as kube-rbac-proxy asks by default: RBAC's
    /// `nonResourceURLs`.
    NonResource { path: String, verb: String },
    /// A resource the request stands for (`get services/proxy` on the collector's Service).
    Resource {
        namespace: String,
        group: String,
        resource: String,
        subresource: String,
        name: String,
        verb: String,
    },
}

impl Attributes {
    /// For an HTTP request to a path, the verb as kube-rbac-proxy maps it.
    pub fn non_resource(method: &http::Method, path: &str) -> Attributes {
        let verb = match *method {
            http::Method::POST => "create",
            http::Method::PUT => "update",
            http::Method::PATCH => "patch",
            http::Method::DELETE => "delete",
            _ => "get",
        };
        Attributes::NonResource {
            path: path.to_string(),
            verb: verb.to_string(),
        }
    }

    /// As RBAC would phrase it, for messages and cache keys.
    pub fn describe(&self) -> String {
        match self {
            Attributes::NonResource { path, verb } => format!("{verb} {path}"),
            Attributes::Resource {
                namespace,
                group,
                resource,
                subresource,
                name,
                verb,
            } => {
                let mut r = resource.clone();
                if !group.is_empty() {
                    r = format!("{r}.{group}");
                }
                if !subresource.is_empty() {
                    r = format!("{r}/{subresource}");
                }
                format!("{verb} {r} {name:?} in namespace {namespace:?}")
            }
        }
    }

    fn to_spec(&self, user: UserInfo) -> SubjectAccessReviewSpec {
        let mut spec = SubjectAccessReviewSpec {
            user: user.username,
            groups: user.groups,
            extra: user.extra,
            uid: user.uid,
            ..Default::default()
        };
        match self {
            Attributes::NonResource { path, verb } => {
                spec.non_resource_attributes = Some(NonResourceAttributes {
                    path: Some(path.clone()),
                    verb: Some(verb.clone()),
                })
            }
            Attributes::Resource {
                namespace,
                group,
                resource,
                subresource,
                name,
                verb,
            } => {
                let some = |s: &String| (!s.is_empty()).then(|| s.clone());
                spec.resource_attributes = Some(ResourceAttributes {
                    namespace: some(namespace),
                    group: Some(group.clone()),
                    resource: some(resource),
                    subresource: some(subresource),
                    name: some(name),
                    verb: some(verb),
                    ..Default::default()
                })
            }
        }
        spec
    }
}

/// Authorizes callers against the API server.
pub struct Authorizer {
    client: kube::Client,
    /// Audiences the caller's token must be minted for (empty: the API server's own, which is
    /// what Prometheus's and users' tokens carry).
    audiences: Vec<String>,
    cache: Mutex<TtlCache<Result<String, AuthzError>>>,
}

impl Authorizer {
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Authorizer {
        Authorizer {
            client,
            audiences,
            cache: Mutex::new(TtlCache::new(CACHE_ENTRIES)),
        }
    }

    /// The caller's user name when its bearer token may do `attrs`.
    pub async fn authorize(
        &self,
        authorization: Option<&str>,
        attrs: &Attributes,
    ) -> Result<String, AuthzError> {
        let token = authorization.and_then(bearer_token).ok_or_else(|| {
            AuthzError::Unauthenticated("missing \"Authorization: Bearer <token>\"".into())
        })?;
        let key = TtlCache::<()>::key(token, &attrs.describe());
        if let Some(r) = self.cached(&key) {
            return r;
        }
        let result = self.ask(token, attrs).await;
        let ttl = match &result {
            Ok(_) => Some(ALLOWED_TTL),
            Err(AuthzError::Unavailable(_)) => None,
            Err(_) => Some(DENIED_TTL),
        };
        if let Some(ttl) = ttl {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
                key,
                Instant::now() + ttl,
                result.clone(),
            );
        }
        result
    }

    fn cached(&self, key: &str) -> Option<Result<String, AuthzError>> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key, Instant::now())
    }

    async fn ask(&self, token: &str, attrs: &Attributes) -> Result<String, AuthzError> {
        let unavailable =
            |what: &str, e: kube::Error| AuthzError::Unavailable(format!("{what} failed: {e}"));
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable("TokenReview", e))?
            .status
            .unwrap_or_default();
        if reviewed.authenticated != Some(true) {
            return Err(AuthzError::Unauthenticated(format!(
                "token rejected by the API server{}",
                reviewed.error.map(|e| format!(": {e}")).unwrap_or_default()
            )));
        }
        let user = reviewed.user.unwrap_or_default();
        let name = user.username.clone().unwrap_or_default();
        let sar = SubjectAccessReview {
            spec: attrs.to_spec(user),
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &sar)
            .await
            .map_err(|e| unavailable("SubjectAccessReview", e))?
            .status
            .unwrap_or_default();
        if answer.allowed {
            Ok(name)
        } else {
            Err(AuthzError::Forbidden(format!(
                "{name:?} may not {}{}",
                attrs.describe(),
                answer
                    .reason
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn attributes_read_like_rbac() {
        let m = Attributes::non_resource(&http::Method::GET, "/metrics");
        assert_eq!(m.describe(), "get /metrics");
        let spec = m.to_spec(UserInfo {
            username: Some("system:serviceaccount:openshift-monitoring:prometheus-k8s".into()),
            groups: Some(vec!["system:serviceaccounts".into()]),
            ..Default::default()
        });
        let nr = spec.non_resource_attributes.unwrap();
        assert_eq!(nr.path.as_deref(), Some("/metrics"));
        assert_eq!(nr.verb.as_deref(), Some("get"));
        assert_eq!(spec.groups.unwrap(), vec!["system:serviceaccounts"]);
        let p = Attributes::Resource {
            namespace: "mirrorscope".into(),
            group: String::new(),
            resource: "services".into(),
            subresource: "proxy".into(),
            name: "mirrorscope-collector".into(),
            verb: "get".into(),
        };
        assert_eq!(
            p.describe(),
            "get services/proxy \"mirrorscope-collector\" in namespace \"mirrorscope\""
        );
        let ra = p.to_spec(UserInfo::default()).resource_attributes.unwrap();
        assert_eq!(ra.group.as_deref(), Some(""));
        assert_eq!(ra.subresource.as_deref(), Some("proxy"));
        assert_eq!(
            Attributes::non_resource(&http::Method::POST, "/v1/reports").describe(),
            "create /v1/reports"
        );
        assert_eq!(AuthzError::Forbidden("x".into()).status(), 403);
    }
}
