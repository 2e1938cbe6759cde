//! `[aliases]` validation (short-name aliases).

use std::collections::BTreeMap;

use super::model::AliasValue;
use crate::cimage_version::CImageVersion;
use crate::go::quote;
use crate::reference::ImageReference;

fn looks_like_registry(domain: &str) -> bool {
    domain.contains(['.', ':']) || domain == "localhost"
}

fn validate_short_name(name: &str) -> Result<(), String> {
    let r = ImageReference::parse_unnormalized(name)
        .map_err(|e| format!("cannot parse short name: {}: {e}", quote(name)))?;
    if r.digest().is_some() {
        return Err(format!(
            "invalid short name {}: must not contain digest",
            quote(name)
        ));
    }
    if r.tag().is_some() {
        return Err(format!(
            "invalid short name {}: must not contain tag",
            quote(name)
        ));
    }
    if looks_like_registry(r.domain()) {
        return Err(format!(
            "invalid short name {}: must not contain registry",
            quote(name)
        ));
    }
    Ok(())
}

fn parse_alias_value(alias: &str) -> Result<String, String> {
    let r = ImageReference::parse_unnormalized(alias)
        .map_err(|e| format!("parsing alias {}: {e}", quote(alias)))?;
    if r.digest().is_some() {
        return Err(format!(
            "invalid alias {}: must not contain digest",
            quote(alias)
        ));
    }
    if r.tag().is_some() {
        return Err(format!(
            "invalid alias {}: must not contain tag",
            quote(alias)
        ));
    }
    if !looks_like_registry(r.domain()) {
        return Err(format!(
            "invalid alias {}: must contain registry and repository",
            quote(alias)
        ));
    }
    ImageReference::parse_normalized(alias)
        .map(|n| n.name().to_string())
        .map_err(|e| e.to_string())
}

/// Validates every alias of one file. All errors are reported together; containers/image lists
/// them in Go map order (random), we list them by name so the text is stable.
pub(crate) fn validate_aliases(
    aliases: &BTreeMap<String, String>,
    path: &str,
    version: CImageVersion,
) -> Result<BTreeMap<String, AliasValue>, String> {
    let mut errs = Vec::new();
    let mut out = BTreeMap::new();
    for (name, value) in aliases {
        if let Err(e) = validate_short_name(name) {
            errs.push(e);
        }
        if value.is_empty() {
            out.insert(
                name.clone(),
                AliasValue {
                    target: None,
                    file: path.to_string(),
                },
            );
            continue;
        }
        match parse_alias_value(value) {
            Ok(target) => {
                out.insert(
                    name.clone(),
                    AliasValue {
                        target: Some(target),
                        file: path.to_string(),
                    },
                );
            }
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        return Ok(out);
    }
    if version.at_least(CImageVersion::V5_31) {
        Err(errs.join("\n"))
    } else {
        // Older releases wrapped each error around the previous ones.
        let mut it = errs.into_iter();
        let first = it.next().unwrap_or_default();
        Err(it.fold(first, |acc, e| format!("{e}\n: {acc}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<Option<String>, String> {
        let m = BTreeMap::from([(name.to_string(), value.to_string())]);
        validate_aliases(&m, "f", CImageVersion::LATEST)
            .map(|m| m.get(name).and_then(|v| v.target.clone()))
    }

    #[test]
    fn normalises_targets() {
        assert_eq!(
            one("alpine", "docker.io/alpine"),
            Ok(Some("docker.io/library/alpine".into()))
        );
        assert_eq!(
            one("foo/bar", "quay.io/foo/bar"),
            Ok(Some("quay.io/foo/bar".into()))
        );
        assert_eq!(one("gone", ""), Ok(None));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            one("quay.io/x", "quay.io/x"),
            Err("invalid short name \"quay.io/x\": must not contain registry".into())
        );
        assert_eq!(
            one("x:1", "quay.io/x"),
            Err("invalid short name \"x:1\": must not contain tag".into())
        );
        assert_eq!(
            one("x", "quay.io/x:1"),
            Err("invalid alias \"quay.io/x:1\": must not contain tag".into())
        );
        assert_eq!(
            one("x", "foo/x"),
            Err("invalid alias \"foo/x\": must contain registry and repository".into())
        );
        assert_eq!(
            one("x", "Quay.io/X"),
            Err("parsing alias \"Quay.io/X\": repository name must be lowercase".into())
        );
        assert_eq!(
            one("X", "quay.io/x"),
            Err("cannot parse short name: \"X\": repository name must be lowercase".into())
        );
    }

    #[test]
    fn joins_all_errors() {
        let m = BTreeMap::from([
            ("a:1".to_string(), "quay.io/a".to_string()),
            ("b".to_string(), "b".to_string()),
        ]);
        assert_eq!(
            validate_aliases(&m, "f", CImageVersion::LATEST),
            Err("invalid short name \"a:1\": must not contain tag\ninvalid alias \"b\": must contain registry and repository".into())
        );
        assert_eq!(
            validate_aliases(&m, "f", CImageVersion::V5_23),
            Err("invalid alias \"b\": must contain registry and repository\n: invalid short name \"a:1\": must not contain tag".into())
        );
    }
}
