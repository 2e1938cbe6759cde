//! The collector service: ingests node reports, watches the cluster through the API server,
//! and serves the rollout and pull views.

/// The API-server connection, shared with the agent.
pub use mirrorscope_serve::kubeapi;
pub mod service;
