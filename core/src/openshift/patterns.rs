//! The string rules of openshift/api (CRD patterns, `format: hostname`) and of runtime-utils
//! (`IsValidRegistriesConfScope`, `ScopeIsNestedInsideScope`), written out by hand so that they
//! behave exactly like the Go regular expressions they replace.

/// The CRD pattern of `ImageDigestMirrorSet`/`ImageTagMirrorSet` `source` (MCO's `sourceRegex`):
/// a `*.host` wildcard, or `host[:port][/path]`.
pub const SOURCE_PATTERN: &str = r"^\*(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$|^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$";

/// The CRD pattern of a mirror (MCO's `mirrorRegex`): `host[:port][/path]`.
pub const MIRROR_PATTERN: &str = r"^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$";

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_label(l: &str) -> bool {
    let b = l.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(e)) => {
            f.is_ascii_alphanumeric()
                && e.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// `[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?`: lower-case alphanumeric runs joined by `.`,
/// `_`, `__` or any run of `-`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|x| *x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// The host part: `LABEL(\.LABEL)*(:[0-9]+)?`.
fn is_host_port(h: &str) -> bool {
    let (host, port) = match h.find(':') {
        Some(i) => (&h[..i], Some(&h[i + 1..])),
        None => (h, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(is_label)
}

/// Matches [`MIRROR_PATTERN`].
pub fn matches_mirror_pattern(s: &str) -> bool {
    let (host, path) = match s.find('/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if !is_host_port(host) {
        return false;
    }
    match path {
        None => true,
        Some(p) => p.split('/').all(is_path_component),
    }
}

/// Matches [`SOURCE_PATTERN`].
pub fn matches_source_pattern(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("*.") {
        return rest.split('.').all(is_label);
    }
    matches_mirror_pattern(s)
}

/// Kubernetes' `format: hostname` (kube-openapi `strfmt.IsHostname`), ASCII letters plus any
/// non-ASCII letter; symbols are not modelled.
pub fn is_openapi_hostname(s: &str) -> bool {
    if s.len() > 255 || s.split('.').any(|p| p.len() > 63) {
        return false;
    }
    let ch = |c: char| c.is_ascii_alphanumeric() || (!c.is_ascii() && c.is_alphabetic());
    let chars: Vec<char> = s.chars().collect();
    // Alternative 1: one label, `X(-?X{0,62})?`.
    let single = || {
        if chars.is_empty() || !ch(chars[0]) {
            return false;
        }
        let mut rest = &chars[1..];
        if rest.first() == Some(&'-') {
            rest = &rest[1..];
            if rest.is_empty() {
                return false;
            }
        }
        rest.len() <= 62 && rest.iter().all(|c| ch(*c))
    };
    // Alternative 2: `(X(([X-]{0,61}X)?)\.)+[a-zA-Z\p{L}]{2,63}`.
    let dotted = || {
        let parts: Vec<&[char]> = chars.split(|c| *c == '.').collect();
        let Some((tld, labels)) = parts.split_last() else {
            return false;
        };
        if labels.is_empty() {
            return false;
        }
        let tld_ok = (2..=63).contains(&tld.len()) && tld.iter().all(|c| c.is_alphabetic());
        tld_ok
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && ch(l[0])
                    && ch(l[l.len() - 1])
                    && l.iter().all(|c| ch(*c) || *c == '-')
            })
    };
    single() || dotted()
}

/// runtime-utils `IsValidRegistriesConfScope`.
pub fn is_valid_registries_conf_scope(scope: &str) -> bool {
    if scope.is_empty() {
        return false;
    }
    if !scope.contains('*') {
        return true;
    }
    scope.starts_with("*.") && !scope[2..].contains(['/', '@', ':', '*'])
}

/// runtime-utils `ScopeIsNestedInsideScope(subScope, superScope)`.
pub fn scope_is_nested_inside_scope(sub: &str, sup: &str) -> bool {
    if sub == sup {
        return true;
    }
    if sub.len() > sup.len() && sub.starts_with(sup) && sub.as_bytes()[sup.len()] == b'/' {
        return true;
    }
    if let Some(suffix) = sup.strip_prefix('*') {
        if sup.starts_with("*.") {
            if sub.contains(':') {
                let first = sub.split(':').next().unwrap_or("");
                return first.ends_with(suffix) && !first.contains('/');
            }
            let first = sub.split('/').next().unwrap_or("");
            return first.ends_with(suffix);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_table_2_2() {
        for ok in [
            "quay.io",
            "quay.io/ns/repo",
            "quay.io:8443/ns",
            "10.0.0.1:5000/x",
            "localhost:5000",
            "Quay.IO/ns",
            "registry-1.docker.io/v2/gogs",
            "a/b__c/d---e/f.g/h_i",
        ] {
            assert!(matches_source_pattern(ok), "{ok}");
            assert!(matches_mirror_pattern(ok), "{ok}");
        }
        for bad in [
            "quay.io/ns/Repo",
            "quay.io/ns/a.-b",
            "quay.io/ns/a___b",
            "quay.io//ns",
            "quay.io/",
            "quay.io/ns/repo:latest",
            "quay.io/ns/repo@sha256:abc",
            "http://quay.io",
            "[::1]:5000/x",
            "my_host.io",
            "-bad.io",
            "*.quay.io/ns",
            "*.quay.io:443",
            "*",
            "",
            "quay.io:",
            "a..b",
            "quay.io/a_-b",
            "quay.io/_a",
        ] {
            assert!(!matches_source_pattern(bad), "{bad}");
            assert!(!matches_mirror_pattern(bad), "{bad}");
        }
        for wild in ["*.quay.io", "*.io"] {
            assert!(matches_source_pattern(wild));
            assert!(!matches_mirror_pattern(wild));
        }
    }

    #[test]
    fn nested_scopes() {
        assert!(scope_is_nested_inside_scope("a.d", "*.d"));
        assert!(scope_is_nested_inside_scope("x.a.d:5000/ns", "*.d"));
        assert!(scope_is_nested_inside_scope("*.a.d", "*.d"));
        assert!(!scope_is_nested_inside_scope("d", "*.d"));
        assert!(!scope_is_nested_inside_scope("quay/bar.foo:400", "*.foo"));
        assert!(scope_is_nested_inside_scope("quay.io/ns", "quay.io"));
        assert!(!scope_is_nested_inside_scope("quay.io2", "quay.io"));
        assert!(scope_is_nested_inside_scope("quay.io", "quay.io"));
    }

    #[test]
    fn registries_conf_scopes() {
        assert!(is_valid_registries_conf_scope("quay.io:5000/ns"));
        assert!(is_valid_registries_conf_scope("*.lab.example"));
        for bad in ["", "*", "*.x/y", "*.x:1", "a*b", "*.x*"] {
            assert!(!is_valid_registries_conf_scope(bad), "{bad}");
        }
    }

    #[test]
    fn hostname_format() {
        for ok in [
            "docker.io",
            "registry.redhat.io",
            "localhost",
            "mirror.corp.example",
            "a-b.example.com",
        ] {
            assert!(is_openapi_hostname(ok), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "host:5000",
            "quay.io/ns",
            "",
            "-a.com",
            "a.c",
            "a.b1",
        ] {
            assert!(!is_openapi_hostname(bad), "{bad}");
        }
    }
}
