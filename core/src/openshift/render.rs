//! The whole image-config sync of MCO's `ContainerRuntimeConfigController` as a pure function.

use super::edit::{Editor, MirrorSets};
use super::encode::{registries_toml, Policy, Requirement, TEMPLATE_SEARCH};
use super::model::{MirrorSet, MirrorSourcePolicy, ObjectRef, RegistrySources, RenderInput};
use super::notes::Note;
use super::patterns::scope_is_nested_inside_scope;
use super::payload::{dropped_log, valid_blocked_and_allowed, PayloadEvent, ValidLists};
use super::traps;
use super::validate::{validate_registries, validate_scope_lists};
use super::version::{Family, OcpVersion};
use crate::go::quote;
use crate::reference::ImageReference;
use crate::registries::{parse_config_str, EffectiveConfig, FileKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// `/etc/containers/registries.conf`.
pub const REGISTRIES_CONF: &str = "/etc/containers/registries.conf";
/// `/etc/containers/policy.json`.
pub const POLICY_JSON: &str = "/etc/containers/policy.json";
/// The drop-in MCO writes for `containerRuntimeSearchRegistries`.
pub const SEARCH_DROP_IN: &str = "/etc/containers/registries.conf.d/01-image-searchRegistries.conf";
/// The release image assumed when none is given (an official release, by digest).
pub const DEFAULT_RELEASE_IMAGE: &str =
    "quay.io/openshift-release-dev/ocp-release@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What is not in the objects themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOptions {
    /// The MCO release to predict.
    pub ocp_version: OcpVersion,
    /// `clusterversion/version` `.status.desired.image`; [`DEFAULT_RELEASE_IMAGE`] when `None`.
    pub release_image: Option<String>,
}

/// One file of the MachineConfig `99-<pool>-generated-registries`, at its host path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedFile {
    pub path: String,
    /// The exact bytes (always UTF-8).
    pub contents: String,
}

/// Everything MCO writes for these inputs, plus what it does silently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendering {
    pub ocp_version: OcpVersion,
    pub release_image: String,
    /// In MCO's order: registries.conf, policy.json, the search drop-in (only those MCO writes).
    /// Empty when the MachineConfig has an empty Ignition config (nodes keep the template files).
    pub files: Vec<RenderedFile>,
    pub notes: Vec<Note>,
}

impl Rendering {
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.contents.as_str())
    }

    /// The `/etc/containers/registries.conf` MCO writes, if it writes one.
    pub fn registries_conf(&self) -> Option<&str> {
        self.file(REGISTRIES_CONF)
    }

    /// Path → bytes.
    pub fn file_map(&self) -> BTreeMap<String, Vec<u8>> {
        self.files
            .iter()
            .map(|f| (f.path.clone(), f.contents.clone().into_bytes()))
            .collect()
    }
}

/// MCO would refuse to render: the sync fails for every pool and the previous
/// `99-<pool>-generated-registries` stays; nothing is reported on any API object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// MCO's own error text, e.g. `conflicting mirrorSourcePolicy is set for the same source …`.
    pub reason: String,
    /// The line the `machine-config-controller` logs.
    pub log: String,
    /// Findings gathered before the refusal (same as [`Rendering::notes`]).
    pub notes: Vec<Note>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

const LOG_PREFIX: &str = "Error syncing image config openshift-config: ";
const MC_PREFIX: &str = "could not Create/Update MachineConfig: ";

