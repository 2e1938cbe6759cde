//! The collector's periodic audit: every image the cluster uses (its pods, workload templates and
//! CSVs, and every image its agents saw pulled), resolved under each configuration the nodes run
//! and under the desired one, probed at every source as a node would try it. Runs every
//! `--audit-interval` and at once when the desired state changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorscope_core::api::{AuditRun, AuditView, ConfigurationAudit, InventoryView};
use mirrorscope_core::audit::auth::AuthFile;
use mirrorscope_core::audit::inventory::Inventory;
use mirrorscope_core::audit::{judge_inventory, plan_inventory, Summary, Verdict};
use mirrorscope_core::registries::EffectiveConfig;
use mirrorscope_probe::{pem_certs, probe_all, read_auth_file, read_ca_file, Options, Prober};
use tokio_util::sync::CancellationToken;

use super::cluster::Kind;
use super::{now_unix, views, App};

/// Images of each inventory object, by kind and `namespace/name`.
pub type InventoryObjects = BTreeMap<Kind, BTreeMap<String, Vec<String>>>;

/// How often the desired state is compared with the one last audited.
const DESIRED_POLL: Duration = Duration::from_secs(5);
/// The first audit waits this long (or the interval, if shorter) for agents to report.
const FIRST_DELAY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Zero turns the audit off.
    pub interval: Duration,
    pub probe: bool,
    /// Registry credentials; in-cluster without it, `openshift-config/pull-secret`.
    pub authfile: Option<PathBuf>,
    /// CAs trusted besides the system's and the additionalTrustedCA, for the mirror registries.
    pub ca_file: Option<PathBuf>,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// What `/v1/audit`, `/metrics` and the status page show.
#[derive(Debug, Default)]
pub struct AuditState {
    pub running: bool,
    pub last: Option<Arc<AuditRun>>,
    pub last_error: Option<String>,
    pub last_success_unix: Option<f64>,
}

pub fn view(app: &App) -> AuditView {
    let s = app.audit();
    AuditView {
        enabled: app.audit_enabled,
        running: s.running,
        last: s.last.as_deref().cloned(),
        last_error: s.last_error.clone(),
    }
}

/// The inventory: images of the objects the API server has, and of every pull the agents reported.
pub fn inventory(app: &App) -> Inventory {
    let mut inv = Inventory::default();
    for p in app.store().pulls() {
        let used_by = match (&p.pod, &p.node) {
            (Some(pod), _) => match pod.split_once('/') {
                Some((ns, name)) => format!("{ns}/Pod/{name}"),
                None => format!("-/Pod/{pod}"),
            },
            (None, Some(node)) => format!("-/Node/{node}"),
            (None, None) => "-/Node/?".into(),
        };
        inv.add(&p.image, used_by);
    }
    for (kind, objects) in app.inventory().iter() {
        let kind_name = kind.resource().kind;
        for (key, images) in objects {
            let used_by = match key.split_once('/') {
                Some((ns, name)) => format!("{ns}/{kind_name}/{name}"),
                None => format!("-/{kind_name}/{key}"),
            };
            for image in images {
                inv.add(image, used_by.clone());
            }
        }
    }
    inv
}

pub fn inventory_view(app: &App) -> InventoryView {
    inventory(app)
        .images
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// Audits until `cancel` fires.
pub async fn run(
    app: Arc<App>,
    opts: AuditOptions,
    kube: Option<kube::Client>,
    cancel: CancellationToken,
) {
    let mut next = Instant::now() + FIRST_DELAY.min(opts.interval);
    let mut audited_desired = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(DESIRED_POLL.min(opts.interval)) => {}
        }
        let desired = app.store().desired.target.clone();
        let changed = audited_desired.as_ref().is_some_and(|d| d != &desired);
        if !changed && Instant::now() < next {
            continue;
        }
        audited_desired = Some(desired);
        app.audit().running = true;
        let started = Instant::now();
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = run_once(&app, &opts, kube.as_ref()) => r,
        };
        let mut s = app.audit();
        s.running = false;
        match result {
            Ok(run) => {
                tracing::info!(
                    "audit: {} in {} ms",
                    run.summary,
                    started.elapsed().as_millis()
                );
                s.last = Some(Arc::new(run));
                s.last_error = None;
                s.last_success_unix = Some(now_unix());
            }
            Err(e) => {
                app.errors.count("audit", "failed");
                if s.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!("audit: {e}");
                }
                s.last_error = Some(e);
            }
        }
        next = Instant::now() + opts.interval;
    }
}

/// One configuration to audit under, with what its nodes' manifests must offer.
struct Under {
    config: EffectiveConfig,
    nodes: Vec<String>,
    desired: bool,
    architectures: Vec<String>,
}

