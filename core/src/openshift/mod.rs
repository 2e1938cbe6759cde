//! OpenShift mirror-set rendering as the Machine Config Operator does it.
//!
//! [`parse_str`] / [`InputSet`] read `Image`, `ImageDigestMirrorSet`, `ImageTagMirrorSet` and
//! `ImageContentSourcePolicy` objects from YAML or JSON (with the API server's validation), and
//! [`render`] predicts, byte for byte, the files of `99-<pool>-generated-registries`
//! (`/etc/containers/registries.conf`, `policy.json`, the search-registries drop-in) for a given
//! OCP release, or MCO's refusal. Nothing here does I/O.
//!
//! Not modelled: ClusterImagePolicy/ImagePolicy (sigstore) contributions to policy.json; MCO
//! before 4.11 (no nested-scope propagation); the early 4.14.z releases that, like 4.13.0 – 4.13.26,
//! refused ICSP next to IDMS/ITMS (their exact z-stream boundary is not known here); the API
//! server's refusal to create an IDMS while ICSPs existed in those releases; Unicode symbols in
//! `format: hostname`.
//!
//! Sources: openshift/machine-config-operator `pkg/controller/container-runtime-config`
//! (release-4.12 … main), openshift/runtime-utils `pkg/registries` (3beb0b5, 7bdb5b9),
//! openshift/api CRDs.

pub mod disruption;
mod edit;
mod encode;
pub mod inputs;
pub mod model;
pub mod node_config;
pub mod notes;
pub mod parse;
pub mod patterns;
mod payload;
mod render;
mod topo;
mod traps;
mod validate;
pub mod version;

pub use model::{
    ImageConfig, Kind, MirrorEntry, MirrorSet, MirrorSourcePolicy, ObjectRef, RegistrySources,
    RenderInput,
};
pub use node_config::{node_config, node_config_from_files, LoadError, TEMPLATE_REGISTRIES_CONF};
pub use notes::{Note, Severity};
pub use parse::{parse_str, InputError, InputSet, ParseOptions, Skipped};
pub use render::{
    render, Refusal, RenderOptions, RenderedFile, Rendering, DEFAULT_RELEASE_IMAGE, POLICY_JSON,
    REGISTRIES_CONF, SEARCH_DROP_IN,
};
pub use version::{Family, OcpVersion, VersionError};