/// Renders what MCO writes for `input`, or why it refuses.
pub fn render(input: &RenderInput, options: &RenderOptions) -> Result<Rendering, Refusal> {
    let version = options.ocp_version;
    let legacy = version.family() == Family::Legacy;
    let mut notes = Vec::new();

    let empty = RegistrySources::default();
    let (image_obj, rs) = match &input.image {
        Some(img) => (img.object.clone(), &img.registry_sources),
        None => {
            notes.push(Note::info(
                "no-image-config",
                "no Image/cluster among the inputs: rendered as if its spec were empty (every cluster has one)",
            ));
            (ObjectRef::new(super::model::Kind::Image, "cluster"), &empty)
        }
    };
    let no_sets: Vec<MirrorSet> = Vec::new();
    let (idms, itms) = if legacy {
        for set in input.idms.iter().chain(input.itms.iter()) {
            notes.push(
                Note::info(
                    "kind-not-served",
                    format!(
                        "{} does not exist before OCP 4.13: ignored",
                        set.object.kind
                    ),
                )
                .at(&set.object, ""),
            );
        }
        (&no_sets, &no_sets)
    } else {
        (&input.idms, &input.itms)
    };
    let icsp = &input.icsp;

    let release_image = match &options.release_image {
        Some(r) => r.clone(),
        None => {
            if rs
                .blocked_registries
                .as_ref()
                .is_some_and(|b| !b.is_empty())
            {
                notes.push(Note::info(
                    "release-image-assumed",
                    format!("no release image given, so the payload protection of blockedRegistries was rendered for a placeholder ({DEFAULT_RELEASE_IMAGE}): pass --release-image"),
                ).fix("pass --release-image with the cluster's `oc get clusterversion version -o jsonpath='{.status.desired.image}'`"));
            }
            DEFAULT_RELEASE_IMAGE.to_string()
        }
    };

    let mut digest_entries: Vec<(&str, MirrorSourcePolicy, &[String])> = Vec::new();
    for e in idms.iter().flat_map(|s| s.entries.iter()) {
        digest_entries.push((&e.source, e.policy, &e.mirrors));
    }
    for e in icsp.iter().flat_map(|s| s.entries.iter()) {
        digest_entries.push((&e.source, MirrorSourcePolicy::Unset, &e.mirrors));
    }
    let insecure = rs.insecure_registries.as_deref().unwrap_or(&[]);
    let blocked = rs.blocked_registries.as_deref().unwrap_or(&[]);
    let allowed_spec = rs.allowed_registries.as_deref().unwrap_or(&[]);

    notes.extend(traps::traps(input, idms, itms, version, &release_image));

    let (lists, events) = match valid_blocked_and_allowed(
        &release_image,
        insecure,
        blocked,
        allowed_spec,
        &digest_entries,
        version,
    ) {
        Ok(x) => x,
        Err(e) => {
            return Err(Refusal {
                reason: e.to_string(),
                log: format!("{LOG_PREFIX}{e}"),
                notes,
            })
        }
    };
    payload_notes(&mut notes, &image_obj, blocked, &events);
    let payload_repo = ImageReference::parse_canonical(&release_image)
        .map(|r| r.name().to_string())
        .unwrap_or_default();
    traps::policy_traps(&mut notes, &image_obj, &lists, &payload_repo, allowed_spec);

    let refuse = |reason: String, what: &str, mut notes: Vec<Note>| {
        notes.extend(culprits(&reason, input, &image_obj, rs));
        Refusal {
            log: format!(
                "{LOG_PREFIX}{MC_PREFIX}could not update {what} with new changes: {reason}"
            ),
            reason,
            notes,
        }
    };

    let mut files = Vec::new();
    let need_registries = rs.insecure_registries.is_some()
        || lists.registries_blocked.is_some()
        || !icsp.is_empty()
        || !idms.is_empty()
        || !itms.is_empty();
    if need_registries {
        let registries_blocked = lists.registries_blocked.as_deref().unwrap_or(&[]);
        if let Err(e) = validate_registries(version, insecure, registries_blocked, idms, itms, icsp)
        {
            return Err(refuse(e, "registries config", notes));
        }
        if version.refuses_icsp_with_mirror_sets() && !icsp.is_empty() {
            let other = if !idms.is_empty() {
                Some("imagedigestmirrorset")
            } else if !itms.is_empty() {
                Some("imagetagmirrorset")
            } else {
                None
            };
            if let Some(other) = other {
                let reason = format!("error: both imagecontentsourcepolicy and {other} exist");
                return Err(refuse(reason, "registries config", notes));
            }
        }
        let mut digest = MirrorSets::default();
        for (source, policy, mirrors) in &digest_entries {
            digest.add(
                source,
                *policy == MirrorSourcePolicy::NeverContactSource,
                mirrors,
            );
        }
        let mut tag = MirrorSets::default();
        for e in itms.iter().flat_map(|s| s.entries.iter()) {
            tag.add(
                &e.source,
                e.policy == MirrorSourcePolicy::NeverContactSource,
                &e.mirrors,
            );
        }
        let mut editor = Editor::new();
        if let Err(e) = editor.edit(
            insecure,
            registries_blocked,
            &digest.merged(),
            &tag.merged(),
            legacy,
        ) {
            return Err(refuse(e, "registries config", notes));
        }
        let search: Vec<String> = TEMPLATE_SEARCH.iter().map(|s| s.to_string()).collect();
        files.push(RenderedFile {
            path: REGISTRIES_CONF.into(),
            contents: registries_toml(
                Some(&search),
                &editor.regs,
                version.family() == Family::Current,
            ),
        });
    }
    if lists.policy_blocked.is_some() || lists.allowed.is_some() {
        match policy_json(version, &lists, &payload_repo) {
            Ok(json) => files.push(RenderedFile {
                path: POLICY_JSON.into(),
                contents: json,
            }),
            Err(e) => return Err(refuse(e, "policy json", notes)),
        }
    }
    if let Some(search) = &rs.container_runtime_search_registries {
        files.push(RenderedFile {
            path: SEARCH_DROP_IN.into(),
            contents: registries_toml(Some(search), &[], version.family() == Family::Current),
        });
        notes.push(
            Note::info(
                "search-registries-reboot",
                "MCO writes this list to a drop-in, and changing it reboots every node (its path matches no node-disruption policy)",
            )
            .at(&image_obj, "spec.registrySources.containerRuntimeSearchRegistries"),
        );
    }
    for f in &files {
        let kind = match f.path.as_str() {
            REGISTRIES_CONF => FileKind::Main,
            SEARCH_DROP_IN => FileKind::DropIn,
            _ => continue,
        };
        match parse_config_str(&f.contents, &f.path, kind, version.containers_image()) {
            Err(e) => notes.push(
                Note::warning(
                    "cimage-rejects",
                    format!("containers/image on the nodes will reject the rendered {}: {e}; CRI-O keeps failing to load its registries configuration", f.path),
                )
                .fix("correct the entry named in the error in Image/cluster or the mirror sets"),
            ),
            Ok(file) if kind == FileKind::Main => {
                let config = EffectiveConfig::from_main_file(file);
                traps::blocked_mirrors(&mut notes, &config, idms.iter().chain(itms.iter()).chain(icsp.iter()));
            }
            Ok(_) => {}
        }
    }
    if files.is_empty() {
        notes.push(Note::info(
            "empty-machine-config",
            "MCO writes no registries file: 99-<pool>-generated-registries has an empty Ignition config and nodes keep the template registries.conf",
        ));
    }
    Ok(Rendering {
        ocp_version: version,
        release_image,
        files,
        notes,
    })
}

