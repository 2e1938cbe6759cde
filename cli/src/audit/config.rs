//! The configurations to audit under: a rendering of desired objects, files on disk, or what
//! the nodes reported to the collector.

use anyhow::{bail, Context as _};
use mirrorscope_core::api::ReportedConfiguration;
use mirrorscope_core::openshift::inputs::read_paths;
use mirrorscope_core::openshift::{node_config, render, ParseOptions, RenderOptions};
use mirrorscope_core::registries::{load, ConfigLocation, EffectiveConfig};

use super::Args;

/// A configuration and where it came from.
pub struct Described {
    pub config: EffectiveConfig,
    pub about: About,
}

/// Where a configuration came from, as the table's heading names it.
#[derive(Debug, Clone)]
pub enum About {
    /// The MCO rendering of these objects' paths.
    Desired(Vec<String>),
    /// These registries files and drop-in directories.
    Files(Vec<String>),
    /// What these nodes reported.
    Nodes(Vec<String>),
}

impl About {
    /// The nodes that run it, for a configuration they reported.
    pub fn nodes(&self) -> Option<&[String]> {
        match self {
            About::Nodes(n) => Some(n),
            About::Desired(_) | About::Files(_) => None,
        }
    }
}

impl std::fmt::Display for About {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            About::Desired(from) => write!(f, "the MCO rendering of {}", from.join(", ")),
            About::Files(from) => write!(f, "{}", from.join(", ")),
            About::Nodes(nodes) => {
                let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
                let more = nodes.len().saturating_sub(shown.len());
                write!(
                    f,
                    "the configuration of {} node{} ({}{})",
                    nodes.len(),
                    if nodes.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if more > 0 {
                        format!(", +{more} more")
                    } else {
                        String::new()
                    }
                )
            }
        }
    }
}

pub fn configurations(
    conn: &crate::client::ConnArgs,
    args: &Args,
) -> anyhow::Result<Vec<Described>> {
    if !args.desired.is_empty() {
        return Ok(vec![desired(args)?]);
    }
    if args.registries_conf.is_some() || !args.registries_conf_d.is_empty() {
        let location = ConfigLocation::system_with_overrides(
            args.registries_conf.as_deref(),
            &args.registries_conf_d,
        );
        let config = load(&location, Default::default())
            .map_err(|e| anyhow::anyhow!("invalid registries configuration: {e}"))?;
        let mut from: Vec<String> = args
            .registries_conf
            .iter()
            .chain(&args.registries_conf_d)
            .map(|p| p.display().to_string())
            .collect();
        from.dedup();
        return Ok(vec![Described {
            config,
            about: About::Files(from),
        }]);
    }
    reported(conn, args.node.as_deref())
}

fn desired(args: &Args) -> anyhow::Result<Described> {
    let opts = ParseOptions {
        version: args.ocp_version,
    };
    let set = read_paths(&args.desired, &opts, &mut std::io::stdin())?;
    if let Some(e) = set.errors.first() {
        bail!(
            "--desired: the API server would reject {} object{}; first: {e}",
            set.errors.len(),
            if set.errors.len() == 1 { "" } else { "s" }
        );
    }
    let options = RenderOptions {
        ocp_version: args.ocp_version,
        release_image: None,
    };
    let rendering = render(&set.input, &options).map_err(|r| {
        anyhow::anyhow!(
            "--desired: the MCO (OCP {}) will refuse these objects: {}",
            args.ocp_version,
            r.reason
        )
    })?;
    let config = node_config(&rendering).context("--desired: the rendered registries.conf")?;
    Ok(Described {
        config,
        about: About::Desired(
            args.desired
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        ),
    })
}

/// Every distinct configuration the nodes reported (or one node's).
fn reported(conn: &crate::client::ConnArgs, node: Option<&str>) -> anyhow::Result<Vec<Described>> {
    let (rt, client) = crate::client::connect(conn)?;
    let q = mirrorscope_core::query::build(&[("node", node.map(str::to_string))]);
    let groups: Vec<ReportedConfiguration> =
        rt.block_on(client.get(&format!("/v1/configurations{q}")))?;
    let mut out = Vec::new();
    for g in groups {
        let about = About::Nodes(g.nodes);
        match mirrorscope_core::report::reported_config(&g.files) {
            Some(Ok(config)) => out.push(Described { config, about }),
            Some(Err(e)) => eprintln!(
                "mirrorscope: {about} is not audited: its registries files do not load (CRI-O keeps what it loaded before and fails at its next restart): {}",
                crate::output::escape_controls(&e)
            ),
            None => {}
        }
    }
    if out.is_empty() {
        match node {
            Some(n) => bail!("node {n:?} reported no loadable registries files"),
            None => bail!("the collector knows no node with loadable registries files (give --desired or --registries-conf to audit without it)"),
        }
    }
    Ok(out)
}
