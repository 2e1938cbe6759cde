//! CRI-O messages about image pulls and registries configuration, across the versions the spec
//! covers (1.19 through 1.36: both `time=` formats, `runtime.v1alpha2`/`v1` method names, the
//! 1.33+ OCI-artifact lines, the 1.35.1+ fallback line, digests or image IDs in `Pulled image`).

use super::gostr::read_quoted;
use super::logrus::{parse_logrus, raw_msg};
use super::GrammarError;

/// A CRI-O line that matters for pull records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrioEvent {
    /// `Pulling image: X` (C4): opens request `request_id` for image X as the kubelet sent it.
    PullingImage {
        image: String,
        request_id: Option<String>,
    },
    /// `Trying to access "L"` (C6): one location tried; carries no request id. `debug` when
    /// logged at debug level: containers/image 5.10–5.13 log every location twice when debug
    /// logging is on (the info line CRI-O asks for, then an unconditional debug one).
    TryingToAccess { location: String, debug: bool },
    /// `Accessing "L" failed: E` (D1, debug level only).
    AccessFailed { location: String, error: String },
    /// `Using auth file for namespace NS: FILE` (1.35+, between `Pulling image` and the first
    /// `Trying`): the pull uses the namespace's credentials.
    UsingAuthFile {
        namespace: String,
        auth_file: String,
        request_id: Option<String>,
    },
    /// `Pulled image: R` (C8).
    PulledImage {
        reference: String,
        request_id: Option<String>,
    },
    /// `Checking image status: X` (C1).
    CheckingImageStatus {
        image: String,
        request_id: Option<String>,
    },
    /// `Image X not found` (C2) or `Neither image nor artfiact X found` (C3, 1.33+).
    ImageNotFound {
        image: String,
        request_id: Option<String>,
    },
    /// `Falling back to pull X as an OCI artifact: E` (C7, 1.35.1+).
    FallingBackToArtifact {
        image: String,
        error: String,
        request_id: Option<String>,
    },
    /// `Pulling OCI artifact X …` (C10, 1.33.4+).
    PullingOciArtifact {
        image: String,
        request_id: Option<String>,
    },
    /// `Applied new registry configuration: …` (after SIGHUP / auto-reload).
    RegistriesApplied { detail: String },
    /// A failed reload (`… system registries reload failed: <path>: <err>`); the previous
    /// configuration stays in force.
    RegistriesReloadFailed { error: String },
    /// `Starting CRI-O, version: V`: a restart, every pull in flight is gone.
    Starting { version: String },
    /// `[Partial b|B]lob D fetch from "L" failed (E), trying fallback sources` (debug only,
    /// containers/image with blob-level mirror fallback, 2026): a layer of the pull whose
    /// manifest (or blobs so far) came from L is missing there or L failed transiently; the
    /// remaining sources are tried next, each with a debug `Trying to access` line and, if it
    /// fails too, a debug `Accessing "L" failed` line.
    BlobFetchFailed {
        digest: String,
        location: String,
        error: String,
    },
    /// `[Partial b|B]lob fetch succeeded from fallback source "L", switching to it for future
    /// requests` (debug only): the pull's later blobs come from L.
    BlobSourceSwitched { location: String },
}

impl CrioEvent {
    /// Whether the line was logged at debug level (so CRI-O's debug lines reach the journal).
    pub fn is_debug(&self) -> bool {
        match self {
            CrioEvent::TryingToAccess { debug, .. } => *debug,
            CrioEvent::AccessFailed { .. }
            | CrioEvent::BlobFetchFailed { .. }
            | CrioEvent::BlobSourceSwitched { .. } => true,
            _ => false,
        }
    }
}

/// What `Pulled image:` carried; its meaning depends on the CRI-O version (`server/image_pull.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PulledValue<'a> {
    /// `name@sha256:…` (≤1.35.1): the digest part, `sha256:…`.
    Digest(&'a str),
    /// 64 hex digits (≥1.35.2): the storage image ID, not a digest.
    ImageId(&'a str),
    Other,
}

/// Classifies the value of a `Pulled image:` line.
pub fn pulled_value(reference: &str) -> PulledValue<'_> {
    if let Some(at) = reference.rfind('@') {
        let d = &reference[at + 1..];
        if d.contains(':') {
            return PulledValue::Digest(d);
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PulledValue::ImageId(hex);
    }
    PulledValue::Other
}

/// What a finished pull's `Pulled image:` value says about what was pulled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PulledIdentity {
    /// The manifest digest: the one logged (≤1.35.1), else, for the image-ID form, the digest
    /// the pull asked for. A tag pull logged with an image ID has none: CRI-O did not say.
    pub digest: Option<String>,
    /// The storage image ID (≥1.35.2), as `sha256:<hex>`, the form the kubelet's imageID uses.
    pub image_id: Option<String>,
}

