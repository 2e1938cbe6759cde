//! What the OCI distribution API answers about a manifest, read the way a node reads it.

use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header containers/image sends for a manifest, lists first so a registry serves the
/// list instead of picking one architecture for us.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Whether a served media type is a manifest list / image index.
pub fn is_list(media_type: &str) -> bool {
    let base = media_type.split(';').next().unwrap_or_default().trim();
    base == OCI_INDEX || base == DOCKER_LIST
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the registry's manifest is not valid JSON: {0}")]
pub struct ManifestError(String);

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    manifests: Vec<ListEntry>,
}

#[derive(Deserialize)]
struct ListEntry {
    #[serde(default)]
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
}

/// The architectures a list offers, sorted and unique. `unknown` (attestation manifests that
/// buildkit adds) is no architecture a node can run.
pub fn list_architectures(body: &[u8]) -> Result<Vec<String>, ManifestError> {
    let list: List = serde_json::from_slice(body).map_err(|e| ManifestError(e.to_string()))?;
    let mut archs: Vec<String> = list
        .manifests
        .into_iter()
        .filter_map(|m| m.platform)
        .map(|p| p.architecture)
        .filter(|a| !a.is_empty() && a != "unknown")
        .collect();
    archs.sort();
    archs.dedup();
    Ok(archs)
}

/// The digest of a list's child for `architecture` (linux).
pub fn child_for(body: &[u8], architecture: &str) -> Result<Option<String>, ManifestError> {
    let list: List = serde_json::from_slice(body).map_err(|e| ManifestError(e.to_string()))?;
    Ok(list
        .manifests
        .into_iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == architecture)
        })
        .map(|m| m.digest))
}

#[derive(Deserialize)]
struct Single {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default, rename = "mediaType")]
    media_type: String,
}

/// The layers of a single-image manifest, bottom first: `(digest, media type)`.
pub fn layers(body: &[u8]) -> Result<Vec<(String, String)>, ManifestError> {
    let m: Single = serde_json::from_slice(body).map_err(|e| ManifestError(e.to_string()))?;
    Ok(m.layers
        .into_iter()
        .map(|d| (d.digest, d.media_type))
        .collect())
}

/// The config blob's digest of a single-image manifest, where its architecture is written.
pub fn config_digest(body: &[u8]) -> Result<Option<String>, ManifestError> {
    let m: Single = serde_json::from_slice(body).map_err(|e| ManifestError(e.to_string()))?;
    Ok(m.config.map(|c| c.digest))
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    architecture: String,
}

/// The architecture an image config names.
pub fn config_architecture(body: &[u8]) -> Result<String, ManifestError> {
    let c: ImageConfig = serde_json::from_slice(body).map_err(|e| ManifestError(e.to_string()))?;
    Ok(c.architecture)
}

/// The architectures in `wanted` that `offered` lacks, in `wanted`'s order.
pub fn missing_architectures(offered: &[String], wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !offered.iter().any(|o| o == *w))
        .cloned()
        .collect()
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The distribution-spec error codes (and messages) of an error body; empty when it has none.
pub fn error_codes(body: &[u8]) -> Vec<(String, String)> {
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors.into_iter().map(|x| (x.code, x.message)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_offers_its_platforms_but_not_attestations() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"digest":"sha256:a","platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
            {"digest":"sha256:b","platform":{"architecture":"amd64","os":"linux"}},
            {"digest":"sha256:c","platform":{"architecture":"unknown","os":"unknown"}},
            {"digest":"sha256:d","platform":{"architecture":"amd64","os":"linux"}}]}"#;
        assert_eq!(list_architectures(body).unwrap(), ["amd64", "arm64"]);
        let wanted = vec!["amd64".to_string(), "ppc64le".to_string()];
        assert_eq!(
            missing_architectures(&list_architectures(body).unwrap(), &wanted),
            ["ppc64le"]
        );
        assert!(list_architectures(b"not json").is_err());
    }

    #[test]
    fn media_types_with_parameters_still_name_lists() {
        assert!(is_list(
            "application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"
        ));
        assert!(is_list(OCI_INDEX));
        assert!(!is_list(OCI_MANIFEST));
        assert!(!is_list(DOCKER_MANIFEST));
    }

    #[test]
    fn single_manifests_name_their_config_and_its_architecture() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:cfg","size":2},"layers":[]}"#;
        assert_eq!(config_digest(m).unwrap().as_deref(), Some("sha256:cfg"));
        assert_eq!(
            config_architecture(br#"{"architecture":"arm64","os":"linux"}"#).unwrap(),
            "arm64"
        );
    }

    #[test]
    fn error_bodies_give_their_codes() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"9"}}]}"#;
        assert_eq!(
            error_codes(body),
            [(
                "MANIFEST_UNKNOWN".to_string(),
                "manifest unknown".to_string()
            )]
        );
        assert!(error_codes(b"<html>").is_empty());
    }
}
