//! `mirrorscope plan`: what applying IDMS/ITMS/ICSP/Image objects will do, before anything is
//! applied: MCO's refusal, the diff of every file MCO writes, and the disruption the MCD will
//! cause on each node (none, a CRI-O reload, a drain and a reload, a reboot), with the reason.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use mirrorscope_core::openshift::disruption::{disruption, Disruption, DisruptionPolicy};
use mirrorscope_core::openshift::inputs::read_paths;
use mirrorscope_core::openshift::{
    node_config, render, InputSet, OcpVersion, ParseOptions, Refusal, RenderOptions, Rendering,
    REGISTRIES_CONF, TEMPLATE_REGISTRIES_CONF,
};
use serde::Serialize;

use crate::render::EXIT_REFUSED;

/// Arguments of `mirrorscope plan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What the cluster has now (`oc get idms,itms,icsp,image.config -o yaml > current.yaml`).
    #[arg(long, value_name = "PATH", required = true)]
    pub current: Vec<PathBuf>,
    /// The objects after the change: the whole new set, or with --merge only the new and changed
    /// objects (they replace objects of the same kind and name in --current).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// -f adds to and replaces objects of --current instead of being the whole new set.
    #[arg(long)]
    pub merge: bool,
    /// The OpenShift release whose MCO and MCD to predict.
    #[arg(long, value_name = "X.Y[.Z]", default_value_t = OcpVersion::DEFAULT)]
    pub ocp_version: OcpVersion,
    /// The cluster's release image (payload protection of blockedRegistries).
    #[arg(long, value_name = "REF")]
    pub release_image: Option<String>,
    /// Output format: text for people, json for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: crate::explain::Output,
    /// Replay the collector's recent pulls against the new configuration (implied by
    /// --collector / MIRRORSCOPE_COLLECTOR; without them, through the API server).
    #[arg(long)]
    pub replay: bool,
    /// Replay these images too, in any `audit --images-from` format (`oc get pods -A -o json`,
    /// workload lists, CSVs, mapping.txt, plain lists), naming the workloads each change hits.
    #[arg(long = "images-from", value_name = "FILE")]
    pub images_from: Vec<PathBuf>,
}

/// A pulled or inventoried image whose sources the change alters.
#[derive(Serialize)]
struct Affected {
    image: String,
    /// The workloads that use it (from --images-from; pulls name none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    used_by: Vec<String>,
    /// The first source before and after (what serves the pull when it is there).
    before: String,
    after: String,
    change: String,
}

/// One file MCO writes, before and after.
#[derive(Serialize)]
struct FileChange {
    path: String,
    changed: bool,
    diff: String,
}

/// The `-o json` document.
#[derive(Serialize)]
struct Plan {
    refused: Option<String>,
    files: Vec<FileChange>,
    disruption: Option<Disruption>,
    /// Recent pulls and --images-from images the change affects (with a collector or
    /// --images-from).
    #[serde(skip_serializing_if = "Option::is_none")]
    affected: Option<Vec<Affected>>,
}

