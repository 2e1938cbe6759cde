//! `mirrorscope audit`: which images will not pull, judged before a node tries. The inventory
//! (what the cluster runs) is resolved under a configuration exactly as a node resolves it and,
//! with `--probe`, each source a node would try is asked for the manifest.

mod config;
mod report;

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use mirrorscope_core::audit::auth::AuthFile;
use mirrorscope_core::audit::inventory::{self, Inventory};
use mirrorscope_core::audit::{judge_inventory, plan, plan_inventory, AuditEntry, Verdict};
use mirrorscope_core::openshift::OcpVersion;

use mirrorscope_probe as probe;

use crate::output::Format;

/// Which verdicts make the exit code 1.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// An image nothing serves.
    Fail,
    /// Also an image only its source serves (it breaks in a disconnected cluster).
    Source,
}

/// Arguments of `mirrorscope audit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Resolve under the MCO rendering of these IDMS/ITMS/ICSP/Image objects (files or
    /// directories, `-` for standard input), as `render -f` reads them. Repeatable.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["registries_conf", "registries_conf_d", "node"])]
    pub desired: Vec<PathBuf>,
    /// Resolve under this main registries.conf (with --registries-conf-d, or alone).
    #[arg(long, value_name = "FILE", conflicts_with = "node")]
    pub registries_conf: Option<PathBuf>,
    /// Drop-in directory, repeatable, read in the order given.
    #[arg(
        long = "registries-conf-d",
        value_name = "DIR",
        conflicts_with = "node"
    )]
    pub registries_conf_d: Vec<PathBuf>,
    /// Resolve under this node's configuration as its agent reported it to the collector.
    /// Without any configuration option, every distinct configuration the collector knows is
    /// audited, each once, naming the nodes that share it.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// The images to audit: `oc get pods -A -o json`, any list of workloads or
    /// ClusterServiceVersions (YAML or JSON), an oc-mirror mapping.txt, or references separated
    /// by white space; `-` reads standard input. Repeatable. Without it (and without IMAGE), the
    /// collector's inventory: every pod, workload template and CSV, and every image pulled.
    #[arg(long = "images-from", value_name = "FILE")]
    pub images_from: Vec<PathBuf>,
    /// Images named on the command line, audited with the inventory.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Also audit every image of this OpenShift release payload, read from its
    /// `release-manifests/image-references` through the configuration's mirrors: is a
    /// disconnected upgrade to it ready?
    #[arg(long, value_name = "IMAGE", requires = "probe")]
    pub release: Option<String>,
    /// Ask every source a node would try for the manifest (GET only, nothing is pulled).
    /// Without it, only what the configuration alone decides is reported.
    #[arg(long)]
    pub probe: bool,
    /// Registry credentials (auth.json, or the cluster pull secret's .dockerconfigjson).
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// PEM CA certificates to trust besides the system's (the mirror registry's CA).
    #[arg(long, value_name = "FILE", requires = "probe")]
    pub ca_file: Option<PathBuf>,
    /// Architectures every served manifest must offer (the nodes' GOARCH names).
    #[arg(
        long,
        value_name = "ARCH,...",
        value_delimiter = ',',
        requires = "probe"
    )]
    pub arch: Vec<String>,
    /// Sources probed at once (at most half of them, and at least 2, on one registry host).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// How long one registry request may take.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_timeout)]
    pub probe_timeout: Duration,
    /// The OpenShift release whose MCO renders --desired.
    #[arg(long, value_name = "X.Y[.Z]", default_value_t = OcpVersion::DEFAULT)]
    pub ocp_version: OcpVersion,
    /// Exit 1 when an image is at this verdict or worse.
    #[arg(long, value_enum, default_value = "fail")]
    pub fail_on: FailOn,
    /// Output format: table (with each finding and its fix), wide (every source), json, yaml.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
}

/// A probe timeout: a duration as `mirrorscope_core::time` reads them, and more than zero.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = mirrorscope_core::time::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// One configuration and what it makes of every image.
pub struct Audit {
    pub configuration: config::Described,
    pub entries: Vec<AuditEntry>,
}

