//! The agent's and the collector's connection to the API server, through kube-rs: in-cluster (ServiceAccount
//! token and CA, both re-read as they rotate), `--kubeconfig`, or `--kube-api URL` with
//! `--kube-token-file` / `--kube-ca-file` (scripts and tests).

use std::path::PathBuf;

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

/// Where the API server is, as the flags say.
#[derive(Debug, Clone, Default)]
pub struct KubeFlags {
    pub api: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    #[error("--kube-api {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("--kube-token-file {path}: {reason}")]
    Token { path: String, reason: String },
    #[error("--kube-ca-file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("--kubeconfig {path}: {error}")]
    Kubeconfig {
        path: String,
        error: kube::config::KubeconfigError,
    },
    #[error("not in a pod and no --kube-api or --kubeconfig given: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("building the API client: {0}")]
    Client(#[from] kube::Error),
}

/// A client for the API server the flags name.
pub async fn client(flags: &KubeFlags) -> Result<kube::Client, KubeConfigError> {
    let config = if let Some(url) = &flags.api {
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| KubeConfigError::Url {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(KubeConfigError::Url {
                url: url.clone(),
                reason: "must start with http:// or https://".into(),
            });
        }
        if let Some(path) = &flags.token_file {
            check_token_file(path)?;
        }
        let mut c = kube::Config::new(uri);
        c.auth_info = AuthInfo {
            // kube-rs re-reads a token file as it rotates.
            token_file: flags.token_file.as_ref().map(|p| p.display().to_string()),
            ..Default::default()
        };
        if let Some(ca) = &flags.ca_file {
            c.root_cert = Some(read_certs(ca)?);
            c.root_cert_file = Some(ca.clone());
        }
        c
    } else if let Some(path) = &flags.kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|error| KubeConfigError::Kubeconfig {
            path: path.display().to_string(),
            error,
        })?;
        let options = KubeConfigOptions {
            context: flags.context.clone(),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|error| KubeConfigError::Kubeconfig {
                path: path.display().to_string(),
                error,
            })?
    } else {
        kube::Config::incluster()?
    };
    Ok(kube::Client::try_from(config)?)
}

/// kube-rs sends the file's bytes as they are (projected ServiceAccount tokens have no newline);
/// a token saved with `oc create token SA > FILE` ends with one and would fail every request
/// with an unhelpful header error, so say so at start-up.
fn check_token_file(path: &std::path::Path) -> Result<(), KubeConfigError> {
    let bad = |reason: String| KubeConfigError::Token {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if text.is_empty() {
        return Err(bad("empty".into()));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "contains white space (a trailing newline?): write the token alone, e.g. `oc create token SA | tr -d '\\n' > FILE`".into(),
        ));
    }
    Ok(())
}

fn read_certs(path: &std::path::Path) -> Result<Vec<Vec<u8>>, KubeConfigError> {
    use rustls::pki_types::pem::PemObject as _;
    let bad = |reason: String| KubeConfigError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<Vec<u8>> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    Ok(certs)
}
