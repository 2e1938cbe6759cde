//! What a node runs once a rendering lands: the one place that turns MCO's files (from a
//! [`Rendering`] or from a MachineConfig) into the effective registries configuration.

use crate::cimage_version::CImageVersion;
use crate::registries::{parse_config_str, ConfigFile, EffectiveConfig, FileError, FileKind};

use super::{Rendering, REGISTRIES_CONF, SEARCH_DROP_IN};

/// The registries.conf the `01-<role>-container-runtime` template leaves on a node when MCO
/// writes none (empty Image spec and no mirror sets).
pub const TEMPLATE_REGISTRIES_CONF: &str =
    "unqualified-search-registries = ['registry.access.redhat.com', 'docker.io']\n";

/// The drop-in directory CRI-O reads next to registries.conf.
pub const DROP_IN_DIR: &str = "/etc/containers/registries.conf.d";

/// A file MCO writes that containers/image would not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("containers/image would reject {path}: {error}")]
pub struct LoadError {
    pub path: String,
    pub error: FileError,
}

/// The effective configuration a node gets from this rendering: the rendered registries.conf
/// (or the template when MCO writes none) plus the rendered search drop-in, loaded with the
/// containers/image release of the rendering's OCP version.
pub fn node_config(r: &Rendering) -> Result<EffectiveConfig, LoadError> {
    node_config_from_files(
        r.ocp_version.containers_image(),
        &|path| r.file(path).map(str::to_string),
        &[SEARCH_DROP_IN],
    )
}

/// The effective configuration of a node whose files are given by `file(path)` (a rendering's,
/// or a MachineConfig's Ignition files): registries.conf (the template when absent) and each
/// `registries.conf.d/*.conf` named in `drop_ins`, in name order as containers/image reads them.
pub fn node_config_from_files(
    cimage: CImageVersion,
    file: &dyn Fn(&str) -> Option<String>,
    drop_ins: &[&str],
) -> Result<EffectiveConfig, LoadError> {
    let load = |text: &str, path: &str, kind: FileKind| -> Result<ConfigFile, LoadError> {
        parse_config_str(text, path, kind, cimage).map_err(|error| LoadError {
            path: path.to_string(),
            error,
        })
    };
    let main_text = file(REGISTRIES_CONF).unwrap_or_else(|| TEMPLATE_REGISTRIES_CONF.to_string());
    let main = load(&main_text, REGISTRIES_CONF, FileKind::Main)?;
    let mut paths: Vec<&str> = drop_ins
        .iter()
        .copied()
        .filter(|p| {
            p.strip_prefix(DROP_IN_DIR)
                .is_some_and(|rest| rest.starts_with('/') && p.ends_with(".conf"))
        })
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let mut files = Vec::new();
    for p in paths {
        if let Some(text) = file(p) {
            files.push(load(&text, p, FileKind::DropIn)?);
        }
    }
    Ok(EffectiveConfig::from_files(
        Some(main),
        files,
        (REGISTRIES_CONF.to_string(), DROP_IN_DIR.to_string()),
    ))
}
