//! containers/image pull errors (its `docker/` package words them): strip the consumer wrappers (CRI-O,
//! kubelet, skopeo, podman), split `(Mirrors also failed: [ref: err]\n[ref: err]): ref: err` into
//! per-location errors, and classify each one.
//!
//! Item errors may contain `]`, `: ` and newlines, so the split uses the expected locations as
//! anchors (`[` + ref + `: ` … `]\n[` + next ref + `: ` … `]): ` + primary + `: `), and falls
//! back to a structural scan only when the anchors do not fit the text.

use super::record::ErrorClass;

/// The error of one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    /// The location as containers/image printed it; `None` for an unaggregated error when no
    /// anchor was given (the text then names no location).
    pub reference: Option<String>,
    pub error: String,
    pub class: ErrorClass,
}

const AGGREGATE: &str = "(Mirrors also failed: ";

/// Splits an aggregated pull error into per-location errors, in attempt order (mirrors, then the
/// primary location last).
///
/// `anchors` are the locations expected in the text, in order: the source list of the
/// registries configuration, or the locations the journal showed being tried. An error without
/// the aggregate form belongs to the last anchor (containers/image only aggregates when at least
/// two locations were tried).
pub fn split_error(text: &str, anchors: &[&str]) -> Vec<AttemptError> {
    let core = strip_wrappers(text);
    let Some(at) = core.find(AGGREGATE) else {
        return vec![attempt(anchors.last().map(|a| (*a).to_owned()), core)];
    };
    let body = &core[at + AGGREGATE.len()..];
    if anchors.len() >= 2 {
        if let Some(v) = split_anchored(body, anchors) {
            return v;
        }
    }
    split_structural(body)
        .unwrap_or_else(|| vec![attempt(anchors.last().map(|a| (*a).to_owned()), core)])
}

fn attempt(reference: Option<String>, error: &str) -> AttemptError {
    AttemptError {
        reference,
        error: error.to_owned(),
        class: classify_error(error),
    }
}

/// Whether the error has the `(Mirrors also failed: …)` form, i.e. at least two locations were
/// tried.
pub fn is_aggregated(text: &str) -> bool {
    text.contains(AGGREGATE)
}

/// Removes the prefixes that consumers put in front of the containers/image error, outermost
/// first, and the OCI-artifact second half CRI-O 1.33.4+ appends.
pub fn strip_wrappers(text: &str) -> &str {
    let mut s = text.trim();
    // CRI-O 1.33.4+: `… pull image err: <copy error>; artifact err: <artifact error>`; only the
    // first half is about the image locations.
    if let Some(at) = s.find("pull image err: ") {
        s = &s[at + "pull image err: ".len()..];
        if let Some(end) = s.find("; artifact err: ") {
            s = &s[..end];
        }
    }
    loop {
        let before = s;
        if let Some(r) = s.strip_prefix("rpc error: code = ") {
            s = r.split_once(" desc = ").map_or(r, |(_, d)| d);
        }
        for p in [
            "RegistryUnavailable: ",
            "unable to pull image: ",
            "unable to try pulling possible OCI artifact: ",
            "get manifest: ",
            "build image source: ",
            "create image source: ",
            "get manifest from ref: ",
            "image reference: ",
            "pull image: ",
            "Error: ",
        ] {
            if let Some(r) = s.strip_prefix(p) {
                s = r;
            }
        }
        // The kubelet's rewording of `RegistryUnavailable: …` / `SignatureValidationFailed: …`.
        if s.starts_with("image pull failed for ") {
            if let Some((_, r)) = s
                .split_once(" because the ")
                .and_then(|(_, r)| r.split_once(": "))
            {
                s = r;
            }
        }
        for (open, close) in [
            ("initializing source docker://", ": "),
            ("Error parsing image name \"docker://", "\": "),
        ] {
            if let Some(r) = s.strip_prefix(open) {
                if let Some((reference, rest)) = r.split_once(close) {
                    if !reference.contains(' ') {
                        s = rest;
                    }
                }
            }
        }
        if s == before {
            return s;
        }
    }
}

