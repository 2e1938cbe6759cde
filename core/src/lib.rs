//! Pure logic shared by the mirrorscope agent and collector.
//!
//! Nothing in this crate performs network I/O or spawns tasks; the only I/O is reading files the
//! caller names (registries.conf and drop-ins), so everything here can be unit-tested and fuzzed.

pub mod cimage_version;
pub mod explain;
pub mod go;
pub mod hash;
pub mod journal;
pub mod machineconfig;
pub mod openshift;
pub mod reference;
pub mod registries;
pub mod report;
pub mod rollout;
