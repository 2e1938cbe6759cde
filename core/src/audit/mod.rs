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

/// Plans every image of an inventory under one configuration.
pub fn plan_inventory(
    config: &crate::registries::EffectiveConfig,
    inventory: &inventory::Inventory,
) -> Vec<Planned> {
    inventory.images.keys().map(|i| plan(config, i)).collect()
}

/// Judges every planned (and perhaps probed) image, naming its users from the inventory.
pub fn judge_inventory(planned: Vec<Planned>, inventory: &inventory::Inventory) -> Vec<AuditEntry> {
    planned
        .into_iter()
        .map(|p| {
            let users = inventory.users(&p.image);
            judge(p, users)
        })
        .collect()
}
