//! `mirrorscope audit`: which images will not pull, judged before a node tries.
//!
//! [`judge::plan`] lists the sources a node will try under a configuration, the CLI's prober
//! asks each registry, and [`judge::judge`] turns the answers into a verdict and findings.

pub mod auth;
pub mod inventory;
pub mod judge;
pub mod manifest;
pub mod model;
pub mod release;

#[cfg(test)]
mod judge_tests;

pub use judge::{judge, plan, Planned};
pub use model::{
    AuditEntry, Finding, FindingCode, Probe, ProbeStatus, SourceAudit, Summary, Verdict,
};
