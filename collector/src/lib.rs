//! The collector service and the user-facing `mirrorscope` CLI.

pub mod api;
pub mod cli;
pub mod httpc;
pub mod kube;
pub mod query;
pub mod service;
