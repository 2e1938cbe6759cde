//! Support code for the end-to-end tests: real processes on loopback.

pub mod journal;
pub mod oci;
pub mod registry;
pub mod skopeo;
