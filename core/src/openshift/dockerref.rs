//! Just enough of containers/image `docker/reference` for MCO's payload check: `ParseNamed`
//! (canonical references only), `Name()` and `String()`.

use super::patterns;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedRef {
    /// `domain/path`.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl NamedRef {
    /// `reference.Named.String()`.
    pub(crate) fn string(&self) -> String {
        let mut s = self.name.clone();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
}

fn is_domain(d: &str) -> bool {
    let (host, port) = match d.rfind(':') {
        Some(i) => (&d[..i], Some(&d[i + 1..])),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(is_domain_component)
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(&b[0])
        && b.iter().all(|c| word(c) || *c == b'.' || *c == b'-')
}

/// Digest grammar plus go-digest validation of the algorithms it knows.
fn is_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == want
        && hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// `reference.ParseNamed`: the string must already be canonical (`domain/path[:tag][@digest]`,
/// with `docker.io/library/…` spelled out).
pub(crate) fn parse_named(s: &str) -> Result<NamedRef, String> {
    let invalid = || Err(format!("invalid reference format: {s:?}"));
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        if !is_digest(d) {
            return invalid();
        }
    }
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(i) if last_slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        if !is_tag(t) {
            return invalid();
        }
    }
    if name.len() > 255 {
        return Err("repository name must not be more than 255 characters".into());
    }
    let Some((domain, path)) = name.split_once('/') else {
        return Err("repository name must be canonical".into());
    };
    let looks_like_domain =
        domain.contains(['.', ':']) || domain == "localhost" || domain.to_lowercase() != domain;
    if !looks_like_domain || !is_domain(domain) {
        return Err("repository name must be canonical".into());
    }
    if !path
        .split('/')
        .all(|c| patterns::matches_mirror_pattern(&format!("h/{c}")))
    {
        return invalid();
    }
    if domain == "index.docker.io" || (domain == "docker.io" && !path.contains('/')) {
        return Err("repository name must be canonical".into());
    }
    Ok(NamedRef {
        name: name.to_string(),
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_references() {
        let d = format!("sha256:{}", "0".repeat(64));
        let r = parse_named(&format!("quay.io/openshift-release-dev/ocp-release@{d}")).unwrap();
        assert_eq!(r.name, "quay.io/openshift-release-dev/ocp-release");
        assert!(r.tag.is_none());
        let r = parse_named("localhost:5000/a/b:4.19.0").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_deref()),
            ("localhost:5000/a/b", Some("4.19.0"))
        );
        for bad in [
            "ubuntu",
            "docker.io/ubuntu",
            "index.docker.io/library/x",
            "quay.io/A/b",
            "quay.io/x@sha256:12",
            "",
            "quay.io/x:",
            "quay.io/x::1",
        ] {
            assert!(parse_named(bad).is_err(), "{bad}");
        }
    }
}
