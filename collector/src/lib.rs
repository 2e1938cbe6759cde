//! The collector service and the user-facing `mirrorscope` CLI.

pub mod cli;
