//! How the CLI reaches the collector: `--collector URL` (or `MIRRORSCOPE_COLLECTOR`), else the
//! API server's service proxy with the user's kubeconfig (kube-rs: merged `KUBECONFIG` files,
//! `--context`, exec plugins, client certificates, tokens, `proxy-url`, the system trust store
//! when the kubeconfig names no CA), so the user's RBAC applies. Both go through one kube-rs
//! client, so TLS and timeouts behave alike.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use http_body_util::BodyExt as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use mirrorscope_core::api::ErrorBody;
use serde::de::DeserializeOwned;

/// Connection flags, global to every subcommand (before or after it, as with kubectl).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Collector base URL (also MIRRORSCOPE_COLLECTOR); default: through the API server's service
    /// proxy, using your kubeconfig.
    #[arg(long, global = true, value_name = "URL", env = "MIRRORSCOPE_COLLECTOR")]
    pub collector: Option<String>,
    /// CA certificates (PEM) that sign an https --collector's certificate (default: system roots).
    #[arg(long, global = true, value_name = "FILE")]
    pub collector_ca_file: Option<PathBuf>,
    /// Bearer token file for --collector (also MIRRORSCOPE_TOKEN_FILE; or the token itself in
    /// MIRRORSCOPE_TOKEN, e.g. from `oc whoami -t`): the collector asks the API server whether
    /// its owner may `get services/proxy` on the collector's Service.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "MIRRORSCOPE_TOKEN_FILE"
    )]
    pub token_file: Option<PathBuf>,
    /// Do not verify the https --collector's certificate (testing only).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Kubeconfig file (default: KUBECONFIG's files merged, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the collector Service (service-proxy mode).
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NS",
        default_value = "mirrorscope"
    )]
    pub namespace: String,
    /// `[scheme:]name:port` of the collector Service (service-proxy mode): the read-only port the
    /// collector opens for the API server's proxy.
    #[arg(
        long,
        global = true,
        value_name = "[SCHEME:]NAME:PORT",
        default_value = "https:mirrorscope-collector:proxy"
    )]
    pub collector_service: String,
    /// How long to wait for one answer (e.g. 10s, 1m; plain numbers are seconds).
    #[arg(long, global = true, value_name = "D", default_value = "10s", value_parser = mirrorscope_core::time::parse_duration)]
    pub request_timeout: Duration,
}

/// A connected client: the collector itself, or the API server's service proxy in front of it.
pub struct Client {
    kube: kube::Client,
    /// Prepended to every collector path (empty for a direct connection).
    prefix: String,
    /// How the base is shown in errors.
    shown: String,
    timeout: Duration,
    via_proxy: bool,
}

impl Client {
    pub async fn new(args: &ConnArgs) -> anyhow::Result<Client> {
        let timeout = args.request_timeout.max(Duration::from_millis(100));
        match args.collector.as_deref().filter(|c| !c.is_empty()) {
            Some(url) => direct(args, url, timeout),
            None => proxied(args, timeout).await,
        }
    }

