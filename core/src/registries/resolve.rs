//! Reference -> ordered pull sources (`FindRegistry`, `PullSourcesFromReference`,
//! `rewriteReference`, and the per-attempt block check of `newDockerClient`).

use super::effective::EffectiveConfig;
use super::model::{PullFromMirror, Registry};
use crate::reference::{ImageReference, ReferenceError};

/// One location containers/image will try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    pub reference: ImageReference,
    /// False only for the last source, the matched entry's own location.
    pub mirror: bool,
    /// The endpoint's own `insecure` (it wins over the entry matching the mirror's host).
    pub insecure: bool,
    /// Prefix of the blocked entry that `FindRegistry` finds for this source's physical name.
    pub blocked_by: Option<String>,
}

impl PullSource {
    pub fn blocked(&self) -> bool {
        self.blocked_by.is_some()
    }
}

/// Why no source list could be built; the whole pull fails before any attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("invalid prefix '{prefix}' for reference '{reference}'")]
    InvalidPrefix { prefix: String, reference: String },
    #[error("invalid prefix '{0}' for empty location, should be in the format: *.example.com")]
    EmptyLocation(String),
    #[error("rewriting reference: {0}")]
    Rewrite(ReferenceError),
}

/// `refMatchingPrefix`: the length of `reference` the prefix covers, or `None`.
pub fn ref_matching_prefix(reference: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*').filter(|d| d.starts_with('.')) {
        return ref_matching_subdomain_prefix(reference, domain);
    }
    let rest = reference.strip_prefix(prefix)?;
    match rest.as_bytes().first() {
        None | Some(b':' | b'/' | b'@') => Some(prefix.len()),
        Some(_) => None,
    }
}

/// Wildcard matching looks only at the first occurrence of `.domain`, as containers/image does.
fn ref_matching_subdomain_prefix(reference: &str, dot_domain: &str) -> Option<usize> {
    let index = reference.find(dot_domain)?;
    if reference[..index].contains('/') {
        return None;
    }
    let end = index + dot_domain.len();
    match reference.as_bytes().get(end) {
        None | Some(b':' | b'/' | b'@') => Some(end),
        Some(_) => None,
    }
}

impl EffectiveConfig {
    /// `FindRegistry` on a repository name (no tag or digest): the matching entry with the
    /// longest prefix; ties go to the byte-smallest prefix.
    pub fn find_registry(&self, name: &str) -> Option<&Registry> {
        let idx = self.index();
        let mut best: Option<usize> = None;
        let consider = |i: usize, best: &mut Option<usize>| {
            let better = match *best {
                None => true,
                Some(b) => {
                    let (pi, pb) = (&self.registries[i].prefix, &self.registries[b].prefix);
                    pi.len() > pb.len() || (pi.len() == pb.len() && pi.as_bytes() < pb.as_bytes())
                }
            };
            if better {
                *best = Some(i);
            }
        };
        // Exact prefixes can only end where the name ends or before '/' or ':'.
        let bytes = name.as_bytes();
        for end in (0..=bytes.len()).rev() {
            let boundary = end == bytes.len() || matches!(bytes[end], b'/' | b':' | b'@');
            if boundary && idx.exact_lengths.may_contain(end) {
                if let Some(&i) = idx.exact.get(&name[..end]) {
                    consider(i, &mut best);
                    break;
                }
            }
        }
        if !idx.wildcard.is_empty() {
            // A wildcard can only match a suffix of the host name that starts at a dot.
            let host_end = name.find('/').unwrap_or(name.len());
            let hostname_end = name[..host_end].find(':').unwrap_or(host_end);
            let hostname = &name[..hostname_end];
            let dots = hostname.bytes().enumerate().filter(|&(_, b)| b == b'.');
            for (pos, _) in dots {
                if !idx.wildcard_lengths.may_contain(hostname.len() - pos) {
                    continue;
                }
                let suffix = &hostname[pos..];
                if let Some(&i) = idx.wildcard.get(suffix) {
                    // containers/image looks only at the first occurrence of ".domain"; an
                    // occurrence starts at a dot, so only earlier dots can hold one.
                    let earlier = hostname[..pos]
                        .bytes()
                        .enumerate()
                        .any(|(q, b)| b == b'.' && name[q..].starts_with(suffix));
                    if !earlier {
                        consider(i, &mut best);
                    }
                }
            }
        }
        best.map(|i| &self.registries[i])
    }

