//! Support code for the end-to-end tests: real processes on loopback.
//!
//! - [`registry`]: a real Debian `docker-registry` on 127.0.0.1 (plain HTTP, basic auth, self-signed
//!   TLS), killed on drop; [`registry::closed_port`], [`registry::free_port`],
//!   [`registry::ScratchDir`] (a temp dir removed on drop).
//! - [`oci`]: deterministic one-layer OCI layouts pushed with `skopeo copy`; digests read back.
//! - [`skopeo`]: Debian skopeo run sealed (private `$HOME`, closed proxy) and its `--debug` log
//!   parsed into the sources it tried.
//! - [`agent`]: `mirrorscope-agent run` on loopback, a temporary host root, a fake collector
//!   that goes down and comes back.
//! - [`collector`]: the collector and CLI as processes, fake nodes, a mocked API server.
//! - [`token`]: a Docker token service (ES256 JWTs) for a registry with `auth: token`.
//! - [`scenario`]: the explain-vs-skopeo differential scenarios (fixtures, comparison rules).

pub mod agent;
pub mod child;
pub mod collector;
pub mod journal;
pub mod kubeapi;
pub mod oci;
pub mod readme;
pub mod registry;
pub mod scenario;
pub mod skopeo;
pub mod token;
