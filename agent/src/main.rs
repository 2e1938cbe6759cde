//! `mirrorscope-agent`: the per-node agent.

mod clock;
// The one module that talks to C (sd-journal's descriptors, page advice) may use unsafe.
#[allow(unsafe_code)]
mod journal;
mod logger;
mod order;
mod output;
mod resume;
mod run;
mod scan;

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
    /// Run the node agent: watch the registries configuration, follow the journal, serve
    /// /v1/report and /metrics, push to the collector.
    Run(Box<run::RunArgs>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Run(args) => run::run(*args),
    }
}