/// Reads `value` (what followed `Pulled image: `) for a pull of `requested` (None when the
/// pull's start is not known).
pub fn pulled_identity(value: &str, requested: Option<&str>) -> PulledIdentity {
    let requested_digest = || {
        let r = requested?;
        let d = &r[r.rfind('@')? + 1..];
        d.contains(':').then(|| d.to_owned())
    };
    match pulled_value(value) {
        PulledValue::Digest(d) => PulledIdentity {
            digest: Some(d.to_owned()),
            image_id: None,
        },
        PulledValue::ImageId(hex) => PulledIdentity {
            digest: requested_digest(),
            image_id: Some(format!("sha256:{hex}")),
        },
        PulledValue::Other => PulledIdentity::default(),
    }
}

/// Whether the raw (escaped) message starts like one of our lines; dispatches on the first
/// byte, so most lines cost one or two comparisons. `status_lines` includes the image-status
/// lines (C1–C3) and the artifact line (C10), which the correlator does not need: kubelets
/// check image status for every container start, so skipping them keeps that path cheap.
fn known_start(raw_message: &str, status_lines: bool) -> bool {
    let p = |prefix: &str| raw_message.starts_with(prefix);
    match raw_message.as_bytes().first() {
        Some(b'P') => {
            p("Pulling image: ")
                || p("Pulled image: ")
                || p("Partial blob ")
                || (status_lines && p("Pulling OCI artifact "))
        }
        Some(b'T') => p("Trying to access "),
        Some(b'A') => p("Accessing ") || p("Applied new registry configuration"),
        Some(b'a') => p("applied new registry configuration"),
        Some(b'C') => status_lines && p("Checking image status: "),
        Some(b'I') => status_lines && p("Image "),
        Some(b'N') => status_lines && p("Neither image nor "),
        Some(b'F') => p("Falling back to pull "),
        Some(b'S') => p("Starting CRI-O"),
        Some(b'U') => p("Using auth file for namespace "),
        Some(b'B') => p("Blob "),
        _ => false,
    }
}

const RELOAD_FAILED: &str = "registries reload failed";

/// Cheap pre-check on the raw (escaped) message: false means the line is certainly not one of
/// ours. No allocation, no unescaping. Reload failures are logged at error level with a
/// caller-specific prefix, so they are looked for anywhere in the message, but only when
/// `error_level` says so.
pub fn may_be_relevant_at(raw_message: &str, error_level: bool) -> bool {
    known_start(raw_message, true) || (error_level && raw_message.contains(RELOAD_FAILED))
}

/// [`may_be_relevant_at`] for a message whose level is unknown.
pub fn may_be_relevant(raw_message: &str) -> bool {
    may_be_relevant_at(raw_message, true)
}

/// Whether the part of a logrus line before `msg` says `level=error` (text or JSON form; JSON
/// keys are sorted, so `level` comes before `msg` there too).
fn error_level(before_msg: &str) -> bool {
    before_msg.contains("level=error") || before_msg.contains("\"level\":\"error\"")
}

/// Pre-check on a whole CRI-O MESSAGE (see [`may_be_relevant_at`]).
pub fn line_may_be_relevant(line: &str) -> bool {
    line_check(line, true)
}

/// Like [`line_may_be_relevant`], but false for the image-status and artifact lines, which
/// carry nothing the pull correlation uses.
pub fn line_matters_for_pulls(line: &str) -> bool {
    line_check(line, false)
}

fn line_check(line: &str, status_lines: bool) -> bool {
    let Some(raw) = raw_msg(line) else {
        return false;
    };
    known_start(raw, status_lines) || {
        let before = &line[..line.len() - raw.len()];
        error_level(before) && raw.contains(RELOAD_FAILED)
    }
}

/// Whether a CRI-O MESSAGE was logged at debug level (text or JSON form), looked for before
/// its `msg` only: cheap enough for every line the other checks turned down. The correlator
/// needs to know that debug lines reach the journal at all: only then does the absence of a
/// blob fallback line mean the layers came from where the manifest did.
pub fn line_is_debug(line: &str) -> bool {
    let before = raw_msg(line).map_or(line, |raw| &line[..line.len() - raw.len()]);
    before.contains("level=debug") || before.contains("\"level\":\"debug\"")
}

