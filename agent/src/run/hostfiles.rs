//! Reads the node's registries files (main, drop-ins, policy.json) below the host root and
//! merges them with the core engine, the way CRI-O would load them.
//!
//! Paths in the report and in every message are the node's paths (host root removed), so a
//! message reads exactly as containers/image would print it on the node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::hash::sha256_hex;
use mirrorscope_core::registries::{
    list_drop_ins, parse_config_bytes, ConfigError, ConfigFile, EffectiveConfig, FileError,
    FileKind,
};
use mirrorscope_core::report::{FileRole, FileState};
use mirrorscope_core::time::format_usec;

use crate::readfile::{read_regular, Found, ReadError};

/// Files above this size are not read: a registries.conf is a few KiB, and a runaway file must
/// not blow the agent's memory budget.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Contents are embedded in the report only below this size.
const MAX_CONTENTS_BYTES: usize = 256 * 1024;

pub const MAIN: &str = "/etc/containers/registries.conf";
pub const DROP_IN_DIRS: [&str; 2] = [
    "/etc/containers/registries.conf.d",
    "/root/.config/containers/registries.conf.d",
];
pub const POLICY: &str = "/etc/containers/policy.json";

/// The host root the agent sees the node's files under (`/host` in the DaemonSet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot(root.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Where node path `node` (absolute) is seen by the agent.
    pub fn host(&self, node: &str) -> PathBuf {
        self.0.join(node.trim_start_matches('/'))
    }

    /// The node path of `host`, a path below the root.
    pub fn node(&self, host: &Path) -> String {
        match host.strip_prefix(&self.0) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => host.display().to_string(),
        }
    }
}

/// One read of the registries files.
#[derive(Debug, Clone)]
pub struct RegistriesRead {
    pub files: Vec<FileState>,
    /// The merged configuration, or containers/image's message for the first bad file.
    pub effective: Result<Arc<EffectiveConfig>, String>,
    /// Files that could not be read (special files, oversized files, I/O errors), for counting.
    pub read_failures: Vec<ReadError>,
}

/// A file's bytes, or why they could not be had.
enum Bytes {
    Missing,
    Read(Vec<u8>),
    Failed(ReadError),
}

/// Reads at most [`MAX_FILE_BYTES`] of a regular file; Go-like `open PATH: reason` errors
/// with the node path.
fn read_capped(host: &Path, node: &str) -> (Bytes, Option<std::fs::Metadata>) {
    let (read, meta) = read_regular(host, node, MAX_FILE_BYTES);
    let bytes = match read {
        Ok(Found::Missing) => Bytes::Missing,
        Ok(Found::Bytes(b)) => Bytes::Read(b),
        Err(e) => Bytes::Failed(e),
    };
    (bytes, meta)
}

fn mtime(meta: Option<&std::fs::Metadata>) -> Option<String> {
    let t = meta?.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format_usec(u64::try_from(t.as_micros()).ok()?))
}

fn parse(
    bytes: &[u8],
    node: &str,
    kind: FileKind,
    version: CImageVersion,
) -> Result<ConfigFile, FileError> {
    parse_config_bytes(bytes, node, kind, version)
}

/// A file read but not parsed yet.
struct Loaded {
    st: FileState,
    kind: Option<FileKind>,
    bytes: Option<Result<Vec<u8>, FileError>>,
}

/// Reads one file into its state; registries files keep their bytes for parsing.
fn load_file(host: &Path, node: &str, role: FileRole, failures: &mut Vec<ReadError>) -> Loaded {
    let (bytes, meta) = read_capped(host, node);
    let mut st = FileState {
        path: node.to_owned(),
        role,
        exists: !matches!(bytes, Bytes::Missing),
        digest: None,
        size: meta.as_ref().map(|m| m.len()),
        mtime: mtime(meta.as_ref()),
        error: None,
        contents: None,
    };
    let kind = match role {
        FileRole::Main => Some(FileKind::Main),
        FileRole::DropIn => Some(FileKind::DropIn),
        FileRole::Policy => None,
    };
    let bytes = match bytes {
        Bytes::Missing => {
            st.size = None;
            st.mtime = None;
            None
        }
        Bytes::Failed(e) => {
            st.error = Some(e.to_string());
            failures.push(e.clone());
            kind.map(|_| Err(FileError::Io(e.to_string())))
        }
        Bytes::Read(b) => {
            st.digest = Some(sha256_hex(&b));
            st.size = Some(b.len() as u64);
            if kind.is_some() && b.len() <= MAX_CONTENTS_BYTES {
                st.contents = std::str::from_utf8(&b).ok().map(str::to_owned);
            }
            kind.map(|_| Ok(b))
        }
    };
    Loaded { st, kind, bytes }
}

/// What identifies a read: every file's path, hash and read error, and listing errors. Equal
/// keys parse to equal results.
type ReadKey = Vec<(String, Option<String>, Option<String>)>;

