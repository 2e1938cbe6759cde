//! How the CLI reaches the collector: `--collector URL` (or `MIRRORSCOPE_COLLECTOR`), else the
//! API server's service proxy with the user's kubeconfig, so the user's RBAC applies.

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;
use crate::httpc::{self, Url};
use crate::kube::KubeClient;

/// Connection flags shared by the collector-backed subcommands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Collector base URL (default: through the API server's service proxy, using your kubeconfig).
    #[arg(long, value_name = "URL")]
    pub collector: Option<String>,
    /// Namespace of the collector Service (service-proxy mode).
    #[arg(long, value_name = "NS", default_value = "mirrorscope")]
    pub collector_namespace: String,
    /// `name:port` of the collector Service (service-proxy mode).
    #[arg(
        long,
        value_name = "NAME:PORT",
        default_value = "mirrorscope-collector:http"
    )]
    pub collector_service: String,
    /// Seconds to wait for one answer.
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    pub request_timeout: u64,
}

/// A connected client.
pub enum Client {
    Direct { base: Url, timeout: Duration },
    Proxy { kube: KubeClient, prefix: String },
}

impl Client {
    pub fn new(args: &ConnArgs) -> anyhow::Result<Client> {
        let timeout = Duration::from_secs(args.request_timeout.max(1));
        let from_env = std::env::var("MIRRORSCOPE_COLLECTOR")
            .ok()
            .filter(|v| !v.is_empty());
        match args.collector.as_ref().or(from_env.as_ref()) {
            Some(url) => Ok(Client::Direct {
                base: Url::parse(url).context("--collector")?,
                timeout,
            }),
            None => {
                let mut kube = KubeClient::from_kubeconfig().context(
                    "no --collector (or MIRRORSCOPE_COLLECTOR) given, and the kubeconfig cannot be used",
                )?;
                kube.timeout = timeout;
                Ok(Client::Proxy {
                    kube,
                    prefix: format!(
                        "/api/v1/namespaces/{}/services/{}/proxy",
                        args.collector_namespace, args.collector_service
                    ),
                })
            }
        }
    }

    /// GETs a collector path (with query) and decodes the JSON answer; a 4xx/5xx becomes an
    /// error carrying the collector's message.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (shown, resp) = match self {
            Client::Direct { base, timeout } => {
                let url = base.join(path);
                let r = httpc::request(
                    hyper::Method::GET,
                    &url,
                    &[("accept", "application/json")],
                    None,
                    *timeout,
                    None,
                )
                .await?;
                (url.to_string_lossy(), r)
            }
            Client::Proxy { kube, prefix } => {
                let p = format!("{prefix}{path}");
                let r = kube.get_raw(&p).await?;
                (kube.base.join(&p).to_string_lossy(), r)
            }
        };
        if !(200..300).contains(&resp.status) {
            let msg = serde_json::from_slice::<ErrorBody>(&resp.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| resp.text().chars().take(300).collect());
            bail!("{shown}: {} {msg}", resp.status);
        }
        serde_json::from_slice(&resp.body)
            .with_context(|| format!("{shown}: answer is not the expected JSON"))
    }
}

/// A single-threaded runtime for one CLI command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
