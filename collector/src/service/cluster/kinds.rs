//! The kinds the collector reads from the API server, in the API's own shapes (JSON, unknown
//! fields ignored), and what it keeps of each object: only what the rollout needs, so a Node's
//! image list or a rendered MachineConfig's every file never stays in memory.

use std::collections::BTreeMap;

use kube::core::{ApiResource, GroupVersionKind};
use mirrorscope_core::machineconfig::parse_current_config;
use mirrorscope_core::openshift::node_config_from_files;
use mirrorscope_core::rollout::{McnState, McoNodeState};
use serde_json::Value;

use crate::service::state::{KubeNode, PoolInfo};

const ANNOTATION: &str = "machineconfiguration.openshift.io/";

/// Every kind the collector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Node,
    MachineConfigPool,
    MachineConfig,
    ImageDigestMirrorSet,
    ImageTagMirrorSet,
    ImageContentSourcePolicy,
    Image,
    ClusterVersion,
    /// OpenShift 4.19 and later.
    MachineConfigNode,
    /// The tech preview of 4.16-4.18, read when v1 is not served.
    MachineConfigNodeV1Alpha1,
    // What the audit's inventory is read from (only their images are kept).
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    ClusterServiceVersion,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Node,
        Kind::MachineConfigPool,
        Kind::MachineConfig,
        Kind::ImageDigestMirrorSet,
        Kind::ImageTagMirrorSet,
        Kind::ImageContentSourcePolicy,
        Kind::Image,
        Kind::ClusterVersion,
        Kind::MachineConfigNode,
        Kind::MachineConfigNodeV1Alpha1,
    ];

    /// The kinds whose images make the audit's inventory.
    pub const INVENTORY: [Kind; 6] = [
        Kind::Pod,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::CronJob,
        Kind::ClusterServiceVersion,
    ];

    pub fn resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            Kind::Node => ("", "v1", "Node", "nodes"),
            Kind::MachineConfigPool => (
                "machineconfiguration.openshift.io",
                "v1",
                "MachineConfigPool",
                "machineconfigpools",
            ),
            Kind::MachineConfig => (
                "machineconfiguration.openshift.io",
                "v1",
                "MachineConfig",
                "machineconfigs",
            ),
            Kind::ImageDigestMirrorSet => (
                "config.openshift.io",
                "v1",
                "ImageDigestMirrorSet",
                "imagedigestmirrorsets",
            ),
            Kind::ImageTagMirrorSet => (
                "config.openshift.io",
                "v1",
                "ImageTagMirrorSet",
                "imagetagmirrorsets",
            ),
            Kind::ImageContentSourcePolicy => (
                "operator.openshift.io",
                "v1alpha1",
                "ImageContentSourcePolicy",
                "imagecontentsourcepolicies",
            ),
            Kind::Image => ("config.openshift.io", "v1", "Image", "images"),
            Kind::ClusterVersion => (
                "config.openshift.io",
                "v1",
                "ClusterVersion",
                "clusterversions",
            ),
            Kind::MachineConfigNode => (
                "machineconfiguration.openshift.io",
                "v1",
                "MachineConfigNode",
                "machineconfignodes",
            ),
            Kind::MachineConfigNodeV1Alpha1 => (
                "machineconfiguration.openshift.io",
                "v1alpha1",
                "MachineConfigNode",
                "machineconfignodes",
            ),
            Kind::Pod => ("", "v1", "Pod", "pods"),
            Kind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Kind::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets"),
            Kind::DaemonSet => ("apps", "v1", "DaemonSet", "daemonsets"),
            Kind::CronJob => ("batch", "v1", "CronJob", "cronjobs"),
            Kind::ClusterServiceVersion => (
                "operators.coreos.com",
                "v1alpha1",
                "ClusterServiceVersion",
                "clusterserviceversions",
            ),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    /// The kinds MCO renders registries.conf from (plus the release they are rendered for).
    pub fn feeds_rendering(self) -> bool {
        matches!(
            self,
            Kind::ImageDigestMirrorSet
                | Kind::ImageTagMirrorSet
                | Kind::ImageContentSourcePolicy
                | Kind::Image
                | Kind::ClusterVersion
        )
    }

    /// A kind whose watch may be refused (403) without blinding the rollout: without read access
    /// to MachineConfigs, the "pool's target carries it" hint is simply left out.
    pub fn optional(self) -> bool {
        matches!(
            self,
            Kind::MachineConfig | Kind::MachineConfigNode | Kind::MachineConfigNodeV1Alpha1
        ) || Kind::INVENTORY.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::MachineConfigPool => "machineconfigpools",
            Kind::MachineConfig => "machineconfigs",
            Kind::ImageDigestMirrorSet => "imagedigestmirrorsets",
            Kind::ImageTagMirrorSet => "imagetagmirrorsets",
            Kind::ImageContentSourcePolicy => "imagecontentsourcepolicies",
            Kind::Image => "images",
            Kind::ClusterVersion => "clusterversions",
            Kind::MachineConfigNode => "machineconfignodes (v1)",
            Kind::MachineConfigNodeV1Alpha1 => "machineconfignodes (v1alpha1)",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::CronJob => "cronjobs",
            Kind::ClusterServiceVersion => "clusterserviceversions",
        }
    }
}

/// What is kept of one object.
#[derive(Debug, Clone)]
pub enum Kept {
    /// A Node's labels and MCD annotations (its pool is assigned once pools are known).
    Node(NodeLabels),
    Pool(PoolInfo),
    /// The canonical hash of the registries configuration a MachineConfig carries.
    MachineConfig(Option<String>),
    /// A node's MachineConfigNode, keyed by the node's name.
    Mcn(McnState),
    /// An object MCO renders from, as the API serves it.
    Object(Value),
    /// The images an inventory object's pod templates (or CSV's related images) name.
    Images(Vec<String>),
}