async fn run_once(
    app: &App,
    opts: &AuditOptions,
    kube: Option<&kube::Client>,
) -> Result<AuditRun, String> {
    let started = Instant::now();
    let unders = configurations(app);
    let inventory = inventory(app);
    let auth = credentials(opts, kube).await?;
    let ca = match &opts.ca_file {
        Some(p) => Some(read_ca_file(p).map_err(|e| format!("--audit-ca-file {e}"))?),
        None => None,
    };
    let ca_by_host = match kube {
        Some(client) => additional_trusted_ca(client, app).await,
        None => HashMap::new(),
    };
    // Probes depend on the architectures asked for, so one prober (and cache) per set of them.
    let mut probers: HashMap<Vec<String>, Prober> = HashMap::new();
    let mut configurations = Vec::new();
    let mut worst: BTreeMap<String, Verdict> = BTreeMap::new();
    for u in unders {
        let mut planned = plan_inventory(&u.config, &inventory);
        if opts.probe {
            let prober = probers.entry(u.architectures.clone()).or_insert_with(|| {
                Prober::new(Options {
                    auth: auth.clone(),
                    ca: ca.clone(),
                    ca_by_host: ca_by_host.clone(),
                    arch: u.architectures.clone(),
                    timeout: opts.timeout,
                    concurrency: opts.concurrency,
                })
            });
            probe_all(prober, &mut planned, &|| {}).await;
        }
        let images = judge_inventory(planned, &inventory);
        for e in &images {
            let w = worst.entry(e.image.clone()).or_insert(e.verdict);
            *w = (*w).max(e.verdict);
        }
        configurations.push(ConfigurationAudit {
            nodes: u.nodes,
            desired: u.desired,
            architectures: u.architectures,
            summary: Summary::of(&images),
            images,
        });
    }
    Ok(AuditRun {
        finished_at: mirrorscope_core::time::format_secs(now_unix()),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        probed: opts.probe,
        summary: Summary::of_verdicts(worst.into_values()),
        configurations,
    })
}

/// Each distinct configuration the nodes reported, and the desired one when no node runs it yet.
fn configurations(app: &App) -> Vec<Under> {
    let store = app.light();
    let arch_of = |node: &str| {
        store
            .kube
            .nodes
            .get(node)
            .and_then(|n| n.labels.get("kubernetes.io/arch").cloned())
    };
    let mut out: Vec<Under> = Vec::new();
    let mut seen = BTreeSet::new();
    if let Ok(groups) = views::configurations(&store, None) {
        for g in groups {
            let Some(Ok(config)) = mirrorscope_core::report::reported_config(&g.files) else {
                continue;
            };
            seen.insert(config.canonical_json());
            let architectures: BTreeSet<String> =
                g.nodes.iter().filter_map(|n| arch_of(n)).collect();
            out.push(Under {
                config,
                nodes: g.nodes,
                desired: false,
                architectures: architectures.into_iter().collect(),
            });
        }
    }
    if let Some(desired) = &store.desired.config {
        if !seen.contains(&desired.canonical_json()) {
            let architectures: BTreeSet<String> =
                store.kube.nodes.keys().filter_map(|n| arch_of(n)).collect();
            out.push(Under {
                config: (**desired).clone(),
                nodes: Vec::new(),
                desired: true,
                architectures: architectures.into_iter().collect(),
            });
        }
    }
    out
}

/// `--audit-authfile`, or in-cluster the cluster's pull secret (what CRI-O pulls with).
async fn credentials(opts: &AuditOptions, kube: Option<&kube::Client>) -> Result<AuthFile, String> {
    if let Some(path) = &opts.authfile {
        return read_auth_file(path).map_err(|e| format!("--audit-authfile {e}"));
    }
    let Some(client) = kube else {
        return Ok(AuthFile::default());
    };
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), "openshift-config");
    match secrets.get_opt("pull-secret").await {
        Ok(Some(s)) => {
            let Some(data) = s.data.as_ref().and_then(|d| d.get(".dockerconfigjson")) else {
                return Err("openshift-config/pull-secret has no .dockerconfigjson".into());
            };
            let text = String::from_utf8_lossy(&data.0);
            AuthFile::parse("openshift-config/pull-secret", &text).map_err(|e| e.to_string())
        }
        // Anonymous probes still tell present from missing on public mirrors.
        Ok(None) => Ok(AuthFile::default()),
        Err(e) => Err(format!(
            "reading openshift-config/pull-secret: {}",
            super::cluster::chain(&e)
        )),
    }
}

/// The CAs of the Image config's `spec.additionalTrustedCA` ConfigMap (in openshift-config), by
/// registry: each key names one (`host`, or `host..port` for `host:port`), and nodes trust its
/// bundle for that registry only. Unreadable ones are logged and counted, and the audit goes on
/// with the others.
async fn additional_trusted_ca(client: &kube::Client, app: &App) -> HashMap<String, Vec<Vec<u8>>> {
    use kube::api::{Api, DynamicObject};
    let images: Api<DynamicObject> = Api::all_with(client.clone(), &Kind::Image.resource());
    let name = match images.get_opt("cluster").await {
        Ok(Some(o)) => o.data["spec"]["additionalTrustedCA"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        Ok(None) => None,
        Err(e) => {
            warn_once(
                app,
                "ca_image_config",
                &format!(
                    "reading image.config.openshift.io/cluster: {}",
                    super::cluster::chain(&e)
                ),
            );
            None
        }
    };
    let Some(name) = name else {
        return HashMap::new();
    };
    let maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "openshift-config");
    let map = match maps.get_opt(&name).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            warn_once(
                app,
                "ca_configmap",
                &format!("additionalTrustedCA: no ConfigMap openshift-config/{name}"),
            );
            return HashMap::new();
        }
        Err(e) => {
            warn_once(
                app,
                "ca_configmap",
                &format!(
                    "reading ConfigMap openshift-config/{name}: {}",
                    super::cluster::chain(&e)
                ),
            );
            return HashMap::new();
        }
    };
    let mut out = HashMap::new();
    for (key, pem) in map.data.unwrap_or_default() {
        match pem_certs(pem.as_bytes()) {
            Ok(certs) => {
                out.insert(key.replace("..", ":"), certs);
            }
            Err(e) => warn_once(
                app,
                "ca_pem",
                &format!("ConfigMap openshift-config/{name} key {key:?}: {e}"),
            ),
        }
    }
    out
}

/// Counts a failure kind and logs it the first time only.
fn warn_once(app: &App, kind: &'static str, message: &str) {
    if app.errors.count_first("audit", kind) {
        tracing::warn!("audit: {message}");
    }
}