fn split_anchored(body: &str, anchors: &[&str]) -> Option<Vec<AttemptError>> {
    let (primary, mirrors) = anchors.split_last()?;
    let mut out = Vec::with_capacity(anchors.len());
    let first = format!("[{}: ", mirrors.first()?);
    let mut start = body.strip_prefix(first.as_str()).map(|_| first.len())?;
    for (i, m) in mirrors.iter().enumerate() {
        let next = match mirrors.get(i + 1) {
            Some(n) => format!("]\n[{n}: "),
            None => format!("]): {primary}: "),
        };
        let rel = body.get(start..)?.find(next.as_str())?;
        out.push(attempt(Some((*m).to_owned()), &body[start..start + rel]));
        start += rel + next.len();
    }
    out.push(attempt(Some((*primary).to_owned()), body.get(start..)?));
    Some(out)
}

/// Longer than any reference containers/image accepts (host ≤ 255, name ≤ 255 after the host,
/// tag ≤ 128, digest ~71); bounding the search keeps adversarial text linear.
const MAX_REF: usize = 1024;

/// `ref: ` at the start of `s`, where a ref has no whitespace.
fn leading_ref(s: &str) -> Option<(&str, usize)> {
    let mut cut = s.len().min(MAX_REF + 2);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let end = s[..cut].find(": ")?;
    let r = &s[..end];
    if r.is_empty() || r.contains(char::is_whitespace) || r.contains(['[', ']', '(', ')']) {
        return None;
    }
    Some((r, end + 2))
}

fn split_structural(body: &str) -> Option<Vec<AttemptError>> {
    let mut out = Vec::new();
    let mut rest = body.strip_prefix('[')?;
    loop {
        let (reference, used) = leading_ref(rest)?;
        rest = &rest[used..];
        // The item ends at the first `]` followed by the next item or by the primary part.
        let mut search = 0;
        loop {
            let close = search + rest.get(search..)?.find(']')?;
            let after = &rest[close + 1..];
            if let Some(next) = after.strip_prefix("\n[") {
                if leading_ref(next).is_some() {
                    out.push(attempt(Some(reference.to_owned()), &rest[..close]));
                    rest = next;
                    break;
                }
            }
            if let Some(tail) = after.strip_prefix("): ") {
                if let Some((primary, used)) = leading_ref(tail) {
                    out.push(attempt(Some(reference.to_owned()), &rest[..close]));
                    out.push(attempt(Some(primary.to_owned()), &tail[used..]));
                    return Some(out);
                }
            }
            search = close + 1;
        }
    }
}

