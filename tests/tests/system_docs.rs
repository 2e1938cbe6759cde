//! The README keeps its promises to a newcomer: exactly two set-up commands, run-local first,
//! both executable; every relative link points at a file of the repository; each alert of the
//! PrometheusRule is in its alerts table; every `mirrorscope` subcommand it shows exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use mirrorscope_e2e::collector::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

#[test]
fn setup_is_two_commands_run_local_first() {
    let text = readme();
    let setup = text
        .split("\n## Set-up on a fresh machine\n")
        .nth(1)
        .expect("no set-up section");
    let block = setup
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("no sh block in the set-up section");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["./scripts/run-local", "./tests/run"]);
    for c in commands {
        let path = repo().join(c.trim_start_matches("./"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert!(mode & 0o111 != 0, "{c} is not executable");
    }
    // The set-up section comes right after the problem statement.
    let first_section = text.split("\n## ").nth(1).unwrap();
    assert!(first_section.starts_with("Set-up on a fresh machine"));
    assert!(text.contains("oc apply -k manifests/overlays/openshift"));
    assert!(text.contains("[BENCHMARKS.md](BENCHMARKS.md)"));
}

#[test]
fn relative_links_resolve() {
    let text = readme();
    let mut checked = 0;
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let path = target.split('#').next().unwrap();
        assert!(
            repo().join(path).exists(),
            "README links to {target}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} links");
    // Runbook anchors: each linked section exists.
    let runbooks = std::fs::read_to_string(repo().join("docs/runbooks.md")).unwrap();
    for part in text.split("](docs/runbooks.md#").skip(1) {
        let anchor = part.split(')').next().unwrap();
        assert!(
            runbooks.lines().any(|l| l
                .strip_prefix("## ")
                .is_some_and(|h| h.to_lowercase() == anchor)),
            "docs/runbooks.md has no section for #{anchor}"
        );
    }
}

#[test]
fn alerts_table_lists_every_alert() {
    let rules = std::fs::read_to_string(repo().join("manifests/base/prometheusrule.yaml")).unwrap();
    let text = readme();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 6);
    for a in alerts {
        assert!(
            text.contains(&format!("| [{a}](docs/runbooks.md#{})", a.to_lowercase())),
            "README's alerts table lacks {a}"
        );
    }
}

#[test]
fn cli_commands_in_the_readme_exist() {
    let text = readme();
    let mut subcommands: Vec<&str> = text
        .split("$ mirrorscope ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    subcommands.sort();
    subcommands.dedup();
    assert!(subcommands.len() >= 5, "{subcommands:?}");
    for sub in subcommands {
        let out = Command::new(bin("mirrorscope"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README shows `mirrorscope {sub}`, which the CLI does not know:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
