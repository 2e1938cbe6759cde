//! Typed inputs of the rendering: `Image/cluster`, IDMS, ITMS and ICSP objects.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The object kinds that feed MCO's registries rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Image,
    ImageDigestMirrorSet,
    ImageTagMirrorSet,
    ImageContentSourcePolicy,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Image,
        Kind::ImageDigestMirrorSet,
        Kind::ImageTagMirrorSet,
        Kind::ImageContentSourcePolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "Image",
            Kind::ImageDigestMirrorSet => "ImageDigestMirrorSet",
            Kind::ImageTagMirrorSet => "ImageTagMirrorSet",
            Kind::ImageContentSourcePolicy => "ImageContentSourcePolicy",
        }
    }

    /// The `apiVersion` this kind is served under.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::ImageContentSourcePolicy => "operator.openshift.io/v1alpha1",
            _ => "config.openshift.io/v1",
        }
    }

    /// The list field under `spec` that holds the mirror entries (none for `Image`).
    pub fn entries_field(self) -> &'static str {
        match self {
            Kind::Image => "",
            Kind::ImageDigestMirrorSet => "imageDigestMirrors",
            Kind::ImageTagMirrorSet => "imageTagMirrors",
            Kind::ImageContentSourcePolicy => "repositoryDigestMirrors",
        }
    }

    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which object an input came from: kind, `metadata.name`, and where it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: Kind,
    pub name: String,
    /// `file` or `file#document` or `file#document/items[i]`; empty when built in code.
    #[serde(default)]
    pub origin: String,
}

impl ObjectRef {
    pub fn new(kind: Kind, name: impl Into<String>) -> ObjectRef {
        ObjectRef {
            kind,
            name: name.into(),
            origin: String::new(),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `Kind/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// `mirrorSourcePolicy` of an IDMS/ITMS entry (ICSP entries are always [`MirrorSourcePolicy::Unset`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MirrorSourcePolicy {
    #[default]
    Unset,
    AllowContactingSource,
    NeverContactSource,
}

impl MirrorSourcePolicy {
    /// MCO treats an empty policy as `AllowContactingSource`.
    pub fn effective(self) -> MirrorSourcePolicy {
        match self {
            MirrorSourcePolicy::Unset => MirrorSourcePolicy::AllowContactingSource,
            p => p,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MirrorSourcePolicy::Unset => "",
            MirrorSourcePolicy::AllowContactingSource => "AllowContactingSource",
            MirrorSourcePolicy::NeverContactSource => "NeverContactSource",
        }
    }
}

/// One `source` → `mirrors` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    pub source: String,
    #[serde(default)]
    pub mirrors: Vec<String>,
    #[serde(default)]
    pub policy: MirrorSourcePolicy,
}

/// An IDMS, ITMS or ICSP object: its entries in spec order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSet {
    pub object: ObjectRef,
    #[serde(default)]
    pub entries: Vec<MirrorEntry>,
}

impl MirrorSet {
    /// The field path of entry `i`, e.g. `spec.imageDigestMirrors[2]`.
    pub fn entry_path(&self, i: usize) -> String {
        format!("spec.{}[{i}]", self.object.kind.entries_field())
    }
}

/// `spec.registrySources` of `Image/cluster`. `None` is an absent (nil) list, which MCO treats
/// differently from an explicit empty list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySources {
    #[serde(default)]
    pub insecure_registries: Option<Vec<String>>,
    #[serde(default)]
    pub blocked_registries: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_registries: Option<Vec<String>>,
    #[serde(default)]
    pub container_runtime_search_registries: Option<Vec<String>>,
}

/// `images.config.openshift.io/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub object: ObjectRef,
    #[serde(default)]
    pub registry_sources: RegistrySources,
}

/// Everything MCO's image-config sync reads (apart from the release image, in [`super::RenderOptions`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderInput {
    /// `Image/cluster`; `None` renders as if it existed with an empty spec (every cluster has one).
    #[serde(default)]
    pub image: Option<ImageConfig>,
    #[serde(default)]
    pub idms: Vec<MirrorSet>,
    #[serde(default)]
    pub itms: Vec<MirrorSet>,
    #[serde(default)]
    pub icsp: Vec<MirrorSet>,
}

impl RenderInput {
    /// All mirror-set objects: IDMS, then ITMS, then ICSP.
    pub fn mirror_sets(&self) -> impl Iterator<Item = &MirrorSet> {
        self.idms
            .iter()
            .chain(self.itms.iter())
            .chain(self.icsp.iter())
    }
}
