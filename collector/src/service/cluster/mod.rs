//! The cluster's side (`--in-cluster`): Nodes with their MCD annotations, MachineConfigPools and
//! their target MachineConfigs, and the objects MCO renders registries.conf from, each kept
//! current by a kube-rs watcher. The assembler folds their updates into the store: a burst of
//! events becomes one new view, built off the ingest lock and swapped in.

mod kinds;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mirrorscope_core::openshift::{InputSet, OcpVersion, ParseOptions, RenderOptions};
use mirrorscope_core::rollout::{DesiredState, McnState};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::state::{KubeView, PoolInfo};
use super::App;
pub use kinds::Kind;
use kinds::{node_in_pools, Kept};
pub use watch::chain;
use watch::{watch_kind, KindStatus, Update};

/// Events that arrive within this long of each other are applied together.
const COALESCE: Duration = Duration::from_millis(20);

/// What the assembler knows of every kind.
#[derive(Default)]
struct World {
    objects: BTreeMap<Kind, BTreeMap<String, Kept>>,
    status: BTreeMap<Kind, KindStatus>,
    /// An object MCO renders from changed since the last rendering.
    rendering_dirty: bool,
}

impl World {
    fn apply(&mut self, u: Update) {
        let kind = match &u {
            Update::Reset(k, _)
            | Update::Apply(k, ..)
            | Update::Delete(k, _)
            | Update::Status(k, _) => *k,
        };
        match u {
            Update::Reset(k, all) => {
                self.objects.insert(k, all.into_iter().collect());
            }
            Update::Apply(k, name, kept) => {
                self.objects.entry(k).or_default().insert(name, *kept);
            }
            Update::Delete(k, name) => {
                self.objects.entry(k).or_default().remove(&name);
            }
            Update::Status(k, s) => {
                if s == KindStatus::NotServed {
                    self.objects.remove(&k);
                }
                self.status.insert(k, s);
            }
        }
        if kind.feeds_rendering() {
            self.rendering_dirty = true;
        }
    }

    /// Listed (or known not to be served) at least once: its objects can be trusted as complete.
    fn settled(&self, kind: Kind) -> bool {
        matches!(
            self.status.get(&kind),
            Some(KindStatus::Ready | KindStatus::NotServed)
        )
    }

    fn errors(&self) -> Option<String> {
        let errs: Vec<&str> = self
            .status
            .values()
            .filter_map(|s| match s {
                KindStatus::Failed(m) => Some(m.as_str()),
                _ => None,
            })
            .collect();
        (!errs.is_empty()).then(|| errs.join("; "))
    }

    fn pools(&self) -> Vec<PoolInfo> {
        let targets = self.objects.get(&Kind::MachineConfig);
        let mut pools: Vec<PoolInfo> = self
            .objects
            .get(&Kind::MachineConfigPool)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|k| match k {
                Kept::Pool(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        for p in &mut pools {
            p.target_sha256 =
                p.target
                    .as_ref()
                    .and_then(|t| targets?.get(t))
                    .and_then(|k| match k {
                        Kept::MachineConfig(sha) => sha.clone(),
                        _ => None,
                    });
        }
        pools
    }

    /// MachineConfigNodes by node name: v1 where it is served, else the v1alpha1 preview.
    fn mcns(&self) -> BTreeMap<String, McnState> {
        let kind = match self.status.get(&Kind::MachineConfigNode) {
            Some(KindStatus::Ready) => Kind::MachineConfigNode,
            _ => Kind::MachineConfigNodeV1Alpha1,
        };
        self.objects
            .get(&kind)
            .into_iter()
            .flatten()
            .filter_map(|(name, k)| match k {
                Kept::Mcn(m) => Some((name.clone(), m.clone())),
                _ => None,
            })
            .collect()
    }

    fn view(&self) -> KubeView {
        let pools = self.pools();
        let mcns = self.mcns();
        let nodes = self
            .objects
            .get(&Kind::Node)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(name, k)| match k {
                Kept::Node(n) => Some((name.clone(), node_in_pools(n, &pools, mcns.get(name)))),
                _ => None,
            })
            .collect();
        KubeView {
            nodes,
            pools: Arc::new(pools),
            error: self.errors(),
        }
    }

    fn object(&self, kind: Kind, name: &str) -> Option<&Value> {
        match self.objects.get(&kind)?.get(name)? {
            Kept::Object(v) => Some(v),
            _ => None,
        }
    }

    /// MCO's rendering of the cluster's IDMS/ITMS/ICSP/Image objects for its release.
    fn desired(&self, fallback_version: OcpVersion) -> DesiredState {
        let cv = self.object(Kind::ClusterVersion, "version");
        let release_image = cv
            .and_then(|v| v["status"]["desired"]["image"].as_str())
            .map(str::to_string);
        let version = cv
            .and_then(|v| v["status"]["desired"]["version"].as_str())
            .and_then(|v| v.parse::<OcpVersion>().ok())
            .unwrap_or(fallback_version);
        let opts = ParseOptions { version };
        let mut set = InputSet::default();
        let mut add = |kind: Kind, name: &str, v: &Value| {
            let origin = format!("{}/{name}", kind.as_str());
            match serde_norway::to_value(v) {
                Ok(y) => set.add_value(&y, &origin, &opts),
                Err(e) => set.errors.push(mirrorscope_core::openshift::InputError {
                    origin,
                    object: None,
                    field: String::new(),
                    message: e.to_string(),
                }),
            }
        };
        if let Some(img) = self.object(Kind::Image, "cluster") {
            add(Kind::Image, "cluster", img);
        }
        for kind in [
            Kind::ImageDigestMirrorSet,
            Kind::ImageTagMirrorSet,
            Kind::ImageContentSourcePolicy,
        ] {
            for (name, k) in self.objects.get(&kind).into_iter().flatten() {
                if let Kept::Object(v) = k {
                    add(kind, name, v);
                }
            }
        }
        let options = RenderOptions {
            ocp_version: version,
            release_image,
        };
        DesiredState::from_inputs(&set, &options, "the cluster's IDMS/ITMS/ICSP/Image objects")
    }
}

/// One watch per kind, all feeding one channel.
fn watch_all(
    client: &kube::Client,
    kinds: &[Kind],
    cancel: &CancellationToken,
) -> (JoinSet<()>, mpsc::Receiver<Update>) {
    let (tx, rx) = mpsc::channel(1024);
    let mut watchers = JoinSet::new();
    for &kind in kinds {
        watchers.spawn(watch_kind(
            client.clone(),
            kind,
            tx.clone(),
            cancel.child_token(),
        ));
    }
    (watchers, rx)
}

/// Watches the cluster until `cancel` fires. `render_desired` is false when `--desired` files
/// take precedence over the cluster's own objects.
pub async fn run(
    client: kube::Client,
    app: Arc<App>,
    render_desired: bool,
    fallback_version: OcpVersion,
    cancel: CancellationToken,
) {
    let (mut watchers, mut rx) = watch_all(&client, &Kind::ALL, &cancel);
    let mut world = World::default();
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            u = rx.recv() => u,
        };
        let Some(u) = first else { break };
        count_failure(&app, &u);
        world.apply(u);
        let until = tokio::time::Instant::now() + COALESCE;
        while let Ok(Some(u)) = tokio::time::timeout_at(until, rx.recv()).await {
            count_failure(&app, &u);
            world.apply(u);
        }
        publish(&mut world, &app, render_desired, fallback_version);
    }
    watchers.shutdown().await;
}

