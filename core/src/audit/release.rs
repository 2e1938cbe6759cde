//! An OpenShift release payload's own list of its images: `release-manifests/image-references`,
//! an ImageStream whose tags name every payload image by digest, read from an (uncompressed) layer
//! tar. Pure: the prober fetches and decompresses the layers.

use serde::Deserialize;

/// Where the payload keeps the list.
pub const IMAGE_REFERENCES: &str = "release-manifests/image-references";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("layer tar: {0}")]
    Tar(String),
    #[error("{IMAGE_REFERENCES}: {0}")]
    References(String),
}

/// The contents of the regular file at `path` in a tar archive (`./path` matches too), if any.
/// A later entry for the same path replaces an earlier one, as extraction would.
pub fn file_in_tar(tar: &[u8], path: &str) -> Result<Option<Vec<u8>>, ReleaseError> {
    let mut found = None;
    let mut at = 0usize;
    // A PAX extended header's `path` applies to the next entry.
    let mut pax_path: Option<String> = None;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let size = octal(&header[124..136])
            .ok_or_else(|| ReleaseError::Tar(format!("bad size field at offset {at}")))?;
        let size = usize::try_from(size)
            .map_err(|_| ReleaseError::Tar(format!("entry too large at offset {at}")))?;
        let data_start = at + 512;
        let data_end = data_start
            .checked_add(size)
            .filter(|e| *e <= tar.len())
            .ok_or_else(|| ReleaseError::Tar(format!("entry at offset {at} runs past the end")))?;
        let data = &tar[data_start..data_end];
        let kind = header[156];
        match kind {
            b'x' => pax_path = pax_record(data, "path"),
            b'g' => {}
            _ => {
                let name = pax_path.take().unwrap_or_else(|| ustar_name(header));
                let name = name.trim_start_matches("./");
                if (kind == b'0' || kind == 0) && name == path {
                    found = Some(data.to_vec());
                }
            }
        }
        at = data_start + size.div_ceil(512) * 512;
    }
    Ok(found)
}

fn octal(field: &[u8]) -> Option<u64> {
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn ustar_name(header: &[u8]) -> String {
    let name = cstr(&header[0..100]);
    let prefix = if &header[257..262] == b"ustar" {
        cstr(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// One `key=value` of PAX records (`LEN key=value\n`…).
fn pax_record(data: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines().find_map(|l| {
        let (_, kv) = l.split_once(' ')?;
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

#[derive(Deserialize)]
struct ImageStream {
    #[serde(default)]
    kind: String,
    spec: Option<Spec>,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
    from: Option<From>,
}

#[derive(Deserialize)]
struct From {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

/// `(tag, image)` for every payload image the ImageStream names.
pub fn image_references(json: &[u8]) -> Result<Vec<(String, String)>, ReleaseError> {
    let is: ImageStream =
        serde_json::from_slice(json).map_err(|e| ReleaseError::References(e.to_string()))?;
    if is.kind != "ImageStream" {
        return Err(ReleaseError::References(format!(
            "expected kind ImageStream, found {:?}",
            is.kind
        )));
    }
    let tags = is.spec.map(|s| s.tags).unwrap_or_default();
    let out: Vec<(String, String)> = tags
        .into_iter()
        .filter_map(|t| {
            let from = t.from?;
            (from.kind == "DockerImage" && !from.name.is_empty()).then_some((t.name, from.name))
        })
        .collect();
    if out.is_empty() {
        return Err(ReleaseError::References("names no image".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    const REFS: &str = r#"{"kind":"ImageStream","apiVersion":"image.openshift.io/v1","metadata":{"name":"4.19.3"},
      "spec":{"tags":[{"name":"cli","from":{"kind":"DockerImage","name":"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:aa"}},
                      {"name":"pod","from":{"kind":"DockerImage","name":"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:bb"}},
                      {"name":"odd","from":{"kind":"ImageStreamTag","name":"x:y"}}]}}"#;

    #[test]
    fn the_list_is_found_in_a_layer_and_read() {
        let mut tar = entry("release-manifests/", b'5', b"");
        tar.extend(entry(
            "release-manifests/0000_50_x.yaml",
            b'0',
            b"kind: ConfigMap\n",
        ));
        tar.extend(entry(
            "./release-manifests/image-references",
            b'0',
            REFS.as_bytes(),
        ));
        tar.extend([0u8; 1024]);
        let file = file_in_tar(&tar, IMAGE_REFERENCES).unwrap().unwrap();
        let refs = image_references(&file).unwrap();
        assert_eq!(
            refs,
            [
                (
                    "cli".to_string(),
                    "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:aa".to_string()
                ),
                (
                    "pod".to_string(),
                    "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:bb".to_string()
                ),
            ]
        );
        assert_eq!(
            file_in_tar(&tar, "release-manifests/missing").unwrap(),
            None
        );
    }

    #[test]
    fn pax_names_and_damage_are_handled() {
        let long = format!("{}/{IMAGE_REFERENCES}", "d".repeat(120));
        let record = format!(" path={IMAGE_REFERENCES}\n");
        let record = format!("{}{record}", record.len() + 2);
        let mut tar = entry("PaxHeader", b'x', record.as_bytes());
        tar.extend(entry(&long[..100], b'0', b"{}"));
        assert_eq!(
            file_in_tar(&tar, IMAGE_REFERENCES).unwrap().as_deref(),
            Some(&b"{}"[..])
        );

        let mut cut = entry(IMAGE_REFERENCES, b'0', &[b'x'; 2000]);
        cut.truncate(1024);
        assert!(file_in_tar(&cut, IMAGE_REFERENCES).is_err());
        assert!(image_references(b"{\"kind\":\"ConfigMap\"}").is_err());
        assert!(image_references(b"not json").is_err());
    }
}
