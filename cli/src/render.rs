//! `mirrorscope render`: the files the Machine Config Operator will write for a set of
//! `Image`/IDMS/ITMS/ICSP objects, or why it will refuse them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mirrorscope_core::explain::{explain, Explanation};
use mirrorscope_core::openshift::inputs::read_paths;
use mirrorscope_core::openshift::{
    node_config, render, InputError, InputSet, Note, OcpVersion, ParseOptions, Refusal,
    RenderOptions, Rendering, Skipped, REGISTRIES_CONF,
};

/// Exit code when the API server would reject an input object (nothing is rendered).
pub const EXIT_INVALID_INPUT: i32 = 1;
/// Exit code when MCO would refuse to render.
pub const EXIT_REFUSED: i32 = 3;

/// Arguments of `mirrorscope render`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A YAML/JSON file (one or more documents, or a `kind: List`) or a directory (its
    /// `*.yaml`, `*.yml` and `*.json` files, in name order); `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// The cluster's release image (`oc get clusterversion version -o jsonpath='{.status.desired.image}'`),
    /// used to protect the payload from blockedRegistries. Default: an official release by digest.
    #[arg(long, value_name = "REF")]
    pub release_image: Option<String>,
    /// The OpenShift release whose MCO to predict (byte format, validation and texts differ);
    /// a patch level matters only for 4.13.0-4.13.26, which refused ICSP next to IDMS/ITMS.
    #[arg(long, value_name = "X.Y[.Z]", default_value_t = OcpVersion::DEFAULT)]
    pub ocp_version: OcpVersion,
    /// Write every file MCO writes at its host path under DIR (DIR/etc/containers/…) instead
    /// of printing registries.conf.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Also explain where each of these images will be pulled from once the rendering lands.
    #[arg(long = "image", value_name = "IMG", num_args = 1..)]
    pub images: Vec<String>,
    /// Output format: text (registries.conf on stdout) or json.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Output formats of `render`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// registries.conf on stdout, findings on stderr.
    Text,
    /// One JSON document on stdout: inputs skipped/rejected, the rendering or the refusal, notes.
    Json,
}

/// The `-o json` document.
#[derive(serde::Serialize)]
struct Report<'a> {
    ocp_version: String,
    skipped: &'a [Skipped],
    input_notes: &'a [Note],
    input_errors: &'a [InputError],
    #[serde(skip_serializing_if = "Option::is_none")]
    rendering: Option<&'a Rendering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a Refusal>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    explanations: Vec<Explanation>,
}

/// Runs the subcommand: 0 rendered, 1 invalid input objects, 3 MCO would refuse.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let opts = ParseOptions {
        version: args.ocp_version,
    };
    let set = read_paths(&args.files, &opts, &mut std::io::stdin())?;
    let options = RenderOptions {
        ocp_version: args.ocp_version,
        release_image: args.release_image.clone(),
    };
    let result = set.errors.is_empty().then(|| render(&set.input, &options));
    let code = match &result {
        None => EXIT_INVALID_INPUT,
        Some(Err(_)) => EXIT_REFUSED,
        Some(Ok(_)) => 0,
    };
    if let (Some(dir), Some(Ok(rendering))) = (&args.output_dir, &result) {
        write_tree(dir, rendering)?;
    }
    if args.output == Output::Json {
        let rendering = result.as_ref().and_then(|r| r.as_ref().ok());
        let report = Report {
            ocp_version: args.ocp_version.to_string(),
            skipped: &set.skipped,
            input_notes: &set.notes,
            input_errors: &set.errors,
            rendering,
            refusal: result.as_ref().and_then(|r| r.as_ref().err()),
            explanations: rendering
                .and_then(|r| node_config(r).ok())
                .map(|c| args.images.iter().map(|i| explain(&c, i)).collect())
                .unwrap_or_default(),
        };
        write_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
        return Ok(code);
    }
    for s in &set.skipped {
        eprintln!("note: {s}");
    }
    for n in &set.notes {
        eprintln!("{n}");
    }
    let rendering = match result {
        None => {
            report_input_errors(&set, args.ocp_version);
            return Ok(code);
        }
        Some(Err(refusal)) => {
            for n in &refusal.notes {
                eprintln!("{n}");
            }
            eprintln!(
                "mirrorscope: MCO (OCP {}) will refuse these objects: no MachineConfig changes, every node keeps its current registries files, and no API object reports it.\n  reason: {}\n  machine-config-controller log: {}",
                args.ocp_version, refusal.reason, refusal.log
            );
            return Ok(code);
        }
        Some(Ok(r)) => r,
    };
    for n in &rendering.notes {
        eprintln!("{n}");
    }
    if args.output_dir.is_none() {
        match rendering.registries_conf() {
            Some(conf) => write_stdout(conf)?,
            None => {
                let others: Vec<&str> = rendering.files.iter().map(|f| f.path.as_str()).collect();
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
    }
    if !args.images.is_empty() {
        write_stdout(&explanations(
            &rendering,
            &args.images,
            args.output_dir.is_none(),
        ))?;
    }
    Ok(code)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    Ok(crate::output::write_out(text)?)
}

fn report_input_errors(set: &InputSet, version: OcpVersion) {
    for e in &set.errors {
        eprintln!("error: {e}");
    }
    let unreadable = set.errors.iter().filter(|e| e.object.is_none()).count();
    let rejected = set.errors.len() - unreadable;
    let mut what = Vec::new();
    if unreadable > 0 {
        what.push(plural(
            unreadable,
            "a document could not be read",
            "documents could not be read",
        ));
    }
    if rejected > 0 {
        what.push(format!(
            "the API server (OCP {version}) would reject {}",
            plural(rejected, "this field", "these fields")
        ));
    }
    eprintln!("mirrorscope: {}; nothing rendered", what.join(", and "));
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

/// Explains `images` against what a node runs once `rendering` lands. `commented` prefixes every line with `# ` so
/// stdout stays a valid registries.conf.
fn explanations(rendering: &Rendering, images: &[String], commented: bool) -> String {
    let text = match node_config(rendering) {
        Ok(config) => images
            .iter()
            .map(|image| crate::explain::render_text(&explain(&config, image)))
            .collect(),
        Err(e) => format!("{e}\n"),
    };
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
