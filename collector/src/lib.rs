//! The collector service: ingests node reports, watches the cluster through the API server,
//! and serves the rollout and pull views.

pub mod kubeapi;
pub mod service;
