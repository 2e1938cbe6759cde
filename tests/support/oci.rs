//! Tiny deterministic OCI image layouts, pushed into a real [`Registry`] with `skopeo copy`.
//!
//! ```no_run
//! use mirrorscope_e2e::{oci, registry::Registry};
//! let reg = Registry::plain();
//! let digest = oci::seed(&reg, "library/tiny", "1", "tiny-one"); // "sha256:…", read back from the registry
//! let layout = oci::OciLayout::build("tiny-two", "2");           // or build once, push many times
//! let d2 = layout.push(&reg, "library/tiny", "2");
//! assert_ne!(digest, d2); // distinct content per name => distinct digests
//! ```
//!
//! Digests are never hard-coded: skopeo compresses the layer on push (so the pushed manifest differs
//! from the local one), and the result is read back with `skopeo inspect --raw` and hashed.

use crate::registry::{Registry, ScratchDir};
use crate::skopeo;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sha256:<hex>` digest of `bytes`, as written in references and manifests.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`) with one image under
/// one tag; removed on drop.
pub struct OciLayout {
    dir: ScratchDir,
    tag: String,
    manifest_digest: String,
}

impl OciLayout {
    /// Builds a one-layer image whose single file `hello.txt` says `hello from <content_name>`; the
    /// same name always gives the same bytes (fixed tar metadata, no timestamps).
    pub fn build(content_name: &str, tag: &str) -> OciLayout {
        let dir = ScratchDir::new("oci");
        let (manifest_digest, size) = write_image(dir.path(), content_name, "amd64");
        OciLayout::finish(dir, tag, OCI_MANIFEST, &manifest_digest, size)
    }

    /// Builds an image of these layers (each a list of `(path, contents)` regular files, bottom
    /// first), for amd64: e.g. a release payload with `release-manifests/image-references`.
    pub fn build_layers(tag: &str, layers: &[&[(&str, &[u8])]]) -> OciLayout {
        let dir = ScratchDir::new("oci-layers");
        let (digest, size) = write_layers(dir.path(), layers, "amd64");
        OciLayout::finish(dir, tag, OCI_MANIFEST, &digest, size)
    }

