//! runtime-utils `EditRegistriesConfig`: mirror-set merging, `[[registry]]` entries, flags and
//! nested-scope propagation. Two generations: the current one (runtime-utils 7bdb5b9, OCP ≥ 4.13)
//! and the ICSP-only one (runtime-utils 3beb0b5, OCP ≤ 4.12).

use super::patterns::scope_is_nested_inside_scope;
use super::topo::TopoGraph;
use crate::go::quote;
use std::collections::BTreeMap;

/// `sysregistriesv2.Endpoint` (the fields MCO sets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub location: String,
    pub insecure: bool,
    pub pull_from_mirror: &'static str,
}

/// `sysregistriesv2.Registry` (the fields MCO sets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Registry {
    pub prefix: String,
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Endpoint>,
}

impl Registry {
    /// runtime-utils `registryScope`.
    pub(crate) fn scope(&self) -> &str {
        if self.prefix.is_empty() {
            &self.location
        } else {
            &self.prefix
        }
    }
}

pub(crate) const DIGEST_ONLY: &str = "digest-only";
pub(crate) const TAG_ONLY: &str = "tag-only";

/// One source after merging all its lists (`mergedMirrorSet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MergedSet {
    pub source: String,
    pub mirrors: Vec<String>,
    pub never_contact_source: bool,
}

/// `mirrorSets`: lists per source, plus which sources a surviving entry blocks.
#[derive(Default)]
pub(crate) struct MirrorSets {
    lists: BTreeMap<String, Vec<Vec<String>>>,
    block: BTreeMap<String, bool>,
}

impl MirrorSets {
    /// `addMirrorSet`: ignores (policy included) an entry whose mirrors are all the source.
    pub(crate) fn add(&mut self, source: &str, never_contact_source: bool, mirrors: &[String]) {
        if !mirrors.iter().any(|m| m != source) {
            return;
        }
        if never_contact_source {
            self.block.insert(source.to_string(), true);
        }
        self.lists
            .entry(source.to_string())
            .or_default()
            .push(mirrors.to_vec());
    }

    /// `mergedMirrorSets`: sources in `sort.Strings` order, each list merged topologically.
    pub(crate) fn merged(&self) -> Vec<MergedSet> {
        self.lists
            .iter()
            .map(|(source, lists)| MergedSet {
                source: source.clone(),
                mirrors: merged_mirrors(source, lists),
                never_contact_source: self.block.get(source).copied().unwrap_or(false),
            })
            .collect()
    }
}

/// `mergedMirrors`: edges along each list (and from its end to the source when the source is
/// not in it), sorted, with a trailing source dropped.
pub(crate) fn merged_mirrors(source: &str, lists: &[Vec<String>]) -> Vec<String> {
    let mut g = TopoGraph::default();
    for list in lists {
        for w in list.windows(2) {
            g.add_edge(&w[0], &w[1]);
        }
        if !list.iter().any(|m| m == source) {
            if let Some(last) = list.last() {
                g.add_edge(last, source);
            }
        }
    }
    let mut sorted = g.sorted();
    if sorted.last().map(String::as_str) == Some(source) {
        sorted.pop();
    }
    sorted
}

/// The registries list being edited, with `getRegistryEntry` semantics.
pub(crate) struct Editor {
    pub regs: Vec<Registry>,
}

impl Editor {
    pub(crate) fn new() -> Editor {
        Editor { regs: Vec::new() }
    }

    /// `getRegistryEntry`: the index of the entry whose scope is `scope`, appended if missing.
    fn entry(&mut self, scope: &str) -> usize {
        if let Some(i) = self.regs.iter().position(|r| r.scope() == scope) {
            return i;
        }
        let mut reg = Registry::default();
        if scope.starts_with("*.") {
            reg.prefix = scope.to_string();
        } else {
            reg.location = scope.to_string();
        }
        self.regs.push(reg);
        self.regs.len() - 1
    }

