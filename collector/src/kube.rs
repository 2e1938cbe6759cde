//! A small Kubernetes API client for the few calls mirrorscope makes: TokenReview, lists of a
//! handful of kinds, and the service proxy to the collector.
//!
//! Hand-rolled over hyper instead of kube-rs + k8s-openapi: those two crates (plus their TLS
//! and generated types) multiply the build time of this crate on the 2-core CI for four calls.
//! Objects are read as JSON values, in the API's own shapes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::httpc::{self, HttpError, TlsError, TlsSettings, Url};

/// Where a pod finds its ServiceAccount credentials.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where the API server is and how to authenticate.
#[derive(Debug, Clone)]
pub struct KubeClient {
    pub base: Url,
    token: Option<String>,
    pub timeout: Duration,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{path}: API server answered {status}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    #[error("{path}: answer is not JSON: {error}")]
    Json {
        path: String,
        error: serde_json::Error,
    },
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("TLS settings for {what}: {error}")]
    Tls { what: String, error: TlsError },
    #[error("not in a pod (KUBERNETES_SERVICE_HOST is unset): give --kube-api")]
    NotInCluster,
}

/// The outcome of a TokenReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub authenticated: bool,
    pub username: String,
    /// `authentication.kubernetes.io/node-name` from the token's claims.
    pub node_name: Option<String>,
    pub error: Option<String>,
}

impl KubeClient {
    pub fn new(base: Url, token: Option<String>) -> KubeClient {
        KubeClient {
            base,
            token,
            timeout: Duration::from_secs(10),
            tls: None,
        }
    }

    fn with_tls(mut self, what: &str, settings: &TlsSettings) -> Result<KubeClient, KubeError> {
        if self.base.https {
            self.tls = Some(settings.client_config().map_err(|error| KubeError::Tls {
                what: what.to_string(),
                error,
            })?);
        }
        Ok(self)
    }

    /// `--kube-api URL` with an optional token file and CA file.
    pub fn from_url(
        url: &str,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> Result<KubeClient, KubeError> {
        let token = match token_file {
            Some(p) => Some(read_token(p)?),
            None => None,
        };
        let ca_pem = match ca_file {
            Some(p) => Some(read(p)?),
            None => None,
        };
        KubeClient::new(Url::parse(url)?, token).with_tls(
            "--kube-api",
            &TlsSettings {
                ca_pem,
                ..Default::default()
            },
        )
    }

    /// Inside a pod: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` with the
    /// ServiceAccount's token and CA.
    pub fn in_cluster() -> Result<KubeClient, KubeError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| KubeError::NotInCluster)?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let dir = Path::new(SA_DIR);
        KubeClient::from_url(
            &format!("https://{host}:{port}"),
            Some(&dir.join("token")),
            Some(&dir.join("ca.crt")),
        )
    }

    /// The user's kubeconfig (`$KUBECONFIG`'s first file, else `~/.kube/config`): current
    /// context's server and bearer token.
    pub fn from_kubeconfig() -> Result<KubeClient, KubeError> {
        let path = kubeconfig_path().ok_or_else(|| KubeError::Kubeconfig {
            path: "~/.kube/config".into(),
            reason: "no KUBECONFIG and no HOME".into(),
        })?;
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|error| KubeError::Read {
            path: shown.clone(),
            error,
        })?;
        let bad = |reason: String| KubeError::Kubeconfig {
            path: shown.clone(),
            reason,
        };
        let cfg: Kubeconfig = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let ctx_name = cfg
            .current_context
            .clone()
            .ok_or_else(|| bad("no current-context".into()))?;
        let ctx = cfg
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .ok_or_else(|| bad(format!("context {ctx_name:?} not found")))?;
        let cluster = cfg
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| bad(format!("cluster {:?} not found", ctx.context.cluster)))?;
        let user = ctx
            .context
            .user
            .as_deref()
            .and_then(|u| cfg.users.iter().find(|x| x.name == u));
        let token = match user.map(|u| &u.user) {
            Some(KubeUser { token: Some(t), .. }) => Some(t.clone()),
            Some(KubeUser {
                token_file: Some(f),
                ..
            }) => Some(read_token(Path::new(f))?),
            _ => None,
        };
        let base = Url::parse(&cluster.cluster.server).map_err(|e| bad(e.to_string()))?;
        let cl = &cluster.cluster;
        let u = user.map(|u| &u.user);
        let settings = TlsSettings {
            ca_pem: data_or_file(&cl.certificate_authority_data, &cl.certificate_authority)?,
            insecure: cl.insecure_skip_tls_verify,
            client_cert_pem: match u {
                Some(u) => data_or_file(&u.client_certificate_data, &u.client_certificate)?,
                None => None,
            },
            client_key_pem: match u {
                Some(u) => data_or_file(&u.client_key_data, &u.client_key)?,
                None => None,
            },
        };
        KubeClient::new(base, token).with_tls(&format!("kubeconfig {shown}"), &settings)
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<httpc::Response, KubeError> {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("accept", "application/json")];
        if let Some(a) = auth.as_deref() {
            headers.push(("authorization", a));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        Ok(httpc::request(
            method,
            &self.base.join(path),
            &headers,
            body,
            self.timeout,
            self.tls.as_ref(),
        )
        .await?)
    }

    /// GET a path under the API server and decode JSON, failing on non-2xx.
    pub async fn get_json(&self, path: &str) -> Result<Value, KubeError> {
        let r = self.call(hyper::Method::GET, path, None).await?;
        decode(path, r)
    }

    /// GET through the API server, returning the raw answer (service proxy).
    pub async fn get_raw(&self, path: &str) -> Result<httpc::Response, KubeError> {
        self.call(hyper::Method::GET, path, None).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, KubeError> {
        let bytes = serde_json::to_vec(body).map_err(|error| KubeError::Json {
            path: path.into(),
            error,
        })?;
        let r = self.call(hyper::Method::POST, path, Some(bytes)).await?;
        decode(path, r)
    }

    /// Asks the API server who a bearer token belongs to. A projected token minted for another
    /// audience than the API server's own is only accepted when that audience is named.
    pub async fn token_review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Reviewed, KubeError> {
        let mut spec = serde_json::json!({"token": token});
        if !audiences.is_empty() {
            spec["audiences"] = serde_json::json!(audiences);
        }
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": spec,
        });
        let v = self
            .post_json("/apis/authentication.k8s.io/v1/tokenreviews", &body)
            .await?;
        let status = &v["status"];
        Ok(Reviewed {
            authenticated: status["authenticated"].as_bool().unwrap_or(false),
            username: status["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            node_name: status["user"]["extra"]["authentication.kubernetes.io/node-name"]
                .get(0)
                .and_then(Value::as_str)
                .map(str::to_string),
            error: status["error"].as_str().map(str::to_string),
        })
    }

    /// Watches a collection from `resource_version`: each event's `type` and `object` go to
    /// `on_event` until it returns false or the server ends the watch (after at most
    /// `timeoutSeconds`).
    pub async fn watch(
        &self,
        path: &str,
        resource_version: &str,
        on_event: &mut (dyn FnMut(&str, &Value) -> bool + Send),
    ) -> Result<(), KubeError> {
        let full = format!(
            "{path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=290&resourceVersion={}",
            crate::query::encode(resource_version)
        );
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("accept", "application/json")];
        if let Some(a) = auth.as_deref() {
            headers.push(("authorization", a));
        }
        let mut on_line = |line: &[u8]| -> bool {
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => on_event(v["type"].as_str().unwrap_or(""), &v["object"]),
                // A line that is not an event (keep-alive whitespace) is skipped.
                Err(_) => true,
            }
        };
        let status = httpc::stream_lines(
            &self.base.join(&full),
            &headers,
            self.timeout,
            self.tls.as_ref(),
            &mut on_line,
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(KubeError::Status {
                path: full,
                status,
                message: "watch refused".into(),
            });
        }
        Ok(())
    }

    /// `items` of a list and the list's `resourceVersion` (where a watch starts).
    pub async fn list_versioned(&self, path: &str) -> Result<(Vec<Value>, String), KubeError> {
        let v = self.get_json(path).await?;
        let rv = v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((v["items"].as_array().cloned().unwrap_or_default(), rv))
    }

    /// `items` of a list.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, KubeError> {
        let v = self.get_json(path).await?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }
}

