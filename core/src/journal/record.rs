//! Pull records: the wire type the agent reports and `mirrorscope-agent scan` prints.

use serde::{Deserialize, Serialize};

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullOutcome {
    Pulled,
    Failed,
    InProgress,
    Abandoned,
}

/// How one location's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Served,
    Failed,
    /// Tried last by a pull that has not ended (in progress or abandoned): it may still serve.
    Pending,
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    ManifestUnknown,
    /// A layer missing at a source (`BLOB_UNKNOWN`): only blob-level fallback lines say it.
    BlobUnknown,
    Blocked,
    Unauthorized,
    Denied,
    Tls,
    ConnectionRefused,
    Timeout,
    Dns,
    Http,
    /// policy.json refused the image: no signature, none accepted, or a `reject` requirement.
    Signature,
    Other,
}

impl PullOutcome {
    /// The name tables and the status page show.
    pub fn as_str(self) -> &'static str {
        match self {
            PullOutcome::Pulled => "pulled",
            PullOutcome::Failed => "failed",
            PullOutcome::InProgress => "in-progress",
            PullOutcome::Abandoned => "abandoned",
        }
    }
}

impl ErrorClass {
    /// The name on the wire (as serde writes it), in metric labels and on the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ManifestUnknown => "manifest_unknown",
            ErrorClass::Blocked => "blocked",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Denied => "denied",
            ErrorClass::Tls => "tls",
            ErrorClass::ConnectionRefused => "connection_refused",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Dns => "dns",
            ErrorClass::Http => "http",
            ErrorClass::Signature => "signature",
            ErrorClass::BlobUnknown => "blob_unknown",
            ErrorClass::Other => "other",
        }
    }
}

/// One location tried during a pull (each location once, in the order first tried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullAttempt {
    pub reference: String,
    pub mirror: bool,
    pub outcome: AttemptOutcome,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    /// How many rounds tried this location.
    pub tries: u32,
}

/// `Using auth file for namespace NS: FILE`: the auth file the credential provider wrote for the
/// pod's namespace, which CRI-O moved aside and used for this one pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacedAuth {
    pub namespace: String,
    pub auth_file: String,
}

/// A layer fetch that failed at one source during a pull (containers/image's blob-level mirror
/// fallback, seen only in debug lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobFailure {
    pub reference: String,
    /// The layer, when the line named it (the first failure of a fallback does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub error: String,
}

/// [`PullRecord::blob_source`] when the journal cannot tell: CRI-O logs at info level, where
/// containers/image's switch of the layer source to another mirror is not logged.
pub const BLOB_SOURCE_UNKNOWN: &str = "unknown";

/// One image pull as the node's journal tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRecord {
    pub pull_id: String,
    pub image: String,
    pub node: Option<String>,
    /// RFC 3339 UTC timestamps. `started_at` is null for a partial record.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub outcome: PullOutcome,
    pub attempts: Vec<PullAttempt>,
    pub served_by: Option<String>,
    pub via_mirror: bool,
    /// True when the source served the pull after at least one mirror was tried.
    pub fallback: bool,
    pub digest: Option<String>,
    /// The storage image ID CRI-O ≥1.35.2 logs in `Pulled image:` (`sha256:<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The per-namespace credentials the pull used (CRI-O 1.35+, `CRIOCredentialProviderConfig`):
    /// null when CRI-O logged none, i.e. the node's pull secret or the kubelet's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced_auth: Option<NamespacedAuth>,
    /// `namespace/name` of the pod, from kubelet lines.
    pub pod: Option<String>,
    /// Journal cursor of the entry that opened the pull: with `pull_id`, makes records idempotent.
    pub cursor: Option<String>,
    /// Why a failed pull failed, as the journal gave it (the kubelet's error without its
    /// `rpc error: code = … desc = ` prefix), even when no location can be blamed for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pull's start is not in the journal that was read (before `--since`, in a rotated-away
    /// file, before the first cursor): the record was rebuilt from its end alone, so attempts and
    /// pod may be incomplete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// 0 when the record is sent once, complete. A record sent the moment its pull finished
    /// (the agent does, so a pull is visible within a second) and amended when late lines arrive
    /// (the kubelet's naming the pod) comes again with the same `pull_id` and a higher revision,
    /// which replaces the first wherever it is kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u32,
    /// Where the layers of a pulled image came from: `served_by` (the manifest's source) unless
    /// containers/image switched to another source for them, which only debug lines show;
    /// [`BLOB_SOURCE_UNKNOWN`] when no debug line of CRI-O's reached the journal during the
    /// pull. Absent for pulls that did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_source: Option<String>,
    /// Layer fetches that failed on the way (debug lines only), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blob_failures: Vec<BlobFailure>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PullRecord {
    /// A pull of `image` that started at `started_at` and has no line since: in progress, no
    /// attempts. The one constructor the correlator's builders and the tests start from.
    pub fn started(pull_id: &str, image: &str, started_at: &str) -> PullRecord {
        PullRecord {
            pull_id: pull_id.to_string(),
            image: image.to_string(),
            node: None,
            started_at: Some(started_at.to_string()),
            finished_at: None,
            outcome: PullOutcome::InProgress,
            attempts: Vec::new(),
            served_by: None,
            via_mirror: false,
            fallback: false,
            digest: None,
            image_id: None,
            namespaced_auth: None,
            pod: None,
            cursor: None,
            error: None,
            partial: false,
            revision: 0,
            blob_source: None,
            blob_failures: Vec::new(),
        }
    }
}