fn payload_notes(
    notes: &mut Vec<Note>,
    image: &ObjectRef,
    blocked: &[String],
    events: &[PayloadEvent],
) {
    let field = |scope: &str| {
        blocked
            .iter()
            .position(|b| b == scope)
            .map(|i| format!("spec.registrySources.blockedRegistries[{i}]"))
            .unwrap_or_else(|| "spec.registrySources.blockedRegistries".into())
    };
    for ev in events {
        match ev {
            PayloadEvent::Dropped(scopes) => {
                for s in scopes {
                    notes.push(
                        Note::info(
                            "payload-block-dropped",
                            format!(
                                "{} covers the release payload repository and no unblocked digest mirror serves it: MCO silently drops it from registries.conf and policy.json (controller log, V(2): {})",
                                quote(s),
                                dropped_log(scopes)
                            ),
                        )
                        .at(image, field(s))
                        .fix("mirror the payload with an ImageDigestMirrorSet to a registry outside the blocked scopes, or remove the entry"),
                    );
                }
            }
            PayloadEvent::KeptWithMirror(s) => notes.push(
                Note::info(
                    "payload-block-kept",
                    format!(
                        "{} matches the payload repository, but will add it to the list of blocked registries as there are mirror rules configured for it",
                        quote(s)
                    ),
                )
                .at(image, field(s)),
            ),
            PayloadEvent::CheckFailed(e) => notes.push(
                Note::warning(
                    "payload-check-failed",
                    format!("MCO's payload check fails ({e}), so MCO ignores every blockedRegistries and allowedRegistries entry"),
                )
                .at(image, "spec.registrySources")
                .fix("fix the configuration named in the error"),
            ),
        }
    }
}