/// Runs the subcommand: 0 nothing at or past `--fail-on`, 1 something is, 2 bad input.
pub fn run(conn: &crate::client::ConnArgs, args: Args) -> anyhow::Result<i32> {
    let configurations = config::configurations(conn, &args)?;
    let prober = args.probe.then(|| prober(&args)).transpose()?;
    let rt = crate::client::runtime()?;
    let mut inventory =
        if args.images.is_empty() && args.images_from.is_empty() && args.release.is_none() {
            collector_inventory(conn)?
        } else {
            read_inventory(&args)?
        };
    if let (Some(release), Some(prober), Some(first)) =
        (&args.release, &prober, configurations.first())
    {
        let arch = args.arch.first().map_or("amd64", String::as_str);
        let payload = rt.block_on(release_images(prober, &first.config, release, arch))?;
        inventory.merge(payload);
    }
    let mut audits = Vec::new();
    for described in configurations {
        let mut planned = plan_inventory(&described.config, &inventory);
        if let Some(prober) = &prober {
            let bar = progress(planned.len() as u64);
            rt.block_on(probe::probe_all(prober, &mut planned, &|| bar.inc(1)));
            bar.finish_and_clear();
        }
        let entries = judge_inventory(planned, &inventory);
        audits.push(Audit {
            configuration: described,
            entries,
        });
    }
    report::print(&args, &audits)?;
    let threshold = match args.fail_on {
        FailOn::Fail => Verdict::Fail,
        FailOn::Source => Verdict::Source,
    };
    let failing = audits
        .iter()
        .flat_map(|a| &a.entries)
        .any(|e| e.verdict.at_or_past(threshold));
    Ok(i32::from(failing))
}

/// A bar on a terminal's stderr; hidden on a pipe, so scripts and logs see only the answer.
fn progress(len: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("probing {bar:30} {pos}/{len} images, {elapsed}")
    {
        bar.set_style(style);
    }
    bar
}

fn read_inventory(args: &Args) -> anyhow::Result<Inventory> {
    let mut inv = read_inventory_files(&args.images_from)?;
    for image in &args.images {
        inv.add(image, "command line".into());
    }
    anyhow::ensure!(
        !inv.is_empty() || args.release.is_some(),
        "nothing to audit: give --images-from FILE (e.g. oc get pods -A -o json > pods.json) or images"
    );
    Ok(inv)
}

/// The images of `--images-from` files (`-` is standard input, once), in any inventory format.
pub fn read_inventory_files(paths: &[PathBuf]) -> anyhow::Result<Inventory> {
    let mut inv = Inventory::default();
    let mut stdin_read = false;
    for path in paths {
        let (name, text) = if path.as_os_str() == "-" {
            anyhow::ensure!(!stdin_read, "--images-from -: standard input given twice");
            stdin_read = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("--images-from -: reading standard input")?;
            ("-".to_string(), text)
        } else {
            let name = path.display().to_string();
            let text =
                std::fs::read_to_string(path).with_context(|| format!("--images-from {name}"))?;
            (name, text)
        };
        let (_, found) = inventory::parse(&name, &text)?;
        inv.merge(found);
    }
    Ok(inv)
}

/// The release image and every payload image it lists, each used by `release/<tag>`.
async fn release_images(
    prober: &probe::Prober,
    config: &mirrorscope_core::registries::EffectiveConfig,
    release: &str,
    arch: &str,
) -> anyhow::Result<Inventory> {
    use mirrorscope_core::audit::release::{image_references, IMAGE_REFERENCES};
    let planned = plan(config, release);
    let file = prober
        .read_file(&planned, IMAGE_REFERENCES, arch)
        .await
        .map_err(|e| anyhow::anyhow!("--release {release}: {e}"))?;
    let refs = image_references(&file).with_context(|| format!("--release {release}"))?;
    let mut inv = Inventory::default();
    inv.add(release, "release".into());
    for (tag, image) in refs {
        inv.add(&image, format!("release/{tag}"));
    }
    Ok(inv)
}

/// Without `--images-from`: what the collector keeps (pods, workload templates, CSVs and every
/// image its agents saw pulled).
fn collector_inventory(conn: &crate::client::ConnArgs) -> anyhow::Result<Inventory> {
    let (rt, client) = crate::client::connect(conn)
        .context("no --images-from or images given, so the inventory comes from the collector")?;
    let view: mirrorscope_core::api::InventoryView = rt.block_on(client.get("/v1/inventory"))?;
    let mut inv = Inventory::default();
    for (image, users) in view {
        for u in users {
            inv.add(&image, u);
        }
    }
    anyhow::ensure!(
        !inv.is_empty(),
        "the collector knows no image yet (no pod, workload or pull): give --images-from FILE (e.g. oc get pods -A -o json > pods.json) or images"
    );
    Ok(inv)
}

fn prober(args: &Args) -> anyhow::Result<probe::Prober> {
    let auth = match &args.authfile {
        Some(p) => probe::read_auth_file(p).map_err(|e| anyhow::anyhow!("--authfile {e}"))?,
        None => AuthFile::default(),
    };
    let ca = args
        .ca_file
        .as_deref()
        .map(|p| probe::read_ca_file(p).map_err(|e| anyhow::anyhow!("--ca-file {e}")))
        .transpose()?;
    Ok(probe::Prober::new(probe::Options {
        auth,
        ca,
        ca_by_host: Default::default(),
        arch: args
            .arch
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        timeout: args.probe_timeout,
        concurrency: usize::from(args.concurrency),
    }))
}