/// The last read, reused while the files stay the same: the periodic re-read of a
/// 100,000-entry registries.conf would otherwise parse it (hundreds of MB at peak) every time.
#[derive(Default)]
pub struct ReadCache {
    last: Option<(ReadKey, RegistriesRead)>,
}

/// Reads and merges everything; never fails as a whole: problems land in the result.
pub fn read_registries(
    root: &HostRoot,
    version: CImageVersion,
    cache: &mut ReadCache,
) -> RegistriesRead {
    let mut failures = Vec::new();
    let mut loaded = vec![Item::File(
        MAIN.to_owned(),
        Box::new(load_file(
            &root.host(MAIN),
            MAIN,
            FileRole::Main,
            &mut failures,
        )),
    )];
    for dir in DROP_IN_DIRS {
        let listed = match list_drop_ins(&root.host(dir)) {
            Ok(l) => l,
            Err(e) => {
                loaded.push(Item::ListError(
                    e.to_string()
                        .replace(&root.path().display().to_string(), ""),
                ));
                continue;
            }
        };
        for host in listed {
            let node = root.node(&host);
            let l = load_file(&host, &node, FileRole::DropIn, &mut failures);
            // A drop-in removed between listing and reading is skipped, as CRI-O does.
            if l.st.exists {
                loaded.push(Item::File(node, Box::new(l)));
            }
        }
    }
    let policy = load_file(&root.host(POLICY), POLICY, FileRole::Policy, &mut failures);
    let key: ReadKey = loaded
        .iter()
        .map(|i| match i {
            Item::File(_, l) => (l.st.path.clone(), l.st.digest.clone(), l.st.error.clone()),
            Item::ListError(e) => (String::new(), None, Some(e.clone())),
        })
        .collect();
    if let Some((last_key, last)) = &cache.last {
        if *last_key == key {
            let mut files: Vec<FileState> = loaded
                .into_iter()
                .filter_map(|i| match i {
                    Item::File(_, l) => Some(l.st),
                    Item::ListError(_) => None,
                })
                .collect();
            for (f, was) in files.iter_mut().zip(&last.files) {
                f.error.clone_from(&was.error);
            }
            files.push(policy.st);
            return RegistriesRead {
                files,
                effective: last.effective.clone(),
                read_failures: failures,
            };
        }
    }
    let read = parse_all(loaded, policy.st, version, failures);
    cache.last = Some((key, read.clone()));
    read
}

/// The main file, then per drop-in directory its listing error or its files, in reading order.
enum Item {
    File(String, Box<Loaded>),
    ListError(String),
}

