//! `mirrorscope explain`: where containers/image will pull each image from.

use std::fmt::Write as _;
use std::path::PathBuf;

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::explain::{explain, Explanation};
use mirrorscope_core::registries::{load, ConfigLocation};

/// Output formats of `explain`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Arguments of `mirrorscope explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Main registries.conf (default: /etc/containers/registries.conf; must exist when given).
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// Drop-in directory, repeatable, read in the order given (default: what CRI-O reads,
    /// /etc/containers/registries.conf.d then /root/.config/containers/registries.conf.d).
    #[arg(long = "registries-conf-d", value_name = "DIR")]
    pub registries_conf_d: Vec<PathBuf>,
    /// Output format: text for people, json for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
    /// Reproduce the texts and rules of this containers/image release (e.g. 5.23 for Debian's skopeo).
    #[arg(long, value_name = "VERSION", default_value = "latest")]
    pub containers_image_version: CImageVersion,
    /// Explain against this node's configuration as its agent reported it to the collector.
    #[arg(long, value_name = "N", conflicts_with_all = ["registries_conf", "registries_conf_d"])]
    pub node: Option<String>,
    /// Images as a pod spec names them (`nginx:1.25.3`, `quay.io/ns/app@sha256:...`).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

impl Args {
    fn location(&self) -> ConfigLocation {
        ConfigLocation::system_with_overrides(
            self.registries_conf.as_deref(),
            &self.registries_conf_d,
        )
    }
}

/// Runs the subcommand: 0 when every image resolves, 1 when one will not pull (it fails before
/// any attempt, or every location is blocked), 2 when the configuration itself is invalid.
pub fn run(conn: &crate::client::ConnArgs, args: Args) -> anyhow::Result<i32> {
    if let Some(node) = &args.node {
        return run_on_node(conn, &args, node);
    }
    let config = match load(&args.location(), args.containers_image_version) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mirrorscope: invalid registries configuration: {e}");
            return Ok(2);
        }
    };
    let explanations: Vec<Explanation> = args.images.iter().map(|i| explain(&config, i)).collect();
    print_all(&args, &explanations)
}

/// `--node`: the collector explains against the files that node reported.
fn run_on_node(conn: &crate::client::ConnArgs, args: &Args, node: &str) -> anyhow::Result<i32> {
    let (rt, client) = crate::client::connect(conn)?;
    let mut explanations = Vec::new();
    for image in &args.images {
        let q = mirrorscope_core::query::build(&[
            ("image", Some(image.clone())),
            ("node", Some(node.to_string())),
        ]);
        explanations.push(rt.block_on(client.get::<Explanation>(&format!("/v1/explain{q}")))?);
    }
    print_all(args, &explanations)
}

fn print_all(args: &Args, explanations: &[Explanation]) -> anyhow::Result<i32> {
    match args.output {
        Output::Json => crate::outln!("{}", serde_json::to_string_pretty(&explanations)?)?,
        Output::Text => {
            for e in explanations {
                crate::out!("{}", render_text(e))?;
            }
        }
    }
    Ok(if explanations.iter().any(Explanation::will_not_pull) {
        1
    } else {
        0
    })
}

/// The human form: one block per image.
pub fn render_text(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", e.image);
    if let Some(r) = &e.reference {
        if r != &e.image {
            let _ = writeln!(s, "  reference  {r}");
        }
    }
    match &e.registry {
        Some(m) => {
            let location = if m.location.is_empty() {
                "(unchanged)"
            } else {
                m.location.as_str()
            };
            let _ = writeln!(
                s,
                "  matched    prefix {} -> location {} ({})",
                m.prefix, location, m.file
            );
        }
        None if e.error.is_none() => {
            let _ = writeln!(s, "  matched    no [[registry]] entry");
        }
        None => {}
    }
    let width = e
        .sources
        .iter()
        .map(|x| x.reference.len())
        .max()
        .unwrap_or(0);
    for (i, src) in e.sources.iter().enumerate() {
        let role = if src.mirror { "mirror" } else { "source" };
        let mut flags = Vec::new();
        if src.insecure {
            flags.push("insecure".to_string());
        }
        if let Some(p) = &src.blocked_by {
            flags.push(format!("BLOCKED by {p}"));
        }
        if src.node_local {
            flags.push(
                "node-local: the in-cluster release registry of each control-plane node, a different registry on every node"
                    .to_string(),
            );
        }
        let line = format!(
            "  {}. {:<width$}  {role} {}",
            i + 1,
            src.reference,
            flags.join(", ")
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
    if let Some(err) = &e.error {
        let _ = writeln!(s, "  error      {err}");
    }
    if !e.candidates.is_empty() {
        let _ = writeln!(
            s,
            "  short name CRI-O would try: {}",
            e.candidates.join(", ")
        );
    }
    let _ = writeln!(s, "  => {}", e.summary);
    s
}