/// Runs the subcommand: 0 planned, 1 the API server would reject an input object, 3 MCO would
/// refuse the new objects.
pub fn run(conn: &crate::client::ConnArgs, args: Args) -> anyhow::Result<i32> {
    let opts = ParseOptions {
        version: args.ocp_version,
    };
    let inventory = crate::audit::read_inventory_files(&args.images_from)?;
    let current = read_paths(&args.current, &opts, &mut std::io::stdin())?;
    let mut after = read_paths(&args.files, &opts, &mut std::io::stdin())?;
    for (set, flag) in [(&current, "--current"), (&after, "-f")] {
        if let Some(e) = set.errors.first() {
            eprintln!("error: {e}");
            eprintln!(
                "mirrorscope plan: the API server would reject {flag}'s objects; nothing planned"
            );
            return Ok(1);
        }
    }
    if args.merge {
        after = merged(&current, after);
    }
    let options = RenderOptions {
        ocp_version: args.ocp_version,
        release_image: args.release_image.clone(),
    };
    let before = match render(&current.input, &options) {
        Ok(r) => r,
        Err(refusal) => bail!(
            "MCO refuses the --current objects already ({}): the cluster's nodes run an older rendering; plan against what MCO rendered last",
            refusal.reason
        ),
    };
    let mut plan = match render(&after.input, &options) {
        Err(refusal) => refused(&refusal),
        Ok(new) => {
            let mut p = planned(&before, &new, disruption_policy(&args.current)?.as_ref());
            let from_collector = args.replay || conn.collector.is_some();
            if from_collector || !inventory.is_empty() {
                p.affected = Some(replay(conn, from_collector, inventory, &before, &new)?);
            }
            p
        }
    };
    if plan.refused.is_some() {
        plan.affected = None;
    }
    match args.output {
        crate::explain::Output::Json => {
            crate::outln!("{}", serde_json::to_string_pretty(&plan)?)?;
        }
        crate::explain::Output::Text => print_text(&plan)?,
    }
    Ok(if plan.refused.is_some() {
        EXIT_REFUSED
    } else {
        0
    })
}

/// `current` with `changes` applied: an object of the same kind and name is replaced, others
/// are added; a changed Image config replaces the current one.
fn merged(current: &InputSet, changes: InputSet) -> InputSet {
    let mut out = current.clone();
    let replace = |list: &mut Vec<mirrorscope_core::openshift::MirrorSet>,
                   new: Vec<mirrorscope_core::openshift::MirrorSet>| {
        for n in new {
            list.retain(|o| o.object.name != n.object.name);
            list.push(n);
        }
    };
    replace(&mut out.input.idms, changes.input.idms);
    replace(&mut out.input.itms, changes.input.itms);
    replace(&mut out.input.icsp, changes.input.icsp);
    if changes.input.image.is_some() {
        out.input.image = changes.input.image;
    }
    out.notes.extend(changes.notes);
    out
}

fn refused(refusal: &Refusal) -> Plan {
    Plan {
        refused: Some(format!(
            "MCO will not render this; nodes keep the old config: {}",
            refusal.reason
        )),
        files: Vec::new(),
        disruption: None,
        affected: None,
    }
}

/// Explains every image the collector saw pulled (and every --images-from image) under both
/// renderings; lists those whose first source, source order or outcome changes.
fn replay(
    conn: &crate::client::ConnArgs,
    from_collector: bool,
    mut inventory: mirrorscope_core::audit::inventory::Inventory,
    before: &Rendering,
    after: &Rendering,
) -> anyhow::Result<Vec<Affected>> {
    use mirrorscope_core::explain::{explain, Explanation};
    let (old, new) = (node_config(before)?, node_config(after)?);
    if from_collector {
        let (rt, client) = crate::client::connect(conn)?;
        let pulls: mirrorscope_core::api::PullsView =
            rt.block_on(client.get("/v1/pulls?limit=5000"))?;
        for p in pulls.pulls {
            inventory.images.entry(p.image).or_default();
        }
    }
    let first = |e: &Explanation| {
        e.sources
            .iter()
            .find(|s| !s.blocked)
            .map(|s| s.reference.clone())
            .unwrap_or_else(|| "(nothing: every location is blocked)".into())
    };
    let order = |e: &Explanation| {
        e.sources
            .iter()
            .map(|s| s.reference.clone())
            .collect::<Vec<_>>()
    };
    let source_blocked = |e: &Explanation| e.sources.iter().any(|s| !s.mirror && s.blocked);
    let mut out = Vec::new();
    for (image, users) in inventory.images {
        let (a, b) = (explain(&old, &image), explain(&new, &image));
        let change = match (a.will_not_pull(), b.will_not_pull()) {
            (false, true) => "starts failing: every location is blocked".to_string(),
            (true, false) => "starts pulling".to_string(),
            _ if first(&a) != first(&b) => {
                let kind = |e: &Explanation| match e.sources.iter().find(|s| !s.blocked) {
                    Some(s) if s.mirror => "a mirror",
                    Some(_) => "the source",
                    None => "nothing",
                };
                format!("served by {} instead of {}", kind(&b), kind(&a))
            }
            _ if order(&a) != order(&b) => "tries other locations or another order".to_string(),
            // Same locations: only what may be contacted changed (NeverContactSource and back).
            _ if source_blocked(&a) != source_blocked(&b) => {
                if source_blocked(&b) {
                    "the source is blocked from now on: only the mirrors can serve it".to_string()
                } else {
                    "the source may be contacted again after the mirrors".to_string()
                }
            }
            _ => continue,
        };
        out.push(Affected {
            before: first(&a),
            after: first(&b),
            image,
            used_by: users.into_iter().collect(),
            change,
        });
    }
    Ok(out)
}