    /// `PullSourcesFromReference` plus the per-source block check. An unmatched reference gives
    /// one secure source, itself.
    pub fn pull_sources(
        &self,
        reference: &ImageReference,
    ) -> Result<Vec<PullSource>, ResolveError> {
        let Some(reg) = self.find_registry(reference.name()) else {
            return Ok(vec![PullSource {
                reference: reference.clone(),
                mirror: false,
                insecure: false,
                blocked_by: None,
            }]);
        };
        let digested = reference.digest().is_some();
        let mirrors = reg.mirrors.iter().filter(|m| {
            if reg.mirror_by_digest_only {
                return digested;
            }
            match m.usage() {
                PullFromMirror::All => true,
                PullFromMirror::DigestOnly => digested,
                PullFromMirror::TagOnly => !digested,
            }
        });
        let endpoints = mirrors
            .map(|m| (m.location.as_str(), m.insecure, true))
            .chain(std::iter::once((
                reg.location.as_str(),
                reg.insecure,
                false,
            )));
        let mut out = Vec::with_capacity(reg.mirrors.len() + 1);
        // Rewrite everything first: one bad rewrite fails the pull before any attempt.
        for (location, insecure, mirror) in endpoints {
            let rewritten = rewrite_reference(reference, &reg.prefix, location)?;
            out.push(PullSource {
                reference: rewritten,
                mirror,
                insecure,
                blocked_by: None,
            });
        }
        for s in &mut out {
            s.blocked_by = self
                .find_registry(s.reference.name())
                .filter(|r| r.blocked)
                .map(|r| r.prefix.clone());
        }
        Ok(out)
    }

    /// The text containers/image (<= image/v5.39) gives an attempt at a blocked source.
    pub fn blocked_message(&self, prefix: &str) -> String {
        let (path, dir) = &self.blocked_message_paths;
        format!("registry {prefix} is blocked in {path} or {dir}")
    }
}

/// `Endpoint.rewriteReference`: `location` + the rest of the reference after the prefix.
fn rewrite_reference(
    reference: &ImageReference,
    prefix: &str,
    location: &str,
) -> Result<ImageReference, ResolveError> {
    let full = reference.as_str();
    let Some(n) = ref_matching_prefix(full, prefix) else {
        return Err(ResolveError::InvalidPrefix {
            prefix: prefix.to_string(),
            reference: full.to_string(),
        });
    };
    if location.is_empty() {
        if !prefix.starts_with("*.") {
            return Err(ResolveError::EmptyLocation(prefix.to_string()));
        }
        return Ok(reference.clone());
    }
    let mut s = String::with_capacity(location.len() + full.len() - n);
    s.push_str(location);
    s.push_str(&full[n..]);
    ImageReference::parse_canonical(&s).map_err(ResolveError::Rewrite)
}

/// The journal correlator asks the configuration in force which locations a pull will try.
impl crate::journal::SourceResolver for EffectiveConfig {
    fn pull_sources(&self, image: &str) -> Option<Vec<String>> {
        let reference = match ImageReference::parse_docker(image) {
            Ok(r) => r,
            // CRI-O drops the tag of a tag+digest reference before calling containers/image.
            Err(ReferenceError::TagAndDigest) => {
                let r = ImageReference::parse_normalized(image).ok()?;
                ImageReference::parse_normalized(&format!("{}@{}", r.name(), r.digest()?)).ok()?
            }
            Err(_) => return None,
        };
        let sources = EffectiveConfig::pull_sources(self, &reference).ok()?;
        Some(
            sources
                .into_iter()
                .map(|s| s.reference.to_string())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_boundaries() {
        assert_eq!(
            ref_matching_prefix("example.com/foo/x", "example.com/foo"),
            Some(15)
        );
        assert_eq!(
            ref_matching_prefix("example.com/foo", "example.com/foo"),
            Some(15)
        );
        assert_eq!(
            ref_matching_prefix("example.com/foobar", "example.com/foo"),
            None
        );
        assert_eq!(
            ref_matching_prefix("example.com:5000/x", "example.com"),
            Some(11)
        );
        assert_eq!(ref_matching_prefix("host:50011/x", "host:5001"), None);
        assert_eq!(ref_matching_prefix("ex", "example.com"), None);
    }

    #[test]
    fn wildcard_matching() {
        assert_eq!(
            ref_matching_prefix("a.example.com/x", "*.example.com"),
            Some(13)
        );
        assert_eq!(
            ref_matching_prefix("a.b.example.com/x", "*.example.com"),
            Some(15)
        );
        assert_eq!(
            ref_matching_prefix("a.example.com:5000/x", "*.example.com"),
            Some(13)
        );
        assert_eq!(ref_matching_prefix("example.com/x", "*.example.com"), None);
        assert_eq!(
            ref_matching_prefix("a.example.com.evil.org/x", "*.example.com"),
            None
        );
        // Only the first occurrence counts.
        assert_eq!(
            ref_matching_prefix("x.example.com.example.com/y", "*.example.com"),
            None
        );
        assert_eq!(
            ref_matching_prefix("host/a.example.com", "*.example.com"),
            None
        );
        assert_eq!(
            ref_matching_prefix("127.0.0.1/library/tiny:2", "*.0.0.1"),
            Some(9)
        );
    }
}
