//! The rendered MachineConfig a node runs, as the Machine Config Daemon stores it in
//! `/etc/machine-config-daemon/currentconfig`, and whether a file on disk matches it.
//!
//! The MCD writes that file after writing the MachineConfig's files and before reloading CRI-O
//! or rebooting, so it is the node's own answer to "which MachineConfig, and which bytes should
//! registries.conf have".

use crate::hash::sha256_hex;
use serde::Deserialize;

/// Why `currentconfig` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineConfigError {
    #[error("currentconfig is not a MachineConfig JSON document: {0}")]
    Json(String),
    #[error("currentconfig has no metadata.name")]
    NoName,
}

/// Why a data URL could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataUrlError {
    #[error("not a data URL (must start with \"data:\" and contain a comma)")]
    NotDataUrl,
    #[error("invalid percent-encoding at byte {0}")]
    Percent(usize),
    #[error("invalid base64 at byte {0}")]
    Base64(usize),
}

/// One Ignition `storage.files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnitionFile {
    pub path: String,
    /// Decoded contents; `None` when the entry has no `contents.source`.
    pub contents: Option<Result<Vec<u8>, DataUrlError>>,
    /// `contents.compression` (`gzip` is not decoded: such files are reported as undecodable).
    pub compression: Option<String>,
    pub mode: Option<u32>,
}

/// containers' signature policy.
pub const SIGNATURE_POLICY: &str = "/etc/containers/policy.json";
/// Directories whose files the MCO writes for ClusterImagePolicy / ImagePolicy.
pub const SIGNATURE_DIRS: [&str; 2] = ["/etc/containers/registries.d/", "/etc/crio/policies/"];

/// What the node's current MachineConfig says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentConfig {
    pub name: String,
    pub files: Vec<IgnitionFile>,
}

#[derive(Deserialize)]
struct RawMc {
    metadata: Option<RawMeta>,
    spec: Option<RawSpec>,
}
#[derive(Deserialize)]
struct RawMeta {
    name: Option<String>,
}
#[derive(Deserialize)]
struct RawSpec {
    config: Option<RawIgnition>,
}
#[derive(Deserialize)]
struct RawIgnition {
    storage: Option<RawStorage>,
}
#[derive(Deserialize)]
struct RawStorage {
    files: Option<Vec<RawFile>>,
}
#[derive(Deserialize)]
struct RawFile {
    path: String,
    contents: Option<RawContents>,
    mode: Option<u32>,
}
#[derive(Deserialize)]
struct RawContents {
    source: Option<String>,
    compression: Option<String>,
}

/// Parses the MCD's `currentconfig` (the rendered MachineConfig as JSON).
pub fn parse_current_config(json: &[u8]) -> Result<CurrentConfig, MachineConfigError> {
    let raw: RawMc =
        serde_json::from_slice(json).map_err(|e| MachineConfigError::Json(e.to_string()))?;
    let name = raw
        .metadata
        .and_then(|m| m.name)
        .filter(|n| !n.is_empty())
        .ok_or(MachineConfigError::NoName)?;
    let files = raw
        .spec
        .and_then(|s| s.config)
        .and_then(|c| c.storage)
        .and_then(|s| s.files)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let compression = f
                .contents
                .as_ref()
                .and_then(|c| c.compression.clone())
                .filter(|c| !c.is_empty());
            IgnitionFile {
                path: f.path,
                contents: f
                    .contents
                    .and_then(|c| c.source)
                    .map(|s| decode_data_url(&s)),
                compression,
                mode: f.mode,
            }
        })
        .collect();
    Ok(CurrentConfig { name, files })
}

impl CurrentConfig {
    /// The last entry for `path` (Ignition applies them in order, so the last one wins).
    pub fn file(&self, path: &str) -> Option<&IgnitionFile> {
        self.files.iter().rev().find(|f| f.path == path)
    }

    /// The signature policy files this MachineConfig carries, in its order, each once:
    /// `/etc/containers/policy.json`, files under `/etc/containers/registries.d/` (the MCO's
    /// `sigstore-registries.yaml`) and under `/etc/crio/policies/` (one per ImagePolicy
    /// namespace). Others in those directories (the OS's `default.yaml`) are not the MCO's.
    pub fn signature_policy_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = Vec::new();
        for f in &self.files {
            let p = f.path.as_str();
            let ours = p == SIGNATURE_POLICY
                || SIGNATURE_DIRS.iter().any(|d| {
                    p.strip_prefix(d)
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
                });
            if ours && !paths.contains(&p) {
                paths.push(p);
            }
        }
        paths
    }

    /// Compares a file on disk (`None` when missing) with what this MachineConfig carries.
    pub fn compare(&self, path: &str, on_disk: Option<&[u8]>) -> FileMatch {
        let Some(f) = self.file(path) else {
            return FileMatch::NotInMachineConfig;
        };
        let expected = match (&f.contents, &f.compression) {
            (_, Some(c)) => {
                return FileMatch::Undecodable(format!("compression {c:?} is not supported"))
            }
            (None, None) => Vec::new(),
            (Some(Err(e)), None) => return FileMatch::Undecodable(e.to_string()),
            (Some(Ok(b)), None) => b.clone(),
        };
        match on_disk {
            None => FileMatch::Missing {
                expected_sha256: sha256_hex(&expected),
            },
            Some(actual) if actual == expected.as_slice() => FileMatch::Matches,
            Some(actual) => FileMatch::Differs {
                expected_sha256: sha256_hex(&expected),
                actual_sha256: sha256_hex(actual),
            },
        }
    }
}