    fn add_mirrors(&mut self, sets: &[MergedSet], pull_from_mirror: &'static str, legacy: bool) {
        for set in sets {
            let i = self.entry(&set.source);
            let reg = &mut self.regs[i];
            if legacy {
                reg.mirror_by_digest_only = true;
            } else if set.never_contact_source {
                reg.blocked = true;
            }
            for m in &set.mirrors {
                reg.mirrors.push(Endpoint {
                    location: m.clone(),
                    insecure: false,
                    pull_from_mirror,
                });
            }
        }
    }

    /// `EditRegistriesConfig`. `legacy` selects the ICSP-only generation (OCP ≤ 4.12), where
    /// `digest` holds the ICSP sets and `tag` must be empty.
    pub(crate) fn edit(
        &mut self,
        insecure: &[String],
        blocked: &[String],
        digest: &[MergedSet],
        tag: &[MergedSet],
        legacy: bool,
    ) -> Result<(), String> {
        if legacy {
            self.add_mirrors(digest, "", true);
        } else {
            self.add_mirrors(digest, DIGEST_ONLY, false);
            self.add_mirrors(tag, TAG_ONLY, false);
        }
        for scope in blocked {
            self.entry(scope);
        }
        for scope in insecure {
            let i = self.entry(scope);
            self.regs[i].insecure = true;
            for reg in &mut self.regs {
                if scope_is_nested_inside_scope(reg.scope(), scope) {
                    reg.insecure = true;
                }
                for m in &mut reg.mirrors {
                    if scope_is_nested_inside_scope(&m.location, scope) {
                        m.insecure = true;
                    }
                }
            }
        }
        for scope in blocked {
            let i = self.entry(scope);
            self.regs[i].blocked = true;
            for reg in &mut self.regs {
                if scope_is_nested_inside_scope(reg.scope(), scope) {
                    reg.blocked = true;
                }
            }
        }
        for set in digest.iter().chain(tag.iter()) {
            let mi = self.entry(&set.source);
            let mirrored_scope = self.regs[mi].scope().to_string();
            let parent_mirrors = self.regs[mi].mirrors.clone();
            let parent_digest_only = self.regs[mi].mirror_by_digest_only;
            for reg in &mut self.regs {
                let scope = reg.scope().to_string();
                if scope != mirrored_scope
                    && scope_is_nested_inside_scope(&scope, &mirrored_scope)
                    && reg.mirrors.is_empty()
                {
                    if legacy {
                        reg.mirror_by_digest_only = parent_digest_only;
                    }
                    reg.mirrors = mirrors_adjusted_for_nested_scope(
                        &mirrored_scope,
                        &scope,
                        &parent_mirrors,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// `mirrorsAdjustedForNestedScope`, with its error texts.
fn mirrors_adjusted_for_nested_scope(
    mirrored_scope: &str,
    sub_scope: &str,
    mirrors: &[Endpoint],
) -> Result<Vec<Endpoint>, String> {
    if !scope_is_nested_inside_scope(sub_scope, mirrored_scope) {
        return Err(format!(
            "internal error: mirrorsAdjustedForNestedScope for {} and non-subscope {}",
            quote(mirrored_scope),
            quote(sub_scope)
        ));
    }
    if mirrored_scope.starts_with("*.") {
        return Err(format!(
            "internal error: mirrorsAdjustedForNestedScope for a wildcard scope {}",
            quote(mirrored_scope)
        ));
    }
    let Some(adjustment) = sub_scope.strip_prefix(mirrored_scope) else {
        return Err(format!(
            "internal error: mirrorsAdjustedForNestedScope with unexpected scopes {} and {}",
            quote(mirrored_scope),
            quote(sub_scope)
        ));
    };
    Ok(mirrors
        .iter()
        .map(|m| Endpoint {
            location: format!("{}{adjustment}", m.location),
            ..m.clone()
        })
        .collect())
}