impl PullRecord {
    /// Every failed attempt's error, the cause first: a source that is blocked (or refused after
    /// the mirrors) only says the pull had nowhere left to go, so the mirrors' own errors (a
    /// `manifest unknown`, a refused connection) come before it. Attempts keep their order within
    /// each group. When no location carries an error, the pull's own error (the kubelet's) is the
    /// only one, with no location.
    pub fn errors_cause_first(&self) -> Vec<(Option<&PullAttempt>, &str)> {
        let failed = || {
            self.attempts
                .iter()
                .filter_map(|a| a.error.as_deref().map(|e| (a, e)))
        };
        let consequence = |a: &PullAttempt| a.error_class == Some(ErrorClass::Blocked);
        let mut out: Vec<(Option<&PullAttempt>, &str)> = failed()
            .filter(|(a, _)| !consequence(a))
            .chain(failed().filter(|(a, _)| consequence(a)))
            .map(|(a, e)| (Some(a), e))
            .collect();
        if out.is_empty() {
            if let Some(e) = self.error.as_deref() {
                out.push((None, e));
            }
        }
        out
    }

    /// The error that explains the pull best: the first of [`errors_cause_first`](Self::errors_cause_first).
    pub fn cause(&self) -> Option<&str> {
        self.errors_cause_first().first().map(|(_, e)| *e)
    }
}

#[cfg(test)]
mod cause_tests {
    use super::*;

    fn attempt(reference: &str, class: ErrorClass, error: &str) -> PullAttempt {
        PullAttempt {
            reference: reference.into(),
            mirror: !reference.starts_with("docker.io"),
            outcome: AttemptOutcome::Failed,
            error_class: Some(class),
            error: Some(error.into()),
            tries: 1,
        }
    }

    #[test]
    fn class_names_are_the_wire_names() {
        use ErrorClass::*;
        for c in [
            ManifestUnknown,
            Blocked,
            Unauthorized,
            Denied,
            Tls,
            ConnectionRefused,
            Timeout,
            Dns,
            Http,
            Signature,
            Other,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn a_blocked_source_comes_after_the_mirrors_error() {
        let mut p = PullRecord::started("1", "docker.io/library/nginx:1", "2026-12-04T00:00:00Z");
        p.attempts = vec![
            attempt(
                "mirror.example:5000/library/nginx:1",
                ErrorClass::ManifestUnknown,
                "manifest unknown",
            ),
            attempt(
                "docker.io/library/nginx:1",
                ErrorClass::Blocked,
                "registry docker.io is blocked",
            ),
        ];
        p.error = Some("kubelet: ErrImagePull".into());
        let errs: Vec<&str> = p.errors_cause_first().iter().map(|(_, e)| *e).collect();
        assert_eq!(errs, ["manifest unknown", "registry docker.io is blocked"]);
        assert_eq!(p.cause(), Some("manifest unknown"));
    }

    #[test]
    fn blocked_first_in_order_is_moved_and_kubelet_error_is_the_fallback() {
        let mut p = PullRecord::started("1", "docker.io/a/b:1", "2026-12-04T00:00:00Z");
        p.attempts = vec![
            attempt("docker.io/a/b:1", ErrorClass::Blocked, "blocked"),
            attempt(
                "m2.example/a/b:1",
                ErrorClass::ConnectionRefused,
                "connection refused",
            ),
        ];
        assert_eq!(p.cause(), Some("connection refused"));
        p.attempts.clear();
        assert_eq!(p.cause(), None);
        p.error = Some("pull QPS exceeded".into());
        assert_eq!(p.errors_cause_first(), vec![(None, "pull QPS exceeded")]);
    }
}
