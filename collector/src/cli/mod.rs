//! Subcommands of the `mirrorscope` CLI, one module each.

pub mod client;
pub mod explain;
pub mod output;
pub mod render;
pub mod views;
pub mod wait;
