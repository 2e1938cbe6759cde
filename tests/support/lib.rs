//! Support code for the end-to-end tests: real processes on loopback.

pub mod oci;
pub mod registry;
pub mod scenario;
pub mod skopeo;
