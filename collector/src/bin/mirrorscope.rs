//! `mirrorscope`: the user CLI (also usable as `kubectl-mirrorscope` / `oc-mirrorscope`).

use clap::{Parser, Subcommand};
use mirrorscope_collector::cli;

#[derive(Parser)]
#[command(
    name = "mirrorscope",
    version,
    about = "Which mirror really serves your OpenShift pulls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show where containers/image will pull each image from, under a registries configuration.
    Explain(cli::explain::Args),
    /// Render IDMS/ITMS/ICSP/Image objects the way the Machine Config Operator does.
    Render(cli::render::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(args) => cli::explain::run(args),
        Command::Render(args) => cli::render::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("mirrorscope: {err:#}");
            std::process::exit(2);
        }
    }
}
