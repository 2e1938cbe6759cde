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
    /// Rollout per pool, lagging nodes and why, registries with fallbacks, blocked pulls or failures.
    Status(cli::views::StatusArgs),
    /// Every node: landed or not, and why.
    Nodes(cli::views::NodesArgs),
    /// Recent pulls across the cluster: which mirror served them, fallbacks, failures.
    Pulls(cli::views::PullsArgs),
    /// Per source registry: pulls by mirror and by source, fallbacks, blocked, failures.
    Registries(cli::views::RegistriesArgs),
    /// Block until the configuration has landed on every selected node (exit 0), or time out (1).
    Wait(cli::wait::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(args) => cli::explain::run(args),
        Command::Render(args) => cli::render::run(args),
        Command::Status(args) => cli::views::status(args),
        Command::Nodes(args) => cli::views::nodes(args),
        Command::Pulls(args) => cli::views::pulls(args),
        Command::Registries(args) => cli::views::registries(args),
        Command::Wait(args) => cli::wait::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("mirrorscope: {err:#}");
            std::process::exit(2);
        }
    }
}
