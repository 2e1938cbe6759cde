//! `mirrorscope-agent`: the per-node agent.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mirrorscope-agent", version, about = "mirrorscope node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