    /// Builds an image index with one such image per architecture (content `<name>-<arch>`),
    /// as a multi-architecture release publishes it; [`OciLayout::push`] copies every child.
    pub fn build_index(content_name: &str, tag: &str, architectures: &[&str]) -> OciLayout {
        let dir = ScratchDir::new("oci-index");
        let children: Vec<String> = architectures
            .iter()
            .map(|arch| {
                let (digest, size) =
                    write_image(dir.path(), &format!("{content_name}-{arch}"), arch);
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            children.join(",")
        );
        let digest = write_blob(dir.path(), index.as_bytes());
        OciLayout::finish(dir, tag, OCI_INDEX, &digest, index.len())
    }

    fn finish(
        dir: ScratchDir,
        tag: &str,
        media_type: &str,
        digest: &str,
        size: usize,
    ) -> OciLayout {
        let index = format!(
            concat!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{mt}","#,
                r#""digest":"{md}","size":{ms},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#
            ),
            mt = media_type,
            md = digest,
            ms = size,
            tag = tag
        );
        dir.write("index.json", &index);
        dir.write("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
        OciLayout {
            dir,
            tag: tag.to_string(),
            manifest_digest: digest.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Digest of the manifest inside the layout (before skopeo recompresses on push).
    pub fn local_manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    /// Pushes the image to `registry` as `REPO:TAG` and returns the digest of the manifest the
    /// registry now serves for it.
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) -> String {
        let home = ScratchDir::new("oci-push-home");
        let policy = home.write("policy.json", skopeo::ACCEPT_ANYTHING_POLICY);
        let mut cmd = skopeo::command(home.path());
        cmd.arg("copy")
            .arg("--all")
            .arg("--policy")
            .arg(&policy)
            .arg("--dest-tls-verify=false");
        if let Some(creds) = registry.creds() {
            cmd.arg("--dest-creds").arg(creds);
        }
        cmd.arg(format!("oci:{}:{}", self.dir.path().display(), self.tag))
            .arg(format!("docker://{}/{repo}:{tag}", registry.host()));
        let out = skopeo::run_with_timeout(cmd, Duration::from_secs(120));
        assert!(
            out.success(),
            "skopeo copy to {}/{repo}:{tag} failed ({:?}):\n{}\n--- registry log ---\n{}",
            registry.host(),
            out.code,
            out.stderr,
            registry.log()
        );
        manifest_digest(registry, &format!("{repo}:{tag}"))
    }
}

/// Builds an image with content `content_name` and pushes it as `REPO:TAG`; returns the served digest.
pub fn seed(registry: &Registry, repo: &str, tag: &str, content_name: &str) -> String {
    OciLayout::build(content_name, tag).push(registry, repo, tag)
}

/// Digest of the manifest `registry` serves for `repo_and_tag` (`REPO:TAG` or `REPO@DIGEST`),
/// computed from `skopeo inspect --raw` output.
pub fn manifest_digest(registry: &Registry, repo_and_tag: &str) -> String {
    let home = ScratchDir::new("oci-inspect-home");
    let mut cmd = skopeo::command(home.path());
    cmd.arg("inspect").arg("--raw").arg("--tls-verify=false");
    if let Some(creds) = registry.creds() {
        cmd.arg("--creds").arg(creds);
    }
    cmd.arg(format!("docker://{}/{repo_and_tag}", registry.host()));
    let out = skopeo::run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.success(),
        "skopeo inspect --raw {}/{repo_and_tag} failed ({:?}):\n{}",
        registry.host(),
        out.code,
        out.stderr
    );
    sha256_digest(&out.stdout)
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Writes one single-layer image's blobs (layer, config for `architecture`, manifest); returns
/// the manifest's digest and size.
fn write_image(layout: &Path, content_name: &str, architecture: &str) -> (String, usize) {
    let file = format!("hello from {content_name}\n");
    write_layers(layout, &[&[("hello.txt", file.as_bytes())]], architecture)
}

/// Writes an image of these layers (each a list of regular files), bottom first.
fn write_layers(layout: &Path, layers: &[&[(&str, &[u8])]], architecture: &str) -> (String, usize) {
    let tars: Vec<Vec<u8>> = layers.iter().map(|files| tar_files(files)).collect();
    let descriptors: Vec<(String, usize)> = tars
        .iter()
        .map(|t| (write_blob(layout, t), t.len()))
        .collect();
    let diff_ids: Vec<String> = descriptors
        .iter()
        .map(|(d, _)| format!("\"{d}\""))
        .collect();
    let config = format!(
        concat!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{}},"#,
            r#""rootfs":{{"type":"layers","diff_ids":[{ids}]}}}}"#
        ),
        arch = architecture,
        ids = diff_ids.join(",")
    );
    let config_digest = write_blob(layout, config.as_bytes());
    let layer_json: Vec<String> = descriptors
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#))
        .collect();
    let manifest = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","#,
            r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cs}}},"#,
            r#""layers":[{layers}]}}"#
        ),
        mt = OCI_MANIFEST,
        cd = config_digest,
        cs = config.len(),
        layers = layer_json.join(",")
    );
    (write_blob(layout, manifest.as_bytes()), manifest.len())
}

/// Writes `bytes` as a content-addressed blob and returns its `sha256:` digest.
fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    let dir = layout.join("blobs").join("sha256");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let path = dir.join(&hex);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    format!("sha256:{hex}")
}

/// A ustar archive of regular files with fixed metadata (mode 0644, uid/gid 0, mtime 0).
fn tar_files(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        out.extend(tar_entry(name, content));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn tar_entry(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    fn put(h: &mut [u8; 512], at: usize, field: &[u8]) {
        h[at..at + field.len()].copy_from_slice(field);
    }
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    // The checksum is computed with its own field read as spaces.
    put(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());

    let mut out = header.to_vec();
    out.extend_from_slice(content);
    let pad = (512 - content.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
    out
}
