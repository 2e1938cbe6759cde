//! The audit's answer per image, in the JSON shape `mirrorscope audit -o json` promises.

use serde::{Deserialize, Serialize};

/// Who will serve an image, judged before any node pulls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A mirror serves it.
    Mirror,
    /// Nothing was asked or a probe could not tell.
    Unknown,
    /// Only the source serves it: breaks in a disconnected cluster or under NeverContactSource.
    Source,
    /// Nothing serves it.
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Mirror => "mirror",
            Verdict::Source => "source",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }

    /// The `--fail-on` threshold: `fail` counts only failures, `source` also source pulls.
    pub fn at_or_past(self, threshold: Verdict) -> bool {
        match threshold {
            Verdict::Fail => self == Verdict::Fail,
            Verdict::Source => matches!(self, Verdict::Source | Verdict::Fail),
            Verdict::Unknown => self != Verdict::Mirror,
            Verdict::Mirror => true,
        }
    }
}

/// What a registry said about one manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeStatus {
    Present,
    /// The repository is there, the tag or digest is not.
    ManifestUnknown,
    /// The repository is not there.
    NameUnknown,
    Unauthorized,
    Denied,
    TlsError,
    Unreachable,
    Error,
    /// An earlier source served the image, as the node would stop there.
    NotTried,
}

impl ProbeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Present => "present",
            ProbeStatus::ManifestUnknown => "manifest-unknown",
            ProbeStatus::NameUnknown => "name-unknown",
            ProbeStatus::Unauthorized => "unauthorized",
            ProbeStatus::Denied => "denied",
            ProbeStatus::TlsError => "tls-error",
            ProbeStatus::Unreachable => "unreachable",
            ProbeStatus::Error => "error",
            ProbeStatus::NotTried => "not-tried",
        }
    }

    /// The registry answered that it does not have the manifest: a node gets the same answer.
    pub fn is_absent(self) -> bool {
        matches!(
            self,
            ProbeStatus::ManifestUnknown | ProbeStatus::NameUnknown
        )
    }
}

/// One probe of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub status: ProbeStatus,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// Architectures the manifest (list) offers; one entry for a single image whose config was read.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Architectures asked for (`--arch`) that the served manifest lacks.
    #[serde(default)]
    pub missing_architectures: Vec<String>,
    pub detail: Option<String>,
    /// For a `library/` path that is not there: the same image without `library/`, when the
    /// registry has it there (the mirror was copied to `M/X` instead of `M/library/X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present_without_library: Option<String>,
}

impl Probe {
    pub fn with_status(status: ProbeStatus, detail: Option<String>) -> Probe {
        Probe {
            status,
            digest: None,
            media_type: None,
            architectures: Vec::new(),
            missing_architectures: Vec::new(),
            detail,
            present_without_library: None,
        }
    }

    pub fn not_tried() -> Probe {
        Probe::with_status(ProbeStatus::NotTried, None)
    }
}

/// One location the node will try, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceAudit {
    pub reference: String,
    pub mirror: bool,
    pub blocked: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// `None` when not probed (no `--probe`, or blocked: the node never contacts it).
    pub probe: Option<Probe>,
}

/// Something an admin should fix, with how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: FindingCode,
    pub message: String,
    pub fix: String,
}

/// The stable identifiers scripts and alerts key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    InvalidReference,
    NoMirrorRule,
    VendorPrefixGap,
    DigestOnlyMirrorsForTag,
    #[serde(rename = "registry-1-docker-io-alias")]
    Registry1DockerIoAlias,
    LibraryPath,
    StaleTag,
    MissingDigest,
    /// The mirror has no repository of that name at all.
    MissingRepository,
    MissingArchitecture,
    FallbackToSource,
    BlockedSource,
    MirrorUnreachable,
    MirrorUnauthorized,
}

impl FindingCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::InvalidReference => "invalid-reference",
            FindingCode::NoMirrorRule => "no-mirror-rule",
            FindingCode::VendorPrefixGap => "vendor-prefix-gap",
            FindingCode::DigestOnlyMirrorsForTag => "digest-only-mirrors-for-tag",
            FindingCode::Registry1DockerIoAlias => "registry-1-docker-io-alias",
            FindingCode::LibraryPath => "library-path",
            FindingCode::StaleTag => "stale-tag",
            FindingCode::MissingDigest => "missing-digest",
            FindingCode::MissingRepository => "missing-repository",
            FindingCode::MissingArchitecture => "missing-architecture",
            FindingCode::FallbackToSource => "fallback-to-source",
            FindingCode::BlockedSource => "blocked-source",
            FindingCode::MirrorUnreachable => "mirror-unreachable",
            FindingCode::MirrorUnauthorized => "mirror-unauthorized",
        }
    }
}

/// The audit of one distinct image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// As the workload names it.
    pub image: String,
    /// After normalisation (the first candidate for a short name); `None` when it does not parse.
    pub reference: Option<String>,
    pub used_by: Vec<String>,
    pub verdict: Verdict,
    /// The location that will serve the pull.
    pub served_by: Option<String>,
    pub sources: Vec<SourceAudit>,
    pub findings: Vec<Finding>,
}

impl AuditEntry {
    /// Its first user and how many more (`shop/Deployment/web, +2 more`); `None` when unused.
    pub fn users_in_short(&self) -> Option<String> {
        match self.used_by.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            [first, rest @ ..] => Some(format!("{first}, +{} more", rest.len())),
        }
    }
}

/// `N images: M mirror, S source, F fail, U unknown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub images: usize,
    pub mirror: usize,
    pub source: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Summary {
    pub fn of(entries: &[AuditEntry]) -> Summary {
        Summary::of_verdicts(entries.iter().map(|e| e.verdict))
    }

    pub fn of_verdicts(verdicts: impl IntoIterator<Item = Verdict>) -> Summary {
        let mut s = Summary::default();
        for v in verdicts {
            s.images += 1;
            match v {
                Verdict::Mirror => s.mirror += 1,
                Verdict::Source => s.source += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Unknown => s.unknown += 1,
            }
        }
        s
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} image{}: {} mirror, {} source, {} fail, {} unknown",
            self.images,
            if self.images == 1 { "" } else { "s" },
            self.mirror,
            self.source,
            self.fail,
            self.unknown
        )
    }
}
