//! The cluster's side (`--in-cluster`): Nodes with their MCO annotations, MachineConfigPools,
//! and the objects MCO renders registries.conf from, re-listed every `--kube-poll` seconds;
//! Nodes are also watched between listings, so an MCD finishing on a node (its `state`
//! annotation) reaches `wait` at once rather than at the next listing.

use std::collections::BTreeMap;

use mirrorscope_core::machineconfig::parse_current_config;
use mirrorscope_core::openshift::{
    InputSet, OcpVersion, ParseOptions, RenderOptions, REGISTRIES_CONF,
};
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};
use mirrorscope_core::rollout::McoNodeState;
use serde_json::Value;

use super::desired;
use super::state::{DesiredState, KubeNode, PoolInfo};
use crate::kube::{KubeClient, KubeError};

const ANNOTATION: &str = "machineconfiguration.openshift.io/";

/// One listing of everything the collector reads from the API server.
#[derive(Debug, Default)]
pub struct ClusterSnapshot {
    pub nodes: BTreeMap<String, KubeNode>,
    pub pools: Vec<PoolInfo>,
    /// The node list's `resourceVersion`.
    pub nodes_version: String,
    /// `None` when the objects could not be rendered (see `notes`).
    pub desired: Option<DesiredState>,
}

/// Lists and interprets the cluster's objects; `render_desired` is false when `--desired`
/// files take precedence.
pub async fn snapshot(
    client: &KubeClient,
    render_desired: bool,
    fallback_version: OcpVersion,
) -> Result<ClusterSnapshot, KubeError> {
    let mut pools: Vec<PoolInfo> = client
        .list("/apis/machineconfiguration.openshift.io/v1/machineconfigpools")
        .await?
        .iter()
        .map(|p| PoolInfo {
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
        })
        .collect();
    for p in &mut pools {
        if let Some(t) = &p.target {
            let path = format!("/apis/machineconfiguration.openshift.io/v1/machineconfigs/{t}");
            // Best effort: without read access to MachineConfigs the check is simply skipped.
            if let Ok(mc) = client.get_json(&path).await {
                p.target_sha256 = machine_config_sha256(&mc);
            }
        }
    }
    let (items, nodes_version) = client.list_versioned("/api/v1/nodes").await?;
    let nodes = items.iter().filter_map(|n| kube_node(n, &pools)).collect();
    let desired = if render_desired {
        Some(render_cluster(client, fallback_version).await?)
    } else {
        None
    };
    Ok(ClusterSnapshot {
        nodes,
        pools,
        nodes_version,
        desired,
    })
}

/// A Node object as the rollout sees it: labels, pool, MCO annotations.
pub fn kube_node(n: &Value, pools: &[PoolInfo]) -> Option<(String, KubeNode)> {
    let name = n["metadata"]["name"].as_str()?;
    let labels = string_map(&n["metadata"]["labels"]);
    let ann = string_map(&n["metadata"]["annotations"]);
    let pool = pool_of(pools, &labels);
    let get = |k: &str| ann.get(&format!("{ANNOTATION}{k}")).cloned();
    let mco = McoNodeState {
        current_config: get("currentConfig"),
        desired_config: get("desiredConfig"),
        state: get("state"),
        reason: get("reason").filter(|r| !r.is_empty()),
        pool_target: pool.and_then(|p| p.target.clone()),
        pool_target_sha256: pool.and_then(|p| p.target_sha256.clone()),
        pool_paused: pool.is_some_and(|p| p.paused),
    };
    Some((
        name.to_string(),
        KubeNode {
            labels,
            pool: pool.map(|p| p.name.clone()).unwrap_or_default(),
            mco,
        },
    ))
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

async fn render_cluster(
    client: &KubeClient,
    fallback_version: OcpVersion,
) -> Result<DesiredState, KubeError> {
    let cv = optional(
        client
            .get_json("/apis/config.openshift.io/v1/clusterversions/version")
            .await,
    )?;
    let release_image = cv
        .as_ref()
        .and_then(|v| v["status"]["desired"]["image"].as_str())
        .map(str::to_string);
    let version = cv
        .as_ref()
        .and_then(|v| v["status"]["desired"]["version"].as_str())
        .and_then(|v| v.parse::<OcpVersion>().ok())
        .unwrap_or(fallback_version);
    let opts = ParseOptions { version };
    let mut set = InputSet::default();
    let mut objects = Vec::new();
    if let Some(img) = optional(
        client
            .get_json("/apis/config.openshift.io/v1/images/cluster")
            .await,
    )? {
        objects.push(img);
    }
    for path in [
        "/apis/config.openshift.io/v1/imagedigestmirrorsets",
        "/apis/config.openshift.io/v1/imagetagmirrorsets",
        "/apis/operator.openshift.io/v1alpha1/imagecontentsourcepolicies",
    ] {
        if let Some(list) = optional(client.get_json(path).await)? {
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                objects.push(item);
            }
        }
    }
    for (i, o) in objects.iter().enumerate() {
        let name = o["metadata"]["name"].as_str().unwrap_or("?");
        let origin = format!("api#{i}({name})");
        match serde_yaml::to_value(o) {
            Ok(v) => set.add_value(&v, &origin, &opts),
            Err(e) => set.errors.push(mirrorscope_core::openshift::InputError {
                origin,
                object: None,
                field: String::new(),
                message: e.to_string(),
            }),
        }
    }
    let options = RenderOptions {
        ocp_version: version,
        release_image,
    };
    let mut d = desired::from_inputs(&set, &options, "the cluster's IDMS/ITMS/ICSP/Image objects");
    d.notes
        .extend(set.errors.iter().map(|e| format!("input error: {e}")));
    Ok(d)
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
    let v = Default::default();
    let main =
        parse_config_str(&text(REGISTRIES_CONF)?, REGISTRIES_CONF, FileKind::Main, v).ok()?;
    let mut drop_in_paths: Vec<&str> = cc
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.starts_with("/etc/containers/registries.conf.d/") && p.ends_with(".conf"))
        .collect();
    drop_in_paths.sort();
    drop_in_paths.dedup();
    let mut drop_ins = Vec::new();
    for p in drop_in_paths {
        drop_ins.push(parse_config_str(&text(p)?, p, FileKind::DropIn, v).ok()?);
    }
    let cfg = EffectiveConfig::from_files(
        Some(main),
        drop_ins,
        (REGISTRIES_CONF.into(), String::new()),
    );
    Some(cfg.canonical_sha256())
}

/// A kind the cluster does not serve (404) is an empty input, not an error.
fn optional(r: Result<Value, KubeError>) -> Result<Option<Value>, KubeError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(KubeError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
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