/// Classifies one location's error text (containers/image `docker/errors.go` and `docker/docker_client.go`).
pub fn classify_error(error: &str) -> ErrorClass {
    let has = |needle: &str| error.contains(needle);
    if has(" is blocked in ") {
        ErrorClass::Blocked
    } else if has("Source image rejected: ")
        || has("SignatureValidationFailed")
        || has("A signature was required, but no signature exists")
        || has("None of the signatures were accepted")
    {
        // `copy` wraps every policy.json refusal in "Source image rejected: %w" (a `reject`
        // requirement, a missing or unaccepted signature); CRI-O's gRPC error names the CRI
        // reason. Checked before the transport classes: a signature that could not be fetched
        // is still a signature failure of the pull.
        ErrorClass::Signature
    } else if has("manifest unknown") || has("name unknown") || has("MANIFEST_UNKNOWN") {
        ErrorClass::ManifestUnknown
    } else if has("blob unknown") || has("BLOB_UNKNOWN") {
        ErrorClass::BlobUnknown
    } else if has("denied") {
        ErrorClass::Denied
    } else if has("unauthorized")
        || has("authentication required")
        || has("unable to retrieve auth token")
        || has("invalid username/password")
        || has("getting username and password")
    {
        ErrorClass::Unauthorized
    } else if has("TLS handshake timeout") {
        ErrorClass::Timeout
    } else if has("x509: ")
        || has("tls: ")
        || has("server gave HTTP response to HTTPS client")
        || has("certificate")
    {
        ErrorClass::Tls
    } else if has("connection refused") {
        ErrorClass::ConnectionRefused
    } else if has("no such host") || has("dial tcp: lookup ") || has("server misbehaving") {
        ErrorClass::Dns
    } else if has("i/o timeout") || has("timeout") || has("timed out") || has("deadline exceeded") {
        ErrorClass::Timeout
    } else if has("received unexpected HTTP status")
        || has("invalid status code from registry")
        || has("StatusCode: ")
        || has("too many requests")
        || has("toomanyrequests")
        || has("Requesting bearer token")
    {
        ErrorClass::Http
    } else {
        ErrorClass::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCKED: &str =
        "registry 127.0.0.1:5001 is blocked in /x/registries.conf or /x/registries.conf.d";

    #[test]
    fn classes() {
        let cases = [
            (BLOCKED, ErrorClass::Blocked),
            ("registry q.io/ns is blocked in one of /a, /b, /c", ErrorClass::Blocked),
            ("reading manifest 2 in h/r: manifest unknown: manifest unknown", ErrorClass::ManifestUnknown),
            ("reading manifest 1 in h/ns/r: manifest unknown", ErrorClass::ManifestUnknown),
            ("reading manifest 1 in h/foo: name unknown: repository name not known to registry", ErrorClass::ManifestUnknown),
            ("reading manifest 1 in h/r: received unexpected HTTP status: 503 Service Unavailable", ErrorClass::Http),
            ("reading manifest 1 in h/r: toomanyrequests: slow down", ErrorClass::Http),
            ("too many requests to registry", ErrorClass::Http),
            ("reading manifest 1 in h/r: unauthorized: authentication required", ErrorClass::Unauthorized),
            ("reading manifest t in quay.io/r: unauthorized: access to the requested resource is not authorized", ErrorClass::Unauthorized),
            ("reading manifest 1 in h/r: denied: requested access to the resource is denied", ErrorClass::Denied),
            ("reading manifest 3.2.0 in docker.io/acme/x: requested access to the resource is denied", ErrorClass::Denied),
            ("Requesting bearer token: invalid status code from registry 404 (Not Found)", ErrorClass::Http),
            ("Requesting bearer token: received unexpected HTTP status: 404 Not Found", ErrorClass::Http),
            ("unable to retrieve auth token: invalid username/password: unauthorized: x", ErrorClass::Unauthorized),
            ("pinging container registry h: invalid status code from registry 404 (Not Found)", ErrorClass::Http),
            ("pinging container registry h: StatusCode: 404, \"<html>...\"", ErrorClass::Http),
            ("pinging container registry h: Get \"http://h/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused", ErrorClass::ConnectionRefused),
            ("pinging container registry h: Get \"https://h/v2/\": x509: certificate signed by unknown authority", ErrorClass::Tls),
            ("pinging container registry h: Get \"https://h/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority", ErrorClass::Tls),
            ("pinging container registry h: Get \"https://h/v2/\": http: server gave HTTP response to HTTPS client", ErrorClass::Tls),
            ("pinging container registry h: Get \"https://h/v2/\": dial tcp: lookup h on 10.0.0.1:53: no such host", ErrorClass::Dns),
            ("pinging container registry h: Get \"https://h/v2/\": dial tcp 10.1.1.1:443: i/o timeout", ErrorClass::Timeout),
            ("pinging container registry h: Get \"https://h/v2/\": net/http: TLS handshake timeout", ErrorClass::Timeout),
            ("getting username and password: bad helper", ErrorClass::Unauthorized),
            ("writing blob: disk full", ErrorClass::Other),
            ("Source image rejected: A signature was required, but no signature exists", ErrorClass::Signature),
            ("Source image rejected: Running image docker://q.io/a/b:1 is rejected by policy.", ErrorClass::Signature),
            ("SignatureValidationFailed: Source image rejected: Signature for identity q.io/a/b is not accepted", ErrorClass::Signature),
            ("Source image rejected: None of the signatures were accepted, reasons: x; y", ErrorClass::Signature),
        ];
        for (text, class) in cases {
            assert_eq!(classify_error(text), class, "{text}");
        }
    }

    #[test]
    fn single_location_is_the_last_anchor() {
        let v = split_error(
            &format!("rpc error: code = Unknown desc = initializing source docker://127.0.0.1:5001/library/tiny:1: {BLOCKED}"),
            &["127.0.0.1:5001/library/tiny:1"],
        );
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].reference.as_deref(),
            Some("127.0.0.1:5001/library/tiny:1")
        );
        assert_eq!(v[0].error, BLOCKED);
        assert_eq!(v[0].class, ErrorClass::Blocked);
    }

    #[test]
    fn aggregated_with_hostile_item_text() {
        // The first item's error contains `]`, `: ` and a newline followed by `[`.
        let m1 = "m1.example/a/b:1";
        let m2 = "m2.example/a/b:1";
        let src = "src.example/a/b:1";
        let e1 = "weird ]: body\n[not: an item]";
        let text = format!(
            "unable to pull image or OCI artifact: pull image err: initializing source docker://src.example/a/b:1: (Mirrors also failed: [{m1}: {e1}]\n[{m2}: reading manifest 1 in m2.example/a/b: manifest unknown]): {src}: {BLOCKED}; artifact err: get manifest: build image source: same again"
        );
        let v = split_error(&text, &[m1, m2, src]);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].error, e1);
        assert_eq!(v[1].class, ErrorClass::ManifestUnknown);
        assert_eq!(v[2].reference.as_deref(), Some(src));
        assert_eq!(v[2].class, ErrorClass::Blocked);
    }

    #[test]
    fn structural_fallback_without_anchors() {
        let text = "Error: (Mirrors also failed: [127.0.0.1:5003/library/tiny:3: reading manifest 3 in 127.0.0.1:5003/library/tiny: manifest unknown: manifest unknown]\n[127.0.0.1:5002/library/tiny:3: x]y]): 127.0.0.1:5001/library/tiny:3: pinging container registry 127.0.0.1:5001: Get \"http://127.0.0.1:5001/v2/\": dial tcp 127.0.0.1:5001: connect: connection refused";
        let v = split_error(text, &[]);
        let refs: Vec<_> = v.iter().map(|a| a.reference.clone().unwrap()).collect();
        assert_eq!(
            refs,
            [
                "127.0.0.1:5003/library/tiny:3",
                "127.0.0.1:5002/library/tiny:3",
                "127.0.0.1:5001/library/tiny:3"
            ]
        );
        assert_eq!(v[1].error, "x]y");
        assert_eq!(v[2].class, ErrorClass::ConnectionRefused);
        // Wrong anchors fall back to the structural split too.
        assert_eq!(split_error(text, &["a", "b"]), v);
    }

    #[test]
    fn wrappers() {
        assert_eq!(strip_wrappers("RegistryUnavailable: unable to pull image: initializing source docker://x/y:1: boom"), "boom");
        assert_eq!(
            strip_wrappers("Error parsing image name \"docker://h/r:2\": boom"),
            "boom"
        );
        assert_eq!(strip_wrappers("unable to try pulling possible OCI artifact: get manifest: build image source: boom"), "boom");
        assert_eq!(
            strip_wrappers("image pull failed for x/y:1 because the registry is unavailable: boom"),
            "boom"
        );
    }
}