fn parse_all(
    loaded: Vec<Item>,
    policy: FileState,
    version: CImageVersion,
    failures: Vec<ReadError>,
) -> RegistriesRead {
    let mut files = Vec::with_capacity(loaded.len() + 1);
    let mut first_error: Option<String> = None;
    let mut main = None;
    let mut drop_ins = Vec::new();
    for item in loaded {
        let (node, mut l) = match item {
            Item::File(node, l) => (node, *l),
            Item::ListError(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let parsed = match (l.kind, l.bytes.take()) {
            (Some(kind), Some(Ok(b))) => Some(parse(&b, &node, kind, version)),
            (_, Some(Err(e))) => Some(Err(e)),
            _ => None,
        };
        if let Some(Err(e)) = &parsed {
            if l.st.error.is_none() {
                l.st.error = Some(e.to_string());
            }
        }
        let is_main = l.st.role == FileRole::Main;
        files.push(l.st);
        match parsed {
            Some(Ok(f)) if is_main => main = Some(f),
            Some(Ok(f)) => drop_ins.push(f),
            Some(Err(error)) if is_main => {
                first_error = Some(
                    ConfigError::Main {
                        path: MAIN.to_owned(),
                        error,
                    }
                    .to_string(),
                );
            }
            Some(Err(error)) => {
                first_error.get_or_insert(ConfigError::DropIn { path: node, error }.to_string());
            }
            None => {}
        }
    }
    files.push(policy);
    let effective = match first_error {
        Some(e) => Err(e),
        None => Ok(Arc::new(EffectiveConfig::from_files(
            main,
            drop_ins,
            (MAIN.to_owned(), DROP_IN_DIRS[1].to_owned()),
        ))),
    };
    RegistriesRead {
        files,
        effective,
        read_failures: failures,
    }
}

/// The bytes of node file `node` (`None` when missing), capped like the registries files: for
/// the MachineConfig comparison.
pub fn node_bytes(root: &HostRoot, node: &str) -> Result<Option<Vec<u8>>, ReadError> {
    match read_capped(&root.host(node), node).0 {
        Bytes::Missing => Ok(None),
        Bytes::Read(b) => Ok(Some(b)),
        Bytes::Failed(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> HostRoot {
        let d = std::env::temp_dir().join(format!("ms-hostfiles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc/containers/registries.conf.d")).unwrap();
        HostRoot::new(d)
    }

    #[test]
    fn paths_lose_the_host_root_and_errors_name_the_node_file() {
        let r = root("errors");
        std::fs::write(
            r.host(MAIN),
            "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n",
        )
        .unwrap();
        std::fs::write(
            r.host("/etc/containers/registries.conf.d/50-bad.conf"),
            "[[registry]\n",
        )
        .unwrap();
        let read = read_registries(&r, CImageVersion::default(), &mut ReadCache::default());
        let paths: Vec<_> = read.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                MAIN,
                "/etc/containers/registries.conf.d/50-bad.conf",
                POLICY
            ]
        );
        let err = read.effective.unwrap_err();
        assert!(
            err.starts_with(
                "loading drop-in registries configuration \"/etc/containers/registries.conf.d/50-bad.conf\": toml: line "
            ),
            "{err}"
        );
        assert!(read.files[1].error.is_some());
        assert!(!read.files[2].exists);
        let _ = std::fs::remove_dir_all(r.path());
    }

    /// The agent reads files itself (capped, node paths in messages); its messages must still be
    /// the engine's (containers/image's) once the host root is taken out of the engine's.
    #[test]
    fn errors_read_like_the_engine_loading_the_same_files() {
        use mirrorscope_core::registries::{load, ConfigLocation};
        let cases: [(&str, &[u8]); 4] = [
            (MAIN, b"[[registry]\nprefix = 1\n"),
            (MAIN, b"unqualified-search-registries = [\"\xff\"]\n"),
            (
                "/etc/containers/registries.conf.d/10-v1.conf",
                b"[registries.search]\nregistries = [\"quay.io\"]\n",
            ),
            (
                "/etc/containers/registries.conf.d/20-bad.conf",
                b"[[registry]]\nlocation = \"quay.io/a\"\nprefix = \"*.quay.io/a\"\n",
            ),
        ];
        for (i, (path, text)) in cases.iter().enumerate() {
            let r = root(&format!("same-{i}"));
            std::fs::write(r.host(path), text).unwrap();
            let ours = read_registries(&r, CImageVersion::default(), &mut ReadCache::default())
                .effective
                .unwrap_err();
            let engine = load(
                &ConfigLocation::under_root(r.path()),
                CImageVersion::default(),
            )
            .unwrap_err()
            .to_string()
            .replace(&r.path().display().to_string(), "");
            assert_eq!(ours, engine, "case {i}");
            let _ = std::fs::remove_dir_all(r.path());
        }
        // The main file is a directory.
        let r = root("same-dir");
        std::fs::create_dir_all(r.host(MAIN)).unwrap();
        let ours = read_registries(&r, CImageVersion::default(), &mut ReadCache::default())
            .effective
            .unwrap_err();
        let engine = load(
            &ConfigLocation::under_root(r.path()),
            CImageVersion::default(),
        )
        .unwrap_err()
        .to_string()
        .replace(&r.path().display().to_string(), "");
        assert_eq!(ours, engine);
        let _ = std::fs::remove_dir_all(r.path());
    }

    /// The periodic re-read of unchanged files must not parse them again (a 100,000-entry
    /// file peaks at hundreds of MB while parsing).
    #[test]
    fn unchanged_files_reuse_the_last_parse_and_changes_are_parsed() {
        let r = root("cache");
        std::fs::write(r.host(MAIN), "[[registry]]\nlocation = \"quay.io\"\n").unwrap();
        let mut cache = ReadCache::default();
        let v = CImageVersion::default();
        let first = read_registries(&r, v, &mut cache).effective.unwrap();
        let again = read_registries(&r, v, &mut cache).effective.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        std::fs::write(
            r.host("/etc/containers/registries.conf.d/10-bad.conf"),
            "[[registry]\n",
        )
        .unwrap();
        let bad = read_registries(&r, v, &mut cache);
        assert!(bad.effective.is_err());
        let bad_again = read_registries(&r, v, &mut cache);
        assert_eq!(bad.effective, bad_again.effective);
        assert_eq!(bad.files[1].error, bad_again.files[1].error);
        assert!(bad_again.files[1].error.is_some());
        std::fs::remove_file(r.host("/etc/containers/registries.conf.d/10-bad.conf")).unwrap();
        std::fs::write(r.host(MAIN), "[[registry]]\nlocation = \"quay.io/b\"\n").unwrap();
        let changed = read_registries(&r, v, &mut cache).effective.unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_ne!(first.canonical_sha256(), changed.canonical_sha256());
        let _ = std::fs::remove_dir_all(r.path());
    }

    #[test]
    fn huge_files_are_not_read() {
        let r = root("huge");
        let f = std::fs::File::create(r.host(MAIN)).unwrap();
        f.set_len(MAX_FILE_BYTES + 10).unwrap();
        let read = read_registries(&r, CImageVersion::default(), &mut ReadCache::default());
        let err = read.effective.unwrap_err();
        assert!(
            err.contains("\"/etc/containers/registries.conf\"") && err.contains("larger than"),
            "{err}"
        );
        assert_eq!(read.files[0].size, Some(MAX_FILE_BYTES + 10));
        assert_eq!(read.files[0].digest, None);
        let _ = std::fs::remove_dir_all(r.path());
    }
}