/// The files a node has after a rendering lands: MCO's, or the template registries.conf when
/// MCO writes none.
fn node_files(r: &Rendering) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = r
        .files
        .iter()
        .map(|f| (f.path.clone(), f.contents.clone()))
        .collect();
    files
        .entry(REGISTRIES_CONF.to_string())
        .or_insert_with(|| TEMPLATE_REGISTRIES_CONF.to_string());
    files
}

/// The `MachineConfiguration/cluster` node-disruption policy among the --current objects
/// (`oc get machineconfiguration cluster -o yaml`), when one is there.
fn disruption_policy(paths: &[PathBuf]) -> anyhow::Result<Option<DisruptionPolicy>> {
    use serde::Deserialize as _;
    for file in mirrorscope_core::openshift::inputs::expand(paths)? {
        if file.as_os_str() == "-" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for doc in serde_norway::Deserializer::from_str(&text) {
            let Ok(v) = serde_json::Value::deserialize(doc) else {
                continue;
            };
            let items = match v["items"].as_array() {
                Some(items) => items.clone(),
                None => vec![v],
            };
            if let Some(p) = items.iter().find_map(DisruptionPolicy::from_object) {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

fn planned(before: &Rendering, after: &Rendering, policy: Option<&DisruptionPolicy>) -> Plan {
    let (old, new) = (node_files(before), node_files(after));
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    let files = paths
        .into_iter()
        .map(|p| {
            let (a, b) = (
                old.get(p).map(String::as_str).unwrap_or_default(),
                new.get(p).map(String::as_str).unwrap_or_default(),
            );
            let diff = similar::TextDiff::from_lines(a, b)
                .unified_diff()
                .context_radius(3)
                .header(&format!("a{p}"), &format!("b{p}"))
                .to_string();
            FileChange {
                path: p.clone(),
                changed: a != b,
                diff: if a == b { String::new() } else { diff },
            }
        })
        .collect();
    Plan {
        refused: None,
        files,
        disruption: Some(disruption(&old, &new, policy)),
        affected: None,
    }
}

fn print_text(plan: &Plan) -> anyhow::Result<()> {
    if let Some(r) = &plan.refused {
        eprintln!("mirrorscope plan: {r}");
        return Ok(());
    }
    for f in &plan.files {
        if f.changed {
            crate::out!("{}", f.diff)?;
        } else {
            crate::outln!("{}: unchanged", f.path)?;
        }
    }
    if let Some(affected) = &plan.affected {
        crate::outln!("\nimages the change affects: {}", affected.len())?;
        for a in affected {
            let users = match a.used_by.as_slice() {
                [] => String::new(),
                [one] => format!(", used by {one}"),
                [first, rest @ ..] => format!(", used by {first} +{} more", rest.len()),
            };
            crate::outln!(
                "  {}: {} ({} -> {}{})",
                crate::output::cell(&a.image),
                a.change,
                crate::output::cell(&a.before),
                crate::output::cell(&a.after),
                crate::output::cell(&users)
            )?;
        }
    }
    if let Some(d) = &plan.disruption {
        crate::outln!(
            "\nnode disruption: {}{}",
            d.action.as_str(),
            if d.drain {
                " (every node of the pool is drained, one at a time by maxUnavailable)"
            } else {
                ""
            }
        )?;
        for r in &d.reasons {
            crate::outln!("  - {r}")?;
        }
    }
    Ok(())
}