/// `updatePolicyJSON` of the given release.
fn policy_json(
    version: OcpVersion,
    lists: &ValidLists,
    payload_repo: &str,
) -> Result<String, String> {
    let blocked = lists.policy_blocked.as_deref().unwrap_or(&[]);
    let allowed = lists.allowed.as_deref().unwrap_or(&[]);
    let payload_exception = matches!(allowed, [only] if only == payload_repo);
    if !allowed.is_empty() && !blocked.is_empty() && !payload_exception {
        return Err("invalid images config: only one of AllowedRegistries or BlockedRegistries may be specified".into());
    }
    validate_scope_lists(&[], blocked, allowed)?;
    let mut policy = Policy::template();
    let mut scopes: BTreeMap<String, Vec<Requirement>> = BTreeMap::new();
    if !allowed.is_empty() {
        policy.default = vec![Requirement::Reject];
        for a in allowed {
            scopes.insert(a.clone(), vec![Requirement::InsecureAcceptAnything]);
        }
    }
    if !blocked.is_empty() {
        policy.default = vec![Requirement::InsecureAcceptAnything];
        for b in blocked {
            scopes.insert(b.clone(), vec![Requirement::Reject]);
        }
    }
    if !version.at_least(14) {
        policy.transports.insert("atomic".into(), scopes.clone());
        policy.transports.insert("docker".into(), scopes);
    } else if !version.at_least(16) || !scopes.is_empty() {
        let atomic = scopes
            .iter()
            .filter(|(k, _)| k.matches('/').count() < 3)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        policy.transports.insert("atomic".into(), atomic);
        policy.transports.insert("docker".into(), scopes);
    }
    Ok(policy.to_json(version.at_least(17)))
}

/// The fields a refusal is about: every mirror-set source or mirror and every registrySources
/// scope that MCO's message quotes.
fn culprits(
    reason: &str,
    input: &RenderInput,
    image: &ObjectRef,
    rs: &RegistrySources,
) -> Vec<Note> {
    let mut notes = Vec::new();
    let quoted = |s: &str| reason.contains(&quote(s));
    let wildcard = reason
        .strip_prefix("internal error: mirrorsAdjustedForNestedScope for a wildcard scope ")
        .map(|q| q.trim_matches('"'));
    let nested_below =
        |s: &str| wildcard.is_some_and(|w| s != w && scope_is_nested_inside_scope(s, w));
    for set in input.mirror_sets() {
        for (i, e) in set.entries.iter().enumerate() {
            let path = set.entry_path(i);
            if quoted(&e.source) {
                let policy = match set.object.kind {
                    super::model::Kind::ImageContentSourcePolicy => {
                        "an ImageContentSourcePolicy entry (always AllowContactingSource)"
                            .to_string()
                    }
                    _ => format!("mirrorSourcePolicy {}", e.policy.effective().as_str()),
                };
                notes.push(
                    Note::info(
                        "refusal-culprit",
                        format!("source {} with {policy}", quote(&e.source)),
                    )
                    .at(&set.object, format!("{path}.source")),
                );
            }
            for (j, m) in e.mirrors.iter().enumerate() {
                if m != &e.source && quoted(m) {
                    notes.push(
                        Note::info("refusal-culprit", format!("mirror {}", quote(m)))
                            .at(&set.object, format!("{path}.mirrors[{j}]")),
                    );
                }
            }
        }
    }
    for (field, list) in [
        ("insecureRegistries", &rs.insecure_registries),
        ("blockedRegistries", &rs.blocked_registries),
        ("allowedRegistries", &rs.allowed_registries),
    ] {
        for (i, s) in list.iter().flatten().enumerate() {
            if quoted(s) {
                notes.push(
                    Note::info("refusal-culprit", format!("scope {}", quote(s)))
                        .at(image, format!("spec.registrySources.{field}[{i}]")),
                );
            } else if nested_below(s) {
                notes.push(
                    Note::info(
                        "refusal-culprit",
                        format!("scope {} is nested below the wildcard mirror source", quote(s)),
                    )
                    .at(image, format!("spec.registrySources.{field}[{i}]"))
                    .fix("give this scope mirrors of its own (a mirror set for it), or drop the wildcard source"),
                );
            }
        }
    }
    notes
}
