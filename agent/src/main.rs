//! `mirrorscope-agent`: the per-node agent.

mod journal;
mod order;
mod output;
mod resume;
mod scan;
mod since;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mirrorscope-agent", version, about = "mirrorscope node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print one record per image pull found in journal files or directories.
    Scan(scan::ScanArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Scan(args) => scan::run(args),
    }
}