fn count_failure(app: &App, u: &Update) {
    if let Update::Status(_, KindStatus::Failed(_)) = u {
        app.errors.count("kube", "watch_failed");
    }
}

fn publish(world: &mut World, app: &App, render_desired: bool, fallback_version: OcpVersion) {
    let complete = Kind::ALL
        .iter()
        .filter(|k| !k.feeds_rendering())
        .all(|k| world.settled(*k));
    // Until every kind has been listed once, a view would be partial (nodes without pools,
    // pools without targets): keep the old one and report only errors.
    let view = complete.then(|| world.view());
    let desired = (render_desired
        && world.rendering_dirty
        && Kind::ALL
            .iter()
            .filter(|k| k.feeds_rendering())
            .all(|k| world.settled(*k)))
    .then(|| {
        world.rendering_dirty = false;
        world.desired(fallback_version)
    });
    let error = world.errors();
    let mut s = app.store();
    match view {
        Some(v) => s.kube = Arc::new(v),
        None if s.kube.error != error => {
            let mut k = (*s.kube).clone();
            k.error = error;
            s.kube = Arc::new(k);
        }
        None => {}
    }
    if let Some(d) = desired {
        if s.desired.target != d.target {
            tracing::info!(desired = %d.describe(), "desired state");
        }
        s.desired = d;
    }
}

/// Keeps the images of every inventory object (Pods, workloads, CSVs) current in
/// [`App::inventory`], until `cancel` fires. Separate from the rollout's watches: pods churn, and
/// their events never rebuild the rollout view.
pub async fn run_inventory(client: kube::Client, app: Arc<App>, cancel: CancellationToken) {
    let (mut watchers, mut rx) = watch_all(&client, &Kind::INVENTORY, &cancel);
    loop {
        let update = tokio::select! {
            _ = cancel.cancelled() => break,
            u = rx.recv() => u,
        };
        let Some(u) = update else { break };
        count_failure(&app, &u);
        let mut inv = app.inventory();
        match u {
            Update::Reset(kind, all) => {
                let objects = all
                    .into_iter()
                    .filter_map(|(key, kept)| match kept {
                        Kept::Images(i) => Some((key, i)),
                        _ => None,
                    })
                    .collect();
                inv.insert(kind, objects);
            }
            Update::Apply(kind, key, kept) => {
                if let Kept::Images(i) = *kept {
                    inv.entry(kind).or_default().insert(key, i);
                }
            }
            Update::Delete(kind, key) => {
                inv.entry(kind).or_default().remove(&key);
            }
            Update::Status(kind, KindStatus::NotServed) => {
                inv.remove(&kind);
            }
            Update::Status(..) => {}
        }
    }
    watchers.shutdown().await;
}
