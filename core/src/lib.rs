//! Pure logic shared by the mirrorscope agent and collector.
//!
//! Nothing in this crate performs network I/O or spawns tasks; the only file I/O is reading files
//! the caller names (registries.conf and drop-ins, object files) and [`fsutil::write_atomic`],
//! so everything here can be unit-tested and fuzzed.

pub mod api;
pub mod audit;
pub mod cimage_version;
pub mod explain;
pub mod fsutil;
pub mod go;
pub mod hash;
pub mod journal;
pub mod machineconfig;
pub mod openshift;
pub mod query;
pub mod reference;
pub mod registries;
pub mod report;
pub mod rollout;
pub mod time;
