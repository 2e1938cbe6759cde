//! `mirrorscope`: the user CLI (also installed as `kubectl-mirrorscope` / `oc-mirrorscope`, so
//! `oc mirrorscope status` works as a plugin).

mod audit;
mod client;
mod explain;
mod output;
mod plan;
mod render;
mod views;
mod wait;

use std::io::IsTerminal as _;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  done (wait: landed; explain/render: every image resolves, objects render; audit: no image fails)
  1  the answer is no (wait: timed out or a node is Degraded; explain, audit: an image will not pull;
     render: the API server would reject an object)
  2  usage, input or connection error
  3  render: the Machine Config Operator would refuse the objects

Environment:
  MIRRORSCOPE_COLLECTOR  collector URL, as --collector
  KUBECONFIG             kubeconfig files (merged as kubectl merges them)";

#[derive(Parser)]
#[command(
    name = "mirrorscope",
    version,
    about = "Which mirror really serves your OpenShift pulls, and has the mirror configuration landed",
    after_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    conn: client::ConnArgs,
    /// Print tables without their header line.
    #[arg(long, global = true)]
    no_headers: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show where containers/image will pull each image from, under a registries configuration.
    #[command(
        after_help = "Examples:\n  mirrorscope explain nginx:1.25.3\n  mirrorscope explain --registries-conf ./registries.conf quay.io/ns/app@sha256:...\n  mirrorscope explain --node worker-1 nvcr.io/nvidia/gpu-operator:v24.9.0\n\nExit codes: 0 every image resolves, 1 an image will not pull, 2 invalid configuration or usage."
    )]
    Explain(explain::Args),
    /// Which images will not pull, before a node tries: every image resolved as the nodes will, and probed.
    #[command(
        after_help = "Examples:\n  oc get pods -A -o json > pods.json\n  mirrorscope audit --images-from pods.json --probe --authfile pull-secret.json\n  mirrorscope audit --desired new-idms.yaml --images-from pods.json --probe --arch amd64,arm64\n  mirrorscope audit --registries-conf /etc/containers/registries.conf --images-from mapping.txt --probe --fail-on source\n  mirrorscope audit --node worker-1 nvcr.io/nvidia/gpu-operator:v24.9.0 --probe\n\nVerdicts: mirror (a mirror serves it), source (only the source does: breaks when disconnected), fail (nothing serves it), unknown (not probed, or a registry could not be asked).\n\nExit codes: 0 nothing at or past --fail-on, 1 an image is (fail by default), 2 usage, unreadable input, an invalid configuration or a collector that did not answer."
    )]
    Audit(audit::Args),
    /// Render IDMS/ITMS/ICSP/Image objects the way the Machine Config Operator does.
    #[command(
        after_help = "Examples:\n  oc get idms,itms,icsp,image.config -o yaml > current.yaml\n  mirrorscope render -f current.yaml -f new-itms.yaml --image docker.io/library/nginx:1.25.3\n  mirrorscope render -f objects/ --output-dir /tmp/node\n\nExit codes: 0 rendered, 1 the API server would reject an object, 2 no objects or unreadable input, 3 the MCO would refuse."
    )]
    Render(render::Args),
    /// What applying objects will do: MCO's refusal, the diff of each file, drain or reload per node.
    #[command(
        after_help = "Examples:\n  oc get idms,itms,icsp,image.config -o yaml > current.yaml\n  mirrorscope plan --current current.yaml -f new-idms.yaml --merge\n  mirrorscope plan --current current.yaml -f whole-new-set/ -o json\n\nExit codes: 0 planned, 1 the API server would reject an object, 2 no objects or unreadable input, 3 the MCO would refuse the new objects."
    )]
    Plan(plan::Args),
    /// Rollout per pool, lagging nodes and why, registries with fallbacks, blocked pulls or failures.
    #[command(
        after_help = "Examples:\n  mirrorscope status\n  oc mirrorscope status -o json\n\nExit codes: 0 answered, 2 connection error."
    )]
    Status(views::StatusArgs),
    /// Every node: landed or not, and why.
    #[command(
        after_help = "Examples:\n  mirrorscope nodes\n  mirrorscope nodes worker-3\n\nExit codes: 0 answered, 2 connection error or unknown node."
    )]
    Nodes(views::NodesArgs),
    /// Recent pulls across the cluster: which mirror served them, fallbacks, failures.
    #[command(
        after_help = "Examples:\n  mirrorscope pulls --fallback\n  mirrorscope pulls --registry docker.io --failed -o wide\n\nExit codes: 0 answered, 2 connection error."
    )]
    Pulls(views::PullsArgs),
    /// Per source registry: pulls by mirror and by source, fallbacks, blocked, failures.
    #[command(
        after_help = "Examples:\n  mirrorscope registries\n\nExit codes: 0 answered, 2 connection error."
    )]
    Registries(views::RegistriesArgs),
    /// Block until the configuration has landed on every selected node (exit 0), or time out (1).
    #[command(
        after_help = "Examples:\n  mirrorscope wait --desired idms.yaml --pool worker --timeout 15m && oc adm upgrade ...\n  mirrorscope wait --nodes worker-1,worker-2\n\nExit codes: 0 landed, 1 timed out (the lagging nodes are listed with why) or a selected node is Degraded (at once), 2 usage, an empty selection, or a collector that stopped answering."
    )]
    Wait(wait::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  source <(mirrorscope completion bash)\n  mirrorscope completion zsh > \"${fpath[1]}/_mirrorscope\""
    )]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// How the user invoked us: `kubectl mirrorscope`, `oc mirrorscope` or `mirrorscope`.
fn display_name() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let base = std::path::Path::new(&argv0)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    match base.split_once("-mirrorscope") {
        Some((tool @ ("kubectl" | "oc"), "")) => format!("{tool} mirrorscope"),
        _ => "mirrorscope".to_string(),
    }
}

fn main() {
    // User-facing errors are sentences, never backtraces, whatever RUST_BACKTRACE says.
    std::env::remove_var("RUST_BACKTRACE");
    let name = display_name();
    let mut command = Cli::command().bin_name(name.clone());
    command = command.name(name.clone());
    let matches = command.get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    output::set_no_headers(cli.no_headers);
    let conn = &cli.conn;
    let result = match cli.command {
        Command::Audit(args) => audit::run(conn, args),
        Command::Explain(args) => explain::run(conn, args),
        Command::Render(args) => render::run(args),
        Command::Plan(args) => plan::run(conn, args),
        Command::Status(args) => views::status(conn, args),
        Command::Nodes(args) => views::nodes(conn, args),
        Command::Pulls(args) => views::pulls(conn, args),
        Command::Registries(args) => views::registries(conn, args),
        Command::Wait(args) => wait::run(conn, args),
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "mirrorscope", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            if output::is_broken_pipe(&err) {
                std::process::exit(0);
            }
            let text = format!("{err:#}");
            let text = if std::io::stderr().is_terminal() {
                output::escape_controls(&text)
            } else {
                text
            };
            eprintln!("{name}: {text}");
            std::process::exit(2);
        }
    }
}