/// A Node as the rollout sees it, before pool assignment.
#[derive(Debug, Clone, Default)]
pub struct NodeLabels {
    pub labels: BTreeMap<String, String>,
    pub mco: McoNodeState,
}

/// Keeps what the rollout needs of `obj`.
pub fn keep(kind: Kind, obj: &Value) -> Kept {
    match kind {
        Kind::Node => Kept::Node(node_labels(obj)),
        Kind::MachineConfigPool => Kept::Pool(pool_info(obj)),
        Kind::MachineConfig => Kept::MachineConfig(machine_config_sha256(obj)),
        Kind::MachineConfigNode | Kind::MachineConfigNodeV1Alpha1 => {
            Kept::Mcn(McnState::from_object(obj).unwrap_or_default())
        }
        k if Kind::INVENTORY.contains(&k) => Kept::Images(images(k, obj)),
        _ => Kept::Object(obj.clone()),
    }
}

/// Images as the audit's inventory reads them; an object it cannot read contributes none (the
/// API server validated it, so this is a shape we do not know, not an attack).
fn images(kind: Kind, obj: &Value) -> Vec<String> {
    let Ok(mut obj) = serde_norway::to_value(obj) else {
        return Vec::new();
    };
    // Items of a list carry no kind of their own.
    if let serde_norway::Value::Mapping(m) = &mut obj {
        m.insert("kind".into(), kind.resource().kind.into());
    }
    mirrorscope_core::audit::inventory::from_object("", &obj)
        .map(|inv| inv.images.into_keys().collect())
        .unwrap_or_default()
}

fn node_labels(n: &Value) -> NodeLabels {
    let ann = string_map(&n["metadata"]["annotations"]);
    let get = |k: &str| ann.get(&format!("{ANNOTATION}{k}")).cloned();
    NodeLabels {
        labels: string_map(&n["metadata"]["labels"]),
        mco: McoNodeState {
            current_config: get("currentConfig"),
            desired_config: get("desiredConfig"),
            state: get("state").map(Into::into),
            reason: get("reason").filter(|r| !r.is_empty()),
            ..Default::default()
        },
    }
}

fn pool_info(p: &Value) -> PoolInfo {
    PoolInfo {
        name: p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        match_labels: string_map(&p["spec"]["nodeSelector"]["matchLabels"]),
        target: p["spec"]["configuration"]["name"]
            .as_str()
            .map(str::to_string),
        target_sha256: None,
        paused: p["spec"]["paused"].as_bool().unwrap_or(false),
        degraded: pool_degraded(p),
    }
}

/// The MCO's own verdict on a pool: `Degraded` (or `NodeDegraded`) `True`, with its message.
fn pool_degraded(p: &Value) -> Option<String> {
    let conditions = p["status"]["conditions"].as_array()?;
    conditions
        .iter()
        .find(|c| {
            matches!(c["type"].as_str(), Some("Degraded" | "NodeDegraded")) && c["status"] == "True"
        })
        .map(|c| {
            c["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .or_else(|| c["reason"].as_str())
                .unwrap_or("no message")
                .to_string()
        })
}

/// A Node with its pool: the pool's target and whether it is paused.
pub fn node_in_pools(n: &NodeLabels, pools: &[PoolInfo], mcn: Option<&McnState>) -> KubeNode {
    let pool = pool_of(pools, &n.labels);
    let mut mco = n.mco.clone();
    mco.mcn = mcn.cloned();
    mco.pool_target = pool.and_then(|p| p.target.clone());
    mco.pool_target_digest = pool.and_then(|p| p.target_sha256.clone());
    mco.pool_paused = pool.is_some_and(|p| p.paused);
    mco.pool_degraded = pool.and_then(|p| {
        Some(format!(
            "pool {} is Degraded: {}",
            p.name,
            p.degraded.as_ref()?
        ))
    });
    KubeNode {
        labels: n.labels.clone(),
        pool: pool.map(|p| p.name.clone()).unwrap_or_default(),
        mco,
    }
}

/// MCO's choice: a node matched by a custom pool belongs to it rather than to `worker`.
fn pool_of<'a>(pools: &'a [PoolInfo], labels: &BTreeMap<String, String>) -> Option<&'a PoolInfo> {
    let matching: Vec<&PoolInfo> = pools
        .iter()
        .filter(|p| {
            !p.match_labels.is_empty()
                && p.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .collect();
    matching
        .iter()
        .find(|p| p.name != "worker")
        .or_else(|| matching.first())
        .copied()
}

/// The effective registries configuration a rendered MachineConfig carries: its registries.conf
/// and drop-ins, merged as containers/image does (later files of one path win, as in Ignition).
fn machine_config_sha256(mc: &Value) -> Option<String> {
    let bytes = serde_json::to_vec(mc).ok()?;
    let cc = parse_current_config(&bytes).ok()?;
    let text = |path: &str| -> Option<String> {
        match &cc.file(path)?.contents {
            Some(Ok(b)) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    };
    // Rendered MachineConfigs always carry registries.conf; one without it says nothing.
    text(mirrorscope_core::openshift::REGISTRIES_CONF)?;
    let drop_ins: Vec<&str> = cc.files.iter().map(|f| f.path.as_str()).collect();
    let cfg = node_config_from_files(Default::default(), &text, &drop_ins).ok()?;
    Some(cfg.canonical_sha256())
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