/// Result of comparing a node file with its MachineConfig.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileMatch {
    Matches,
    /// Drift: the MCD will mark the node Degraded ("content mismatch for file").
    Differs {
        expected_sha256: String,
        actual_sha256: String,
    },
    /// The MachineConfig carries the file but the node has none.
    Missing {
        expected_sha256: String,
    },
    /// The MachineConfig does not manage this path.
    NotInMachineConfig,
    Undecodable(String),
}

/// RFC 2397 `data:[<mediatype>][;base64],<data>`; the data part may be percent-encoded in both forms.
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, DataUrlError> {
    let rest = url.strip_prefix("data:").ok_or(DataUrlError::NotDataUrl)?;
    let comma = rest.find(',').ok_or(DataUrlError::NotDataUrl)?;
    let (meta, data) = (&rest[..comma], &rest[comma + 1..]);
    let bytes = percent_decode(data)?;
    if meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        base64_decode(&bytes)
    } else {
        Ok(bytes)
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, DataUrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(DataUrlError::Percent(i))?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(DataUrlError::Percent(i))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn base64_decode(input: &[u8]) -> Result<Vec<u8>, DataUrlError> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = false;
    for (i, &c) in input.iter().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding = true;
            continue;
        }
        if padding {
            return Err(DataUrlError::Base64(i));
        }
        let v = value(c).ok_or(DataUrlError::Base64(i))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(
            decode_data_url("data:text/plain;charset=utf-8;base64,aGVsbG8KCg==").unwrap(),
            b"hello\n\n"
        );
        assert_eq!(decode_data_url("data:,a%20b%0A").unwrap(), b"a b\n");
        assert_eq!(decode_data_url("data:;base64,aGk").unwrap(), b"hi");
        assert_eq!(
            decode_data_url("data:;base64,a%2Bb%2F").unwrap(),
            base64_decode(b"a+b/").unwrap()
        );
        assert_eq!(decode_data_url("http://x"), Err(DataUrlError::NotDataUrl));
        assert_eq!(decode_data_url("data:,%zz"), Err(DataUrlError::Percent(0)));
        assert_eq!(
            decode_data_url("data:;base64,a*b"),
            Err(DataUrlError::Base64(1))
        );
        assert_eq!(
            decode_data_url("data:;base64,aG=k"),
            Err(DataUrlError::Base64(3))
        );
    }

    fn mc(source: &str) -> Vec<u8> {
        format!(
            r#"{{"kind":"MachineConfig","metadata":{{"name":"rendered-worker-abc"}},"spec":{{"config":{{"ignition":{{"version":"3.5.0"}},"storage":{{"files":[
            {{"path":"/etc/containers/registries.conf","overwrite":true,"mode":420,"contents":{{"source":"data:,old"}}}},
            {{"path":"/etc/containers/registries.conf","overwrite":true,"mode":420,"contents":{{"source":"{source}","compression":""}}}},
            {{"path":"/etc/other","contents":{{"source":"data:,x","compression":"gzip"}}}}]}}}}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn compares_the_last_entry_for_a_path() {
        let c = parse_current_config(&mc("data:text/plain;charset=utf-8;base64,bmV3Cg==")).unwrap();
        assert_eq!(c.name, "rendered-worker-abc");
        let p = "/etc/containers/registries.conf";
        assert_eq!(c.compare(p, Some(b"new\n")), FileMatch::Matches);
        assert!(matches!(
            c.compare(p, Some(b"old")),
            FileMatch::Differs { .. }
        ));
        assert!(matches!(c.compare(p, None), FileMatch::Missing { .. }));
        assert_eq!(
            c.compare("/etc/containers/policy.json", Some(b"{}")),
            FileMatch::NotInMachineConfig
        );
        assert!(matches!(
            c.compare("/etc/other", Some(b"x")),
            FileMatch::Undecodable(_)
        ));
        let bad = parse_current_config(&mc("data:;base64,***")).unwrap();
        assert!(matches!(
            bad.compare(p, Some(b"x")),
            FileMatch::Undecodable(_)
        ));
    }

    #[test]
    fn rejects_non_machineconfigs() {
        assert!(matches!(
            parse_current_config(b"not json"),
            Err(MachineConfigError::Json(_))
        ));
        assert_eq!(
            parse_current_config(b"{\"metadata\":{}}"),
            Err(MachineConfigError::NoName)
        );
    }
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn signature_policy_paths_are_the_mcos_files_in_their_directories() {
        let json = br#"{"metadata":{"name":"rendered-worker-sig"},"spec":{"config":{"storage":{"files":[
            {"path":"/etc/containers/registries.conf","contents":{"source":"data:,a"}},
            {"path":"/etc/containers/policy.json","contents":{"source":"data:,p1"}},
            {"path":"/etc/containers/registries.d/sigstore-registries.yaml","contents":{"source":"data:,s"}},
            {"path":"/etc/crio/policies/shop.json","contents":{"source":"data:,n"}},
            {"path":"/etc/crio/policies/sub/x.json","contents":{"source":"data:,deeper"}},
            {"path":"/etc/containers/registries.d/","contents":{"source":"data:,"}},
            {"path":"/etc/containers/policy.json","contents":{"source":"data:,p2"}}]}}}}"#;
        let c = parse_current_config(json).unwrap();
        assert_eq!(
            c.signature_policy_paths(),
            [
                "/etc/containers/policy.json",
                "/etc/containers/registries.d/sigstore-registries.yaml",
                "/etc/crio/policies/shop.json",
            ]
        );
        // The last entry for a path wins, as Ignition applies them.
        assert_eq!(
            c.compare("/etc/containers/policy.json", Some(b"p2")),
            FileMatch::Matches
        );
    }
}