    /// GETs a collector path (with query) and decodes the JSON answer; a 4xx/5xx becomes an
    /// error carrying the collector's (or the API server's) message.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let full = format!("{}{path}", self.prefix);
        let shown = format!("{}{path}", self.shown);
        let req = http::Request::get(&full)
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::empty())
            .with_context(|| format!("{shown}: invalid request"))?;
        let (status, body) = tokio::time::timeout(self.timeout, async {
            let resp = self.kube.send(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .map_err(|_| anyhow::anyhow!("{shown}: no answer within {:?}", self.timeout))?
        .with_context(|| shown.clone())?;
        if !status.is_success() {
            bail!("{shown}: {}", self.failure(status, &body));
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{shown}: answer is not the expected JSON"))
    }

    /// What a refused request means, in words a user can act on.
    fn failure(&self, status: http::StatusCode, body: &[u8]) -> String {
        // The collector answers with an ErrorBody, the API server with a Status object.
        let message = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => e.error,
            Err(_) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect()),
        };
        let hint = match status.as_u16() {
            403 if self.via_proxy => "\n  you may not read the collector through the API server: ask for the ClusterRole mirrorscope-viewer (oc -n mirrorscope create rolebinding mirrorscope-viewers --clusterrole=mirrorscope-viewer --user=YOU)",
            401 if self.via_proxy => "\n  the API server did not accept your credentials: log in again (oc login)",
            401 => "\n  the collector wants a bearer token it can review with the API server: MIRRORSCOPE_TOKEN=$(oc whoami -t), or --token-file FILE",
            403 => "\n  the API server says you may not read the collector: ask for the ClusterRole mirrorscope-viewer (get services/proxy on mirrorscope-collector)",
            404 | 503 if self.via_proxy => "\n  is the collector installed and running? (oc -n mirrorscope get deploy,svc mirrorscope-collector)",
            _ => "",
        };
        format!("{} {message}{hint}", status.as_u16())
    }
}

fn direct(args: &ConnArgs, url: &str, timeout: Duration) -> anyhow::Result<Client> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--collector {url:?}: not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => bail!("--collector {url:?}: must start with http:// or https://"),
    }
    let mut config = kube::Config::new(uri);
    config.accept_invalid_certs = args.insecure_skip_tls_verify;
    if let Some(ca) = &args.collector_ca_file {
        config.root_cert = Some(read_pem_certs(ca)?);
    }
    config.connect_timeout = Some(timeout);
    if let Some(path) = &args.token_file {
        // kube-rs re-reads the file as it rotates, as with a kubeconfig's tokenFile.
        config.auth_info.token_file = Some(path.display().to_string());
    } else if let Some(token) = std::env::var("MIRRORSCOPE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        config.auth_info.token = Some(token.trim().to_string().into());
    }
    let kube = kube::Client::try_from(config).context("--collector")?;
    Ok(Client {
        kube,
        prefix: String::new(),
        shown: url.trim_end_matches('/').to_string(),
        timeout,
        via_proxy: false,
    })
}

async fn proxied(args: &ConnArgs, timeout: Duration) -> anyhow::Result<Client> {
    const HOW: &str =
        "no --collector (or MIRRORSCOPE_COLLECTOR) given, and the kubeconfig cannot be used";
    let kubeconfig = match &args.kubeconfig {
        Some(p) => {
            Kubeconfig::read_from(p).with_context(|| format!("--kubeconfig {}", p.display()))
        }
        None => Kubeconfig::read().context("reading the kubeconfig"),
    }
    .context(HOW)?;
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context(HOW)?;
    config.connect_timeout = Some(timeout);
    let shown_base = config.cluster_url.to_string();
    let kube = kube::Client::try_from(config).context(HOW)?;
    let prefix = format!(
        "/api/v1/namespaces/{}/services/{}/proxy",
        args.namespace, args.collector_service
    );
    Ok(Client {
        kube,
        shown: format!("{}{prefix}", shown_base.trim_end_matches('/')),
        prefix,
        timeout,
        via_proxy: true,
    })
}

/// The DER certificates of a PEM file.
fn read_pem_certs(path: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject as _;
    let shown = || format!("--collector-ca-file {}", path.display());
    let certs: Vec<Vec<u8>> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .with_context(shown)?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .with_context(shown)?;
    if certs.is_empty() {
        bail!(
            "--collector-ca-file {}: no CERTIFICATE block",
            path.display()
        );
    }
    Ok(certs)
}

/// A runtime for one CLI command and a client in it (kube-rs' client lives on a runtime).
pub fn connect(args: &ConnArgs) -> anyhow::Result<(tokio::runtime::Runtime, Client)> {
    let rt = runtime()?;
    let client = rt.block_on(Client::new(args))?;
    Ok((rt, client))
}

/// A single-threaded runtime for one CLI command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