fn decode(path: &str, r: httpc::Response) -> Result<Value, KubeError> {
    if !(200..300).contains(&r.status) {
        let message = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| r.text().chars().take(300).collect());
        return Err(KubeError::Status {
            path: path.into(),
            status: r.status,
            message,
        });
    }
    serde_json::from_slice(&r.body).map_err(|error| KubeError::Json {
        path: path.into(),
        error,
    })
}

fn read(p: &Path) -> Result<Vec<u8>, KubeError> {
    std::fs::read(p).map_err(|error| KubeError::Read {
        path: p.display().to_string(),
        error,
    })
}

/// A kubeconfig `*-data` field (base64) or its file twin.
fn data_or_file(
    data: &Option<String>,
    file: &Option<String>,
) -> Result<Option<Vec<u8>>, KubeError> {
    if let Some(d) = data {
        let bytes = mirrorscope_core::machineconfig::decode_data_url(&format!("data:;base64,{d}"))
            .map_err(|e| KubeError::Kubeconfig {
                path: "kubeconfig".into(),
                reason: format!("invalid base64 data: {e}"),
            })?;
        return Ok(Some(bytes));
    }
    match file {
        Some(f) => Ok(Some(read(Path::new(f))?)),
        None => Ok(None),
    }
}

fn read_token(p: &Path) -> Result<String, KubeError> {
    std::fs::read_to_string(p)
        .map(|t| t.trim().to_string())
        .map_err(|error| KubeError::Read {
            path: p.display().to_string(),
            error,
        })
}

fn kubeconfig_path() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECONFIG") {
        let s = k.to_string_lossy().into_owned();
        if let Some(first) = s.split(':').find(|x| !x.is_empty()) {
            return Some(PathBuf::from(first));
        }
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<Named<KubeContext>>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    context: T,
}

#[derive(Deserialize)]
struct KubeContext {
    cluster: String,
    user: Option<String>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: KubeCluster,
}

#[derive(Deserialize)]
struct KubeCluster {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: KubeUser,
}

#[derive(Deserialize, Default)]
struct KubeUser {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-certificate")]
    client_certificate: Option<String>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<String>,
}
