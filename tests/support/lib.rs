//! Support code for the end-to-end tests: real processes on loopback.
//!
//! - [`registry`]: a real Debian `docker-registry` on 127.0.0.1 (plain HTTP, basic auth, self-signed
//!   TLS), killed on drop; [`registry::closed_port`], [`registry::free_port`],
//!   [`registry::ScratchDir`] (a temp dir removed on drop).
//! - [`oci`]: deterministic one-layer OCI layouts pushed with `skopeo copy`; digests read back.
//! - [`skopeo`]: Debian skopeo run sealed (private `$HOME`, closed proxy) and its `--debug` log
//!   parsed into the sources it tried.
//! - [`scenario`]: the explain-vs-skopeo differential scenarios (fixtures, comparison rules).

pub mod journal;
pub mod oci;
pub mod registry;
pub mod scenario;
pub mod skopeo;
