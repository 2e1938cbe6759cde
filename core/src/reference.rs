//! Docker image references, parsed and normalised the way containers/image's docker transport does
//! (`reference.ParseNormalizedNamed`, `ParseNamed`, `TagNameOnly`), with the same error texts.
//!
//! The grammar is matched by hand instead of with regular expressions: the agent resolves every
//! pull it sees, and the grammar is small enough that a direct scanner is both faster and easier
//! to fuzz.

use std::fmt;

/// Longest repository name containers/image accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// Why a reference was rejected; `Display` gives containers/image's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("repository name must be lowercase")]
    ContainsUppercase,
    #[error("invalid reference format: repository name must be lowercase")]
    NormalizedContainsUppercase,
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    #[error("repository name must be canonical")]
    NotCanonical,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    #[error("Docker references with both a tag and digest are currently not supported")]
    TagAndDigest,
}

/// A parsed reference: `domain/path[:tag][@digest]`.
///
/// Only values that passed the grammar exist, so accessors never fail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    full: String,
    domain_end: usize,
    name_end: usize,
    tag: Option<(usize, usize)>,
    digest_start: Option<usize>,
}

impl ImageReference {
    /// `reference.ParseNormalizedNamed`: applies the docker.io defaults (`library/`, `index.docker.io`).
    pub fn parse_normalized(s: &str) -> Result<Self, ReferenceError> {
        if is_hex_identifier(s) {
            return Err(ReferenceError::HexIdentifier(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => remainder,
        };
        if remote_name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::NormalizedContainsUppercase);
        }
        let mut joined =
            String::with_capacity(domain.len() + 1 + OFFICIAL_REPO_PREFIX.len() + remainder.len());
        joined.push_str(domain);
        joined.push('/');
        if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            joined.push_str(OFFICIAL_REPO_PREFIX);
        }
        joined.push_str(remainder);
        Self::parse(joined)
    }

    /// `reference.ParseNamed`: the input must already be in canonical (normalised) form.
    pub fn parse_canonical(s: &str) -> Result<Self, ReferenceError> {
        let r = Self::parse_normalized(s)?;
        if r.full != s {
            return Err(ReferenceError::NotCanonical);
        }
        Ok(r)
    }

    /// What the docker transport does with `docker://REF`: normalise, add `:latest` when neither a
    /// tag nor a digest is given, and reject a tag together with a digest.
    pub fn parse_docker(s: &str) -> Result<Self, ReferenceError> {
        let r = Self::parse_normalized(s)?.with_default_tag();
        if r.tag.is_some() && r.digest_start.is_some() {
            return Err(ReferenceError::TagAndDigest);
        }
        Ok(r)
    }

    /// `reference.Parse`: no normalisation; the domain is empty when the first component cannot be
    /// one. Used where containers/image validates user-written names (short-name aliases).
    pub fn parse_unnormalized(s: &str) -> Result<Self, ReferenceError> {
        Self::parse(s.to_string())
    }

    /// `reference.Parse` on an already-joined string.
    fn parse(s: String) -> Result<Self, ReferenceError> {
        let Some(m) = match_reference(&s) else {
            if s.is_empty() {
                return Err(ReferenceError::NameEmpty);
            }
            if s.bytes().any(|b| b.is_ascii_uppercase())
                && match_reference(&s.to_ascii_lowercase()).is_some()
            {
                return Err(ReferenceError::ContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        if m.name_end > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        if let Some(start) = m.digest_start {
            validate_digest(&s[start..])?;
        }
        Ok(Self {
            full: s,
            domain_end: m.domain_end,
            name_end: m.name_end,
            tag: m.tag,
            digest_start: m.digest_start,
        })
    }

    /// `TagNameOnly`: adds `:latest` when the reference has neither tag nor digest.
    pub fn with_default_tag(self) -> Self {
        if self.tag.is_some() || self.digest_start.is_some() {
            return self;
        }
        let start = self.full.len() + 1;
        let mut full = self.full;
        full.push(':');
        full.push_str(DEFAULT_TAG);
        Self {
            tag: Some((start, full.len())),
            full,
            ..self
        }
    }

    /// The repository name, `domain/path`, without tag or digest.
    pub fn name(&self) -> &str {
        &self.full[..self.name_end]
    }

    /// The registry host (and port).
    pub fn domain(&self) -> &str {
        &self.full[..self.domain_end]
    }

    /// The repository path inside the registry.
    pub fn path(&self) -> &str {
        self.full
            .get(self.domain_end + 1..self.name_end)
            .unwrap_or("")
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.map(|(a, b)| &self.full[a..b])
    }

    /// `algorithm:hex`, when the reference is pinned by digest.
    pub fn digest(&self) -> Option<&str> {
        self.digest_start.map(|s| &self.full[s..])
    }

    /// The whole reference, as containers/image prints it.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// True when `input` is a short name: its first component cannot be a registry host.
pub fn is_short_name(input: &str) -> bool {
    match input.find('/') {
        None => true,
        Some(i) => {
            let first = &input[..i];
            !first.contains(['.', ':']) && first != "localhost"
        }
    }
}

/// `splitDockerDomain` without the `library/` insertion, which the caller does while joining.
fn split_docker_domain(name: &str) -> (&str, &str) {
    let (domain, remainder) = match name.find('/') {
        Some(i) if name[..i].contains(['.', ':']) || &name[..i] == "localhost" => {
            (&name[..i], &name[i + 1..])
        }
        _ => (DEFAULT_DOMAIN, name),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, remainder)
    } else {
        (domain, remainder)
    }
}

fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9'))
}

/// Byte offsets of a grammar match.
struct Match {
    domain_end: usize,
    name_end: usize,
    tag: Option<(usize, usize)>,
    digest_start: Option<usize>,
}

/// Matches `ReferenceRegexp` anchored: `name(:tag)?(@digest)?`, where
/// `name = (domain/)?component(/component)*`.
///
/// The split is unambiguous: `@` occurs only before the digest, and a `:` after the last `/`
/// can only start a tag (a port must be followed by `/`).
fn match_reference(s: &str) -> Option<Match> {
    let (name_tag, digest_start) = match s.find('@') {
        Some(i) => {
            if !is_digest_pattern(&s[i + 1..]) {
                return None;
            }
            (&s[..i], Some(i + 1))
        }
        None => (s, None),
    };
    let last_slash = name_tag.rfind('/');
    let (name, tag) = match name_tag.rfind(':') {
        Some(c) if last_slash.is_none_or(|sl| c > sl) => {
            if !is_tag(&name_tag[c + 1..]) {
                return None;
            }
            (&name_tag[..c], Some((c + 1, name_tag.len())))
        }
        _ => (name_tag, None),
    };
    let domain_end = match_name(name)?;
    Some(Match {
        domain_end,
        name_end: name.len(),
        tag,
        digest_start,
    })
}

/// Returns the end of the domain part (0 when the name has none).
fn match_name(name: &str) -> Option<usize> {
    let (first, rest) = match name.find('/') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let rest_ok = rest.is_none_or(|r| r.split('/').all(is_path_component));
    if !rest_ok {
        return None;
    }
    // The regex prefers reading the first component as a domain whenever a path follows.
    if rest.is_some() && is_domain(first) {
        return Some(first.len());
    }
    if is_path_component(first) {
        return Some(0);
    }
    None
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host(.host)*(:port)?` with hostname labels of letters, digits and inner dashes.
///
/// One pass over the bytes: this runs for every source of every resolved pull.
pub(crate) fn is_domain(d: &str) -> bool {
    let b = d.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        if i == start || !b[start].is_ascii_alphanumeric() || !b[i - 1].is_ascii_alphanumeric() {
            return false;
        }
        match b.get(i) {
            None => return true,
            Some(b'.') => i += 1,
            Some(b':') => {
                let port = &b[i + 1..];
                return !port.is_empty() && port.iter().all(u8::is_ascii_digit);
            }
            Some(_) => return false,
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
fn is_digest_pattern(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let b = alg.as_bytes();
    let mut i = 0;
    loop {
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            return false;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        if !matches!(b[i], b'-' | b'_' | b'+' | b'.') {
            return false;
        }
        i += 1;
    }
}

/// go-digest's `Digest.Validate` for a string that already matched the digest pattern.
fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(ReferenceError::DigestInvalidFormat);
    };
    if alg.is_empty() || hex.is_empty() {
        return Err(ReferenceError::DigestInvalidFormat);
    }
    let size = match alg {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return Err(ReferenceError::DigestUnsupported),
    };
    if hex.len() != size * 2 {
        return Err(ReferenceError::DigestInvalidLength);
    }
    if !hex.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
        return Err(ReferenceError::DigestInvalidFormat);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        ImageReference::parse_docker(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn docker_hub_normalisation() {
        for s in [
            "busybox",
            "library/busybox",
            "docker.io/busybox",
            "index.docker.io/busybox",
            "docker.io/library/busybox:latest",
        ] {
            assert_eq!(norm(s), "docker.io/library/busybox:latest", "{s}");
        }
        assert_eq!(
            norm("registry-1.docker.io/busybox"),
            "registry-1.docker.io/busybox:latest"
        );
        assert_eq!(
            norm("mpioperator/mpi-operator:0.6"),
            "docker.io/mpioperator/mpi-operator:0.6"
        );
        assert_eq!(norm("localhost/foo"), "localhost/foo:latest");
        assert_eq!(norm("localhost:5000/foo/bar:1"), "localhost:5000/foo/bar:1");
        assert_eq!(norm("foo/bar/baz"), "docker.io/foo/bar/baz:latest");
    }

    #[test]
    fn parts() {
        let r = ImageReference::parse_docker("quay.io:443/ns/app:v1.2").unwrap();
        assert_eq!(r.domain(), "quay.io:443");
        assert_eq!(r.path(), "ns/app");
        assert_eq!(r.name(), "quay.io:443/ns/app");
        assert_eq!(r.tag(), Some("v1.2"));
        assert_eq!(r.digest(), None);
        let r = ImageReference::parse_docker(&format!("quay.io/ns/app@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.to_string(), format!("quay.io/ns/app@{D}"));
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            norm(&format!("nginx:1@{D}")),
            "ERR Docker references with both a tag and digest are currently not supported"
        );
        assert_eq!(
            norm("Nginx"),
            "ERR invalid reference format: repository name must be lowercase"
        );
        assert_eq!(
            norm("quay.io/NS/app"),
            "ERR invalid reference format: repository name must be lowercase"
        );
        assert_eq!(norm("quay.io/ns/app:"), "ERR invalid reference format");
        assert_eq!(norm(""), "ERR invalid reference format");
        assert_eq!(norm("a//b"), "ERR invalid reference format");
        assert_eq!(
            norm("quay.io/ns/app@sha256:abc"),
            "ERR invalid reference format"
        );
        assert_eq!(
            norm("quay.io/ns/app@sha256:0123456789abcdef0123456789abcdef"),
            "ERR invalid checksum digest length"
        );
        assert_eq!(
            norm("quay.io/ns/app@md5:0123456789abcdef0123456789abcdef"),
            "ERR unsupported digest algorithm"
        );
        assert_eq!(
            norm(&format!(
                "quay.io/ns/app@{}",
                D.to_ascii_uppercase().replace("SHA", "sha")
            )),
            "ERR invalid checksum digest format"
        );
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            norm(hex),
            format!(
                "ERR invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings"
            )
        );
        let long = format!("quay.io/{}", "a".repeat(250));
        assert_eq!(
            norm(&long),
            "ERR repository name must not be more than 255 characters"
        );
        assert_eq!(
            norm("quay.io/ns/app:a-very-long-tag-"),
            "quay.io/ns/app:a-very-long-tag-"
        );
        assert_eq!(
            norm(&format!("quay.io/ns/app:{}", "t".repeat(129))),
            "ERR invalid reference format"
        );
    }

    #[test]
    fn uppercase_in_domain_is_allowed_but_not_in_path_after_port() {
        assert_eq!(norm("Quay.IO/ns/app"), "Quay.IO/ns/app:latest");
        // Uppercase hidden behind a tag-like colon reaches reference.Parse's own check.
        assert_eq!(
            ImageReference::parse_normalized("quay.io/ns/app:Tag")
                .unwrap()
                .tag(),
            Some("Tag")
        );
    }

    #[test]
    fn canonical() {
        assert!(ImageReference::parse_canonical("docker.io/library/tiny:1").is_ok());
        assert_eq!(
            ImageReference::parse_canonical("docker.io/tiny:1"),
            Err(ReferenceError::NotCanonical)
        );
        assert_eq!(
            ImageReference::parse_canonical("host//x:1"),
            Err(ReferenceError::InvalidFormat)
        );
    }

    #[test]
    fn path_components() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2-c3__d4"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "a._b", "A", "a.-b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn domains() {
        for ok in [
            "a",
            "a.b",
            "a-b.c",
            "A.B:5000",
            "127.0.0.1:5001",
            "localhost",
        ] {
            assert!(is_domain(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a:", "a:b", "a:1:2", "[::1]"] {
            assert!(!is_domain(bad), "{bad}");
        }
    }

    #[test]
    fn short_names() {
        assert!(is_short_name("nginx"));
        assert!(is_short_name("foo/bar"));
        assert!(!is_short_name("localhost/foo"));
        assert!(!is_short_name("quay.io/foo"));
        assert!(!is_short_name("host:5000/foo"));
    }
}
