//! `mirrorscope render`: the files the Machine Config Operator will write for a set of
//! `Image`/IDMS/ITMS/ICSP objects, or why it will refuse them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mirrorscope_core::explain::explain;
use mirrorscope_core::openshift::{
    render, InputSet, OcpVersion, ParseOptions, RenderOptions, Rendering, REGISTRIES_CONF,
    SEARCH_DROP_IN,
};
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};

/// Exit code when the API server would reject an input object (nothing is rendered).
pub const EXIT_INVALID_INPUT: i32 = 1;
/// Exit code when MCO would refuse to render.
pub const EXIT_REFUSED: i32 = 3;

/// Arguments of `mirrorscope render`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A YAML/JSON file (one or more documents, or a `kind: List`) or a directory (its
    /// `*.yaml`, `*.yml` and `*.json` files, in name order). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// The cluster's release image (`oc get clusterversion version -o jsonpath='{.status.desired.image}'`),
    /// used to protect the payload from blockedRegistries. Default: an official release by digest.
    #[arg(long, value_name = "REF")]
    pub release_image: Option<String>,
    /// The OpenShift release whose MCO to predict (byte format, validation and texts differ).
    #[arg(long, value_name = "X.Y", default_value_t = OcpVersion::DEFAULT)]
    pub ocp_version: OcpVersion,
    /// Write every file MCO writes at its host path under DIR (DIR/etc/containers/…) instead
    /// of printing registries.conf.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Also explain where each of these images will be pulled from once the rendering lands.
    #[arg(long = "image", value_name = "IMG", num_args = 1..)]
    pub images: Vec<String>,
}

/// The input files named by `paths`: files as given, directories expanded to their
/// `*.yaml`/`*.yml`/`*.json` files in byte order of name (no recursion).
pub fn input_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(p).with_context(|| format!("cannot list {}", p.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", p.display()))?;
            let path = entry.path();
            let is_input = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            );
            if is_input && entry.file_type().map(|t| !t.is_dir()).unwrap_or(false) {
                found.push(path);
            }
        }
        found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        out.extend(found);
    }
    Ok(out)
}

/// Runs the subcommand: 0 rendered, 1 invalid input objects, 3 MCO would refuse.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let opts = ParseOptions {
        version: args.ocp_version,
    };
    let mut set = InputSet::default();
    for file in input_files(&args.files)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        set.add_text(&text, &file.display().to_string(), &opts);
    }
    for s in &set.skipped {
        eprintln!("note: {s}");
    }
    for n in &set.notes {
        eprintln!("{n}");
    }
    if !set.errors.is_empty() {
        for e in &set.errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "mirrorscope: the API server would reject {} (OCP {}); nothing rendered",
            plural(set.errors.len(), "this field", "these fields"),
            args.ocp_version
        );
        return Ok(EXIT_INVALID_INPUT);
    }
    let options = RenderOptions {
        ocp_version: args.ocp_version,
        release_image: args.release_image.clone(),
    };
    let rendering = match render(&set.input, &options) {
        Ok(r) => r,
        Err(refusal) => {
            for n in &refusal.notes {
                eprintln!("{n}");
            }
            eprintln!(
                "mirrorscope: MCO (OCP {}) will refuse these objects: no MachineConfig changes, every node keeps its current registries files, and no API object reports it.\n  reason: {}\n  machine-config-controller log: {}",
                args.ocp_version, refusal.reason, refusal.log
            );
            return Ok(EXIT_REFUSED);
        }
    };
    for n in &rendering.notes {
        eprintln!("{n}");
    }
    match &args.output_dir {
        Some(dir) => {
            write_tree(dir, &rendering)?;
            if !args.images.is_empty() {
                print!("{}", explanations(&rendering, &args.images, false));
            }
        }
        None => {
            match rendering.registries_conf() {
                Some(conf) => print!("{conf}"),
                None => {
                    let others: Vec<&str> =
                        rendering.files.iter().map(|f| f.path.as_str()).collect();
                    if others.is_empty() {
                        eprintln!("mirrorscope: MCO writes no {REGISTRIES_CONF} for these inputs; nodes keep the template file");
                    } else {
                        eprintln!(
                            "mirrorscope: MCO writes no {REGISTRIES_CONF} for these inputs (nodes keep the template file); it writes {} (use --output-dir)",
                            others.join(", ")
                        );
                    }
                }
            }
            if !args.images.is_empty() {
                print!("{}", explanations(&rendering, &args.images, true));
            }
        }
    }
    Ok(0)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{many} ({n})")
    }
}

/// Writes each rendered file at its host path under `dir`.
fn write_tree(dir: &Path, rendering: &Rendering) -> anyhow::Result<()> {
    for f in &rendering.files {
        let path = dir.join(f.path.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &f.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if rendering.files.is_empty() {
        eprintln!("mirrorscope: MCO writes no registries files for these inputs; nothing written under {}", dir.display());
    }
    Ok(())
}

/// The template registries.conf MCO's base MachineConfig writes (kept when MCO renders none).
const TEMPLATE_REGISTRIES_CONF: &str =
    "unqualified-search-registries = ['registry.access.redhat.com', 'docker.io']\n";

/// Explains `images` against the node's configuration once `rendering` lands: the rendered
/// registries.conf (or the template) plus the rendered search drop-in. `commented` prefixes
/// every line with `# ` so stdout stays a valid registries.conf.
fn explanations(rendering: &Rendering, images: &[String], commented: bool) -> String {
    let cimage = rendering.ocp_version.containers_image();
    let main_text = rendering
        .registries_conf()
        .unwrap_or(TEMPLATE_REGISTRIES_CONF);
    let mut text = String::new();
    let main = match parse_config_str(main_text, REGISTRIES_CONF, FileKind::Main, cimage) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(text, "containers/image would reject {REGISTRIES_CONF}: {e}");
            return comment(&text, commented);
        }
    };
    let mut drop_ins = Vec::new();
    if let Some(search) = rendering.file(SEARCH_DROP_IN) {
        match parse_config_str(search, SEARCH_DROP_IN, FileKind::DropIn, cimage) {
            Ok(d) => drop_ins.push(d),
            Err(e) => {
                let _ = writeln!(text, "containers/image would reject {SEARCH_DROP_IN}: {e}");
            }
        }
    }
    let config = EffectiveConfig::from_files(
        Some(main),
        drop_ins,
        (
            REGISTRIES_CONF.to_string(),
            "/etc/containers/registries.conf.d".to_string(),
        ),
    );
    for image in images {
        text.push_str(&super::explain::render_text(&explain(&config, image)));
    }
    comment(&text, commented)
}

fn comment(text: &str, commented: bool) -> String {
    if !commented {
        return text.to_string();
    }
    let mut out = String::from("\n");
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    out
}
