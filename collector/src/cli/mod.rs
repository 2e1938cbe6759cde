//! Subcommands of the `mirrorscope` CLI, one module each.

pub mod explain;
pub mod render;
