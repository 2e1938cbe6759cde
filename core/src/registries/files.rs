//! Which files are read and in which order (`newConfigWrapper`, `dropInConfigs`,
//! `tryUpdatingCache`). The only I/O in the engine: reading the files the caller names.

use std::io;
use std::path::{Path, PathBuf};

use super::effective::EffectiveConfig;
use super::model::ConfigFile;
use super::parse::{parse_config_bytes, FileError, FileKind};
use crate::cimage_version::CImageVersion;
use crate::go::quote;

/// The files making up one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub main: PathBuf,
    /// An explicitly named main file must exist; the default one may be missing.
    pub main_required: bool,
    /// Drop-in directories in reading order (system before user).
    pub dirs: Vec<PathBuf>,
}

/// Why a configuration could not be loaded; `Display` matches containers/image's wrapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("loading registries configuration {}: {error}", quote(path))]
    Main { path: String, error: FileError },
    #[error("loading drop-in registries configuration {}: {error}", quote(path))]
    DropIn { path: String, error: FileError },
    #[error("reading registries.conf.d: {0}")]
    DropInDir(String),
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Main { path, .. } | Self::DropIn { path, .. } => Some(path),
            Self::DropInDir(_) => None,
        }
    }
}

impl ConfigLocation {
    /// What CRI-O reads on a node (running as root with `HOME=/root`).
    pub fn system() -> Self {
        Self::under_root(Path::new("/"))
    }

    /// What CRI-O reads, with the main file and/or the drop-in directories replaced as command-line
    /// flags name them (an explicit main file must exist, like skopeo's `--registries-conf`).
    pub fn system_with_overrides(main: Option<&Path>, dirs: &[PathBuf]) -> Self {
        let mut loc = Self::system();
        if let Some(main) = main {
            loc.main = main.to_path_buf();
            loc.main_required = true;
        }
        if !dirs.is_empty() {
            loc.dirs = dirs.to_vec();
        }
        loc
    }

    /// The node's files seen below `root` (e.g. `/host` in the DaemonSet).
    pub fn under_root(root: &Path) -> Self {
        Self {
            main: root.join("etc/containers/registries.conf"),
            main_required: false,
            dirs: vec![
                root.join("etc/containers/registries.conf.d"),
                root.join("root/.config/containers/registries.conf.d"),
            ],
        }
    }

    /// `ConfigPath` and `ConfigDirPath` as the blocked-source message names them: the last
    /// drop-in directory stands for containers/image's user directory.
    pub fn blocked_message_paths(&self) -> (String, String) {
        let dir = self
            .dirs
            .last()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        (self.main.display().to_string(), dir)
    }
}

/// Go's text for an `os.Open`/`os.ReadFile` failure.
fn go_io_error(op: &str, path: &Path, e: &io::Error) -> String {
    let reason = match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => {
            let s = e.to_string();
            // Drop Rust's " (os error N)" suffix to read like Go's syscall errors.
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut chars = s.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
    };
    format!("{op} {}: {reason}", path.display())
}

/// Reads and parses one file. `Ok(None)` when the file does not exist.
pub fn read_config_file(
    path: &Path,
    kind: FileKind,
    version: CImageVersion,
) -> Result<Option<ConfigFile>, FileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            let op = if e.kind() == io::ErrorKind::IsADirectory {
                "read"
            } else {
                "open"
            };
            return Err(FileError::Io(go_io_error(op, path, &e)));
        }
    };
    parse_config_bytes(&bytes, &path.display().to_string(), kind, version).map(Some)
}

/// `*.conf` entries of one drop-in directory in byte order of their names; sub-directories are
/// skipped and a missing directory is empty.
pub fn list_drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    // filepath.WalkDir does not follow a root that is a symlink or a regular file: it visits the
    // root itself as a single entry, taken only if its name ends in ".conf".
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::DropInDir(go_io_error("lstat", dir, &e))),
        Ok(m) if !m.is_dir() => {
            let is_conf = dir.as_os_str().as_encoded_bytes().ends_with(b".conf");
            return Ok(if is_conf {
                vec![dir.to_path_buf()]
            } else {
                Vec::new()
            });
        }
        Ok(_) => {}
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::DropInDir(go_io_error("open", dir, &e))),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| ConfigError::DropInDir(go_io_error("readdirent", dir, &e)))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let name = entry.file_name();
        if !is_dir && name.as_encoded_bytes().ends_with(b".conf") {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Loads the whole configuration like `tryUpdatingCache`.
pub fn load(
    location: &ConfigLocation,
    version: CImageVersion,
) -> Result<EffectiveConfig, ConfigError> {
    let main_path = location.main.display().to_string();
    let main = match read_config_file(&location.main, FileKind::Main, version) {
        Ok(Some(f)) => Some(f),
        Ok(None) if !location.main_required => None,
        Ok(None) => {
            let e = io::Error::from(io::ErrorKind::NotFound);
            return Err(ConfigError::Main {
                error: FileError::Io(go_io_error("open", &location.main, &e)),
                path: main_path,
            });
        }
        Err(error) => {
            return Err(ConfigError::Main {
                path: main_path,
                error,
            })
        }
    };
    let mut drop_ins = Vec::new();
    for dir in &location.dirs {
        for path in list_drop_ins(dir)? {
            match read_config_file(&path, FileKind::DropIn, version) {
                Ok(Some(f)) => drop_ins.push(f),
                // A drop-in removed between listing and reading is skipped (since 5.34).
                Ok(None) if version.at_least(CImageVersion::V5_34) => {}
                Ok(None) => {
                    let e = io::Error::from(io::ErrorKind::NotFound);
                    return Err(ConfigError::DropIn {
                        error: FileError::Io(go_io_error("open", &path, &e)),
                        path: path.display().to_string(),
                    });
                }
                Err(error) => {
                    return Err(ConfigError::DropIn {
                        path: path.display().to_string(),
                        error,
                    })
                }
            }
        }
    }
    Ok(EffectiveConfig::from_files(
        main,
        drop_ins,
        location.blocked_message_paths(),
    ))
}