/// Parses a CRI-O MESSAGE. `Ok(None)` for lines that are not pull-related (the common case,
/// decided without allocating); `Err` only for a relevant-looking line that is malformed.
pub fn parse_crio_line(line: &str) -> Result<Option<CrioEvent>, GrammarError> {
    if !line_may_be_relevant(line) {
        return Ok(None);
    }
    let parsed = parse_logrus(line)?;
    let id = parsed
        .field("id")
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let mut ev = classify_message(&parsed.msg, id);
    if let Some(CrioEvent::TryingToAccess { debug, .. }) = ev.as_mut() {
        *debug = parsed.level.as_deref() == Some("debug");
    }
    Ok(ev)
}

/// Classifies an unescaped CRI-O message; `request_id` is its `id=` field.
pub fn classify_message(msg: &str, request_id: Option<String>) -> Option<CrioEvent> {
    if let Some(image) = msg.strip_prefix("Pulling image: ") {
        return Some(CrioEvent::PullingImage {
            image: image.trim().to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg.strip_prefix("Trying to access ") {
        let location = first_quoted(rest)?;
        return Some(CrioEvent::TryingToAccess {
            location,
            debug: false,
        });
    }
    if let Some(rest) = msg.strip_prefix("Using auth file for namespace ") {
        // A namespace is a DNS label: the first ": " ends it.
        let (namespace, auth_file) = rest.split_once(": ")?;
        return Some(CrioEvent::UsingAuthFile {
            namespace: namespace.to_owned(),
            auth_file: auth_file.trim().to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg.strip_prefix("Pulled image: ") {
        return Some(CrioEvent::PulledImage {
            reference: rest.trim().to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg.strip_prefix("Accessing ") {
        let (loc, used) = read_quoted(rest).ok()?;
        let error = rest.get(used..)?.strip_prefix(" failed: ")?;
        return Some(CrioEvent::AccessFailed {
            location: loc.into_owned(),
            error: error.to_owned(),
        });
    }
    if let Some(image) = msg.strip_prefix("Checking image status: ") {
        return Some(CrioEvent::CheckingImageStatus {
            image: image.trim().to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg.strip_prefix("Image ") {
        let image = rest.strip_suffix(" not found")?;
        return Some(CrioEvent::ImageNotFound {
            image: image.to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg
        .strip_prefix("Neither image nor artfiact ")
        .or_else(|| msg.strip_prefix("Neither image nor artifact "))
    {
        let image = rest.strip_suffix(" found")?;
        return Some(CrioEvent::ImageNotFound {
            image: image.to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg.strip_prefix("Falling back to pull ") {
        let (image, error) = rest.split_once(" as an OCI artifact: ")?;
        return Some(CrioEvent::FallingBackToArtifact {
            image: image.to_owned(),
            error: error.to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg.strip_prefix("Pulling OCI artifact ") {
        let image = rest.split(' ').next().unwrap_or(rest);
        return Some(CrioEvent::PullingOciArtifact {
            image: image.to_owned(),
            request_id,
        });
    }
    if let Some(rest) = msg
        .strip_prefix("Applied new registry configuration")
        .or_else(|| msg.strip_prefix("applied new registry configuration"))
    {
        return Some(CrioEvent::RegistriesApplied {
            detail: rest.trim_start_matches(':').trim().to_owned(),
        });
    }
    if let Some(at) = msg.find("system registries reload failed") {
        return Some(CrioEvent::RegistriesReloadFailed {
            error: msg[at..].to_owned(),
        });
    }
    if let Some(rest) = msg
        .strip_prefix("Blob ")
        .or_else(|| msg.strip_prefix("Partial blob "))
    {
        return blob_line(rest);
    }
    if let Some(rest) = msg.strip_prefix("Starting CRI-O") {
        let version = rest
            .split_once("version: ")
            .map(|(_, v)| v.split([',', ' ']).next().unwrap_or(v))
            .unwrap_or("");
        return Some(CrioEvent::Starting {
            version: version.to_owned(),
        });
    }
    None
}

/// The rest of a blob fallback line after `Blob ` / `Partial blob `.
fn blob_line(rest: &str) -> Option<CrioEvent> {
    if let Some(tail) = rest.strip_prefix("fetch succeeded from fallback source ") {
        let (location, _) = read_quoted(tail).ok()?;
        return Some(CrioEvent::BlobSourceSwitched {
            location: location.into_owned(),
        });
    }
    let (digest, tail) = rest.split_once(" fetch from ")?;
    let (location, used) = read_quoted(tail).ok()?;
    // The error sits between ` failed (` and the fixed ending; it may hold parentheses itself.
    let error = tail
        .get(used..)?
        .strip_prefix(" failed (")?
        .strip_suffix("), trying fallback sources")?;
    Some(CrioEvent::BlobFetchFailed {
        digest: digest.to_owned(),
        location: location.into_owned(),
        error: error.to_owned(),
    })
}

fn first_quoted(s: &str) -> Option<String> {
    let start = s.find('"')?;
    let (v, _) = read_quoted(&s[start..]).ok()?;
    Some(v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Option<CrioEvent> {
        parse_crio_line(line).unwrap()
    }

    #[test]
    fn pulling_and_pulled_old_format() {
        assert_eq!(
            ev(
                r#"time="2022-05-05 06:58:46.895169892+02:00" level=info msg="Pulling image: registry.internal/kube-apiserver:v1" id=9d4f name=/runtime.v1alpha2.ImageService/PullImage"#
            ),
            Some(CrioEvent::PullingImage {
                image: "registry.internal/kube-apiserver:v1".into(),
                request_id: Some("9d4f".into())
            })
        );
        assert_eq!(
            ev(
                r#"time="2026-03-10T09:14:02Z" level=info msg="Pulled image: a.example/x@sha256:abcd" id=u2 name=/runtime.v1.ImageService/PullImage"#
            ),
            Some(CrioEvent::PulledImage {
                reference: "a.example/x@sha256:abcd".into(),
                request_id: Some("u2".into())
            })
        );
    }

    #[test]
    fn trying_and_accessing() {
        assert_eq!(
            ev(
                r#"time="2026-03-10T09:14:02.1Z" level=info msg="Trying to access \"m.example:8443/a/b@sha256:00\"""#
            ),
            Some(CrioEvent::TryingToAccess {
                location: "m.example:8443/a/b@sha256:00".into(),
                debug: false,
            })
        );
        assert_eq!(
            ev(
                r#"time="2021-06-01 10:00:00.000000001Z" level=debug msg="Trying to access \"m/a:1\"" file="docker/docker_image_src.go:72""#
            ),
            Some(CrioEvent::TryingToAccess {
                location: "m/a:1".into(),
                debug: true,
            })
        );
        assert_eq!(
            ev(
                r#"time="2026-03-10T09:14:02.1Z" level=debug msg="Accessing \"m/a:1\" failed: reading manifest 1 in m/a: manifest unknown" file="docker/docker_image_src.go:104""#
            ),
            Some(CrioEvent::AccessFailed {
                location: "m/a:1".into(),
                error: "reading manifest 1 in m/a: manifest unknown".into()
            })
        );
    }

    #[test]
    fn blob_fallback_lines() {
        let d = "sha256:5e6f";
        assert_eq!(
            ev(&format!(
                r#"time="2026-09-01T10:00:00.1Z" level=debug msg="Blob {d} fetch from \"m1.example/ns/app@sha256:00\" failed (fetching blob: blob unknown to registry (HTTP 404)), trying fallback sources" file="docker/docker_image_src.go:640""#
            )),
            Some(CrioEvent::BlobFetchFailed {
                digest: d.into(),
                location: "m1.example/ns/app@sha256:00".into(),
                error: "fetching blob: blob unknown to registry (HTTP 404)".into(),
            })
        );
        assert_eq!(
            ev(&format!(
                r#"{{"file":"docker/docker_image_src.go:610","level":"debug","msg":"Partial blob {d} fetch from \"m1/a@sha256:00\" failed (received unexpected HTTP status: 503 Service Unavailable), trying fallback sources","time":"2026-09-01T10:00:00Z"}}"#
            )),
            Some(CrioEvent::BlobFetchFailed {
                digest: d.into(),
                location: "m1/a@sha256:00".into(),
                error: "received unexpected HTTP status: 503 Service Unavailable".into(),
            })
        );
        for prefix in ["Blob", "Partial blob"] {
            let line = format!(
                r#"time="2026-09-01T10:00:01Z" level=debug msg="{prefix} fetch succeeded from fallback source \"quay.io/ns/app@sha256:00\", switching to it for future requests""#
            );
            assert_eq!(
                ev(&line),
                Some(CrioEvent::BlobSourceSwitched {
                    location: "quay.io/ns/app@sha256:00".into()
                })
            );
            assert!(line_is_debug(&line) && ev(&line).unwrap().is_debug());
        }
        assert!(!line_is_debug(
            r#"time="t" level=info msg="Pulled image: x level=debug""#
        ));
        assert!(line_is_debug(
            r#"time="t" level=debug msg="Downloading /v2/ns/app/blobs/sha256:00""#
        ));
        assert!(line_is_debug(
            r#"{"level":"debug","msg":"GET https://m1/v2/"}"#
        ));
        // Blob lines of another shape are not ours.
        assert_eq!(
            ev(r#"time="t" level=debug msg="Blob sha256:00 not found""#),
            None
        );
    }

    #[test]
    fn status_and_artifact_lines() {
        assert!(matches!(
            ev(
                r#"time="t" level=info msg="Checking image status: q.io/a:1" id=1 name=/runtime.v1.ImageService/ImageStatus"#
            ),
            Some(CrioEvent::CheckingImageStatus { .. })
        ));
        assert!(matches!(
            ev(r#"time="t" level=info msg="Neither image nor artfiact q.io/a:1 found" id=1"#),
            Some(CrioEvent::ImageNotFound { .. })
        ));
        assert!(matches!(
            ev(r#"time="t" level=info msg="Image q.io/a:1 not found" id=1"#),
            Some(CrioEvent::ImageNotFound { .. })
        ));
        assert_eq!(
            ev(r#"time="t" level=info msg="Image status: &ImageStatusResponse{}" id=1"#),
            None
        );
        assert_eq!(
            ev(
                r#"time="t" level=info msg="Falling back to pull q.io/a:1 as an OCI artifact: reading manifest 1 in q.io/a: manifest unknown" id=7"#
            ),
            Some(CrioEvent::FallingBackToArtifact {
                image: "q.io/a:1".into(),
                error: "reading manifest 1 in q.io/a: manifest unknown".into(),
                request_id: Some("7".into())
            })
        );
        assert!(matches!(
            ev(r#"time="t" level=info msg="Pulling OCI artifact q.io/a:1" id=7"#),
            Some(CrioEvent::PullingOciArtifact { .. })
        ));
    }

    #[test]
    fn reload_and_start_lines() {
        assert!(matches!(
            ev(
                r#"time="t" level=info msg="Applied new registry configuration: &{Registries:[] UnqualifiedSearchRegistries:[]}""#
            ),
            Some(CrioEvent::RegistriesApplied { .. })
        ));
        assert_eq!(
            ev(
                r#"time="t" level=error msg="Unable to reload configuration: system registries reload failed: /etc/containers/registries.conf: bad toml""#
            ),
            Some(CrioEvent::RegistriesReloadFailed {
                error: "system registries reload failed: /etc/containers/registries.conf: bad toml"
                    .into()
            })
        );
        assert_eq!(
            ev(r#"time="t" level=info msg="Starting CRI-O, version: 1.34.11, git: abc(clean)""#),
            Some(CrioEvent::Starting {
                version: "1.34.11".into()
            })
        );
    }

    #[test]
    fn correlation_pre_check_skips_status_lines() {
        let status = r#"time="t" level=info msg="Checking image status: q.io/a:1" id=1 name=/runtime.v1.ImageService/ImageStatus"#;
        assert!(line_may_be_relevant(status));
        assert!(!line_matters_for_pulls(status));
        let pulling = r#"time="t" level=info msg="Pulling image: q.io/a:1" id=1"#;
        assert!(line_matters_for_pulls(pulling));
        let reload = r#"time="t" level=error msg="Unable to reload configuration: system registries reload failed: x""#;
        assert!(line_matters_for_pulls(reload));
        // Mentioning a reload failure at info level is not a reload failure.
        let info = r#"time="t" level=info msg="note: system registries reload failed earlier""#;
        assert!(!line_matters_for_pulls(info));
    }

    #[test]
    fn noise_is_rejected() {
        assert_eq!(
            ev(
                r#"time="t" level=info msg="Creating container: ns/p/c" id=1 name=/runtime.v1.RuntimeService/CreateContainer"#
            ),
            None
        );
        assert_eq!(ev("random text"), None);
    }

    #[test]
    fn pulled_values() {
        assert_eq!(
            pulled_value("a/b@sha256:12"),
            PulledValue::Digest("sha256:12")
        );
        let id = "a".repeat(64);
        assert_eq!(pulled_value(&id), PulledValue::ImageId(&id));
        let by_digest = format!("quay.io/a/b@sha256:{}", "c".repeat(64));
        assert_eq!(
            pulled_identity(&id, Some(&by_digest)),
            PulledIdentity {
                digest: Some(format!("sha256:{}", "c".repeat(64))),
                image_id: Some(format!("sha256:{id}")),
            }
        );
        assert_eq!(pulled_identity(&id, Some("quay.io/a/b:1")).digest, None);
        assert_eq!(
            pulled_identity("quay.io/a/b@sha256:00", Some("quay.io/a/b:1")),
            PulledIdentity {
                digest: Some("sha256:00".into()),
                image_id: None
            }
        );
        assert_eq!(pulled_value("a/b:1"), PulledValue::Other);
    }
}
