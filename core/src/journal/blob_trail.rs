//! Where a pull's layers came from. containers/image (2026, blob-level mirror fallback) fetches
//! the layers from the source that served the manifest; when one is missing there (or that
//! source fails transiently) it tries the remaining sources for it, and switches to the first
//! that serves it for the rest of the pull. All of that is logged at debug level only:
//!
//! - `Blob D fetch from "L" failed (E), trying fallback sources` opens a fallback,
//! - a debug `Trying to access "M"` per source tried, `Accessing "M" failed: E` when it fails,
//! - `Blob fetch succeeded from fallback source "M", switching to it for future requests`.
//!
//! (`Partial blob …` for the zstd:chunked path.) So a record can name its layers' source only
//! when debug lines reached the journal during the pull; otherwise it says so.

use super::cimage_error::classify_error;
use super::record::{BlobFailure, BLOB_SOURCE_UNKNOWN};

/// Failed layer fetches kept per pull: an image of many layers missing from every mirror must
/// not grow an open pull without bound; the first ones say what is wrong.
const MAX_FAILURES: usize = 32;

/// What the debug lines said about one pull's layers. Shared by both correlators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BlobTrail {
    /// A blob fetch failed and the remaining sources are being tried for it.
    in_fallback: bool,
    /// The source being tried in the current fallback.
    trying: Option<String>,
    /// The source later blobs came from, once a fallback succeeded.
    switched_to: Option<String>,
    failures: Vec<BlobFailure>,
    /// Some debug line of CRI-O's was seen while the pull was open.
    pub debug_seen: bool,
}

impl BlobTrail {
    /// The source blobs are fetched from now: the one switched to, else the manifest's.
    pub fn source<'a>(&'a self, manifest_source: Option<&'a str>) -> Option<&'a str> {
        self.switched_to.as_deref().or(manifest_source)
    }

    /// In a fallback, waiting for this source's outcome (or for the next one to be tried).
    pub fn in_fallback(&self) -> bool {
        self.in_fallback
    }

    pub fn is_trying(&self, location: &str) -> bool {
        self.trying.as_deref() == Some(location)
    }

    /// `Blob D fetch from "L" failed (E), trying fallback sources`.
    pub fn fetch_failed(&mut self, digest: String, location: String, error: String) {
        self.debug_seen = true;
        self.in_fallback = true;
        self.trying = None;
        self.push(BlobFailure {
            reference: location,
            digest: Some(digest),
            error_class: Some(classify_error(&error)),
            error,
        });
    }

    /// A debug `Trying to access "M"` inside a fallback.
    pub fn trying(&mut self, location: String) {
        self.debug_seen = true;
        self.trying = Some(location);
    }

    /// `Accessing "M" failed: E` for the source being tried in a fallback.
    pub fn access_failed(&mut self, error: String) {
        self.debug_seen = true;
        if let Some(reference) = self.trying.take() {
            self.push(BlobFailure {
                reference,
                digest: None,
                error_class: Some(classify_error(&error)),
                error,
            });
        }
    }

    fn push(&mut self, f: BlobFailure) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(f);
        }
    }

    /// `Blob fetch succeeded from fallback source "M", switching to it …`.
    pub fn switched(&mut self, location: String) {
        self.debug_seen = true;
        self.in_fallback = false;
        self.trying = None;
        self.switched_to = Some(location);
    }

    /// The record's `blob_source` and `blob_failures` for a pull served by `served_by`.
    pub fn into_record_fields(
        self,
        pulled: bool,
        served_by: Option<&str>,
    ) -> (Option<String>, Vec<BlobFailure>) {
        let source = pulled.then(|| {
            if self.debug_seen {
                self.source(served_by)
                    .unwrap_or(BLOB_SOURCE_UNKNOWN)
                    .to_owned()
            } else {
                BLOB_SOURCE_UNKNOWN.to_owned()
            }
        });
        (source, self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ErrorClass;

    #[test]
    fn without_debug_lines_the_source_is_unknown() {
        let t = BlobTrail::default();
        assert_eq!(
            t.into_record_fields(true, Some("m1/a@sha256:00")),
            (Some("unknown".to_owned()), vec![])
        );
        assert_eq!(
            BlobTrail::default().into_record_fields(false, None),
            (None, vec![])
        );
    }

    #[test]
    fn a_fallback_names_each_failure_and_the_source_switched_to() {
        let mut t = BlobTrail {
            debug_seen: true,
            ..BlobTrail::default()
        };
        assert_eq!(t.source(Some("m1/a")), Some("m1/a"));
        t.fetch_failed(
            "sha256:5e".into(),
            "m1/a".into(),
            "blob unknown to registry".into(),
        );
        assert!(t.in_fallback());
        t.trying("m2/a".into());
        assert!(t.is_trying("m2/a"));
        t.access_failed(
            "pinging container registry m2: dial tcp 127.0.0.1:5: connect: connection refused"
                .into(),
        );
        t.trying("src/a".into());
        t.switched("src/a".into());
        assert!(!t.in_fallback());
        assert_eq!(t.source(Some("m1/a")), Some("src/a"));
        let (source, failures) = t.into_record_fields(true, Some("m1/a"));
        assert_eq!(source.as_deref(), Some("src/a"));
        let summary: Vec<(&str, Option<&str>, Option<ErrorClass>)> = failures
            .iter()
            .map(|f| (f.reference.as_str(), f.digest.as_deref(), f.error_class))
            .collect();
        assert_eq!(
            summary,
            [
                ("m1/a", Some("sha256:5e"), Some(ErrorClass::BlobUnknown)),
                ("m2/a", None, Some(ErrorClass::ConnectionRefused)),
            ]
        );
    }

    #[test]
    fn failures_are_bounded() {
        let mut t = BlobTrail::default();
        for i in 0..1_000 {
            t.fetch_failed(format!("sha256:{i}"), "m1/a".into(), "blob unknown".into());
        }
        assert_eq!(t.into_record_fields(false, None).1.len(), MAX_FAILURES);
    }
}
