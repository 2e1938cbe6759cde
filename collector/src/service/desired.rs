//! The desired state: the MCO rendering of the IDMS/ITMS/ICSP/Image objects, read from files
//! (`--desired`) or from the API server, loaded in the engine.

use std::path::PathBuf;
use std::sync::Arc;

use mirrorscope_core::openshift::{
    render, InputSet, OcpVersion, ParseOptions, RenderOptions, REGISTRIES_CONF, SEARCH_DROP_IN,
};
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};
use mirrorscope_core::rollout::{Target, TEMPLATE_REGISTRIES_CONF};

use super::state::DesiredState;

/// Why `--desired` could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Input(String),
}

/// Reads the object files (a directory contributes its `*.yaml`, `*.yml` and `*.json`, by name).
pub fn read_inputs(paths: &[PathBuf], version: OcpVersion) -> Result<InputSet, DesiredError> {
    let opts = ParseOptions { version };
    let mut set = InputSet::default();
    for path in paths {
        let mut files = Vec::new();
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|error| DesiredError::Read {
                path: path.display().to_string(),
                error,
            })?;
            for e in rd.flatten() {
                let p = e.path();
                let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml" | "json") {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(path.clone());
        }
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|error| DesiredError::Read {
                path: f.display().to_string(),
                error,
            })?;
            set.add_text(&text, &f.display().to_string(), &opts);
        }
    }
    if let Some(e) = set.errors.first() {
        // The API server would reject these objects, so they can never be the cluster's state.
        return Err(DesiredError::Input(format!(
            "the API server would reject the desired objects: {e}"
        )));
    }
    Ok(set)
}

/// Renders the objects and builds the desired state.
pub fn from_inputs(set: &InputSet, options: &RenderOptions, origin: &str) -> DesiredState {
    let result = render(&set.input, options);
    let target = Target::from_render(&result, origin);
    let mut notes: Vec<String> = set.notes.iter().map(ToString::to_string).collect();
    let config = match &result {
        Ok(r) => {
            notes.extend(r.notes.iter().map(ToString::to_string));
            effective(
                r.registries_conf().unwrap_or(TEMPLATE_REGISTRIES_CONF),
                r.file(SEARCH_DROP_IN),
            )
            .map(Arc::new)
        }
        Err(refusal) => {
            notes.extend(refusal.notes.iter().map(ToString::to_string));
            None
        }
    };
    DesiredState {
        target,
        config,
        notes,
    }
}

fn effective(main: &str, search: Option<&str>) -> Option<EffectiveConfig> {
    let v = Default::default();
    let main = parse_config_str(main, REGISTRIES_CONF, FileKind::Main, v).ok()?;
    let drop_ins = match search {
        Some(t) => vec![parse_config_str(t, SEARCH_DROP_IN, FileKind::DropIn, v).ok()?],
        None => Vec::new(),
    };
    Some(EffectiveConfig::from_files(
        Some(main),
        drop_ins,
        (REGISTRIES_CONF.into(), String::new()),
    ))
}

/// Reads, renders and loads `--desired` paths.
pub fn from_paths(
    paths: &[PathBuf],
    options: &RenderOptions,
) -> Result<DesiredState, DesiredError> {
    let set = read_inputs(paths, options.ocp_version)?;
    let origin = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(from_inputs(&set, options, &origin))
}

/// The canonical hash a set of objects renders to (`mirrorscope wait --desired`); a refusal is
/// an error naming MCO's reason.
pub fn desired_sha256(paths: &[PathBuf], options: &RenderOptions) -> Result<String, DesiredError> {
    let d = from_paths(paths, options)?;
    match d.target {
        Target::Desired(d) => Ok(d.sha256),
        Target::Refused { reason, .. } => Err(DesiredError::Input(format!(
            "MCO will not render this; nodes keep the old config: {reason}"
        ))),
        Target::Agreement => Err(DesiredError::Input("no desired state".into())),
    }
}
