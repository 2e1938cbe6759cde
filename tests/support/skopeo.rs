//! Debian `skopeo` (containers/image 5.23.1) as an oracle: runs `skopeo --debug inspect --raw` in a
//! sealed environment and parses its logrus output into the sequence of sources it tried.
//!
//! ```no_run
//! use mirrorscope_e2e::skopeo::{self, SkopeoHome};
//! let home = SkopeoHome::new();
//! let conf = home.write("registries.conf", "[[registry]]\nlocation = \"127.0.0.1:5999\"\n");
//! home.write_user_dropin("10.conf", "unqualified-search-registries = []\n");
//! let run = skopeo::inspect_raw(&home, &conf, "127.0.0.1:5999/library/tiny:1");
//! println!("{:?} {:?} {:?}", run.tries, run.failures, run.result);
//! ```
//!
//! Sealing: `$HOME` is a private dir (skopeo reads user drop-ins from
//! `$HOME/.config/containers/registries.conf.d`), auth/XDG variables are removed, and
//! `HTTPS_PROXY`/`HTTP_PROXY` point at the closed port `127.0.0.1:9`, so an attempt at any non-loopback
//! name (docker.io, quay.io, example.com) fails at once on this machine. `NO_PROXY` is removed: Go never
//! proxies loopback addresses anyway, so 127.0.0.x endpoints are reached directly.

use crate::oci::sha256_digest;
use crate::registry::{require_binary, ScratchDir};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the Debian skopeo binary.
pub const SKOPEO: &str = "/usr/bin/skopeo";

/// Proxy URL every skopeo run gets: a closed loopback port.
pub const CLOSED_PROXY: &str = "http://127.0.0.1:9";

/// The drop-in dir containers/image 5.23.1 reads before the user dir when `--registries-conf` is given.
pub const SYSTEM_DROPIN_DIR: &str = "/etc/containers/registries.conf.d";

/// A signature policy that accepts everything, for `skopeo copy --policy` (fresh machines may lack
/// `/etc/containers/policy.json`).
pub const ACCEPT_ANYTHING_POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

/// A private `$HOME` for skopeo, removed on drop.
pub struct SkopeoHome {
    dir: ScratchDir,
}

impl Default for SkopeoHome {
    fn default() -> Self {
        Self::new()
    }
}

impl SkopeoHome {
    pub fn new() -> SkopeoHome {
        SkopeoHome {
            dir: ScratchDir::new("skopeo-home"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `$HOME/.config/containers/registries.conf.d`, read by skopeo after the system drop-in dir.
    pub fn user_dropin_dir(&self) -> PathBuf {
        self.dir.path().join(".config/containers/registries.conf.d")
    }

    /// Writes a file relative to `$HOME` (e.g. the scenario's main `registries.conf`).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        self.dir.write(rel, text)
    }

    /// Writes `$HOME/.config/containers/registries.conf.d/<name>`.
    pub fn write_user_dropin(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(
            &format!(".config/containers/registries.conf.d/{name}"),
            text,
        )
    }

    /// The drop-in dirs skopeo reads with `--registries-conf`, in its order: system, then user. Pass
    /// them as `--registries-conf-d` to `mirrorscope explain` to give it the same view.
    pub fn dropin_dirs(&self) -> Vec<PathBuf> {
        vec![PathBuf::from(SYSTEM_DROPIN_DIR), self.user_dropin_dir()]
    }
}

/// A `skopeo` command with a sealed environment and `$HOME` = `home` (arguments still to add).
pub fn command(home: &Path) -> Command {
    require_binary(SKOPEO, "skopeo");
    let mut cmd = Command::new(SKOPEO);
    cmd.env("HOME", home)
        .env("HTTPS_PROXY", CLOSED_PROXY)
        .env("HTTP_PROXY", CLOSED_PROXY)
        .env("https_proxy", CLOSED_PROXY)
        .env("http_proxy", CLOSED_PROXY);
    for var in [
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
        "XDG_CONFIG_HOME",
        "XDG_RUNTIME_DIR",
        "XDG_CACHE_HOME",
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
        "CONTAINERS_REGISTRIES_CONF",
        "REGISTRIES_CONFIG_PATH",
        "CONTAINERS_CONF",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Exit status and captured output of a finished process.
#[derive(Debug, Clone)]
pub struct ProcOutput {
    /// Exit code; `None` when killed (by a signal or by the timeout).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub timed_out: bool,
}

impl ProcOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` to completion, killing it after `limit` (so a hung registry connection fails the test
/// with a message instead of hanging it).
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> ProcOutput {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    ProcOutput {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
    }
}

/// One failed attempt as logged by `Accessing "REF" failed: ERR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reference: String,
    pub error: String,
}

/// How the inspect ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectResult {
    /// Exit 0; `digest` is the SHA-256 of the raw manifest printed on stdout.
    Ok { digest: String },
    /// Exit non-zero; `fatal` is the whole `level=fatal` message, `error` the same with skopeo's
    /// `Error parsing image name "docker://REF": ` wrapper removed (i.e. containers/image's text).
    Failed { fatal: String, error: String },
}

/// A parsed `skopeo --debug inspect --raw` run.
#[derive(Debug, Clone)]
pub struct Inspect {
    /// Every `Trying to access "REF"`, in order.
    pub tries: Vec<String>,
    /// Every `Accessing "REF" failed: ERR`, in order.
    pub failures: Vec<Failure>,
    pub result: InspectResult,
    /// The raw stderr, for diagnostics.
    pub stderr: String,
}

impl Inspect {
    /// The error text of the attempt at `reference`, if it failed.
    pub fn failure_of(&self, reference: &str) -> Option<&str> {
        self.failures
            .iter()
            .find(|f| f.reference == reference)
            .map(|f| f.error.as_str())
    }
}

/// Runs `skopeo --debug --registries-conf CONF inspect --raw docker://IMAGE` with `$HOME` = `home`
/// and parses the outcome. Panics (with the output) when skopeo hangs or prints something this
/// parser cannot classify.
pub fn inspect_raw(home: &SkopeoHome, registries_conf: &Path, image: &str) -> Inspect {
    let mut cmd = command(home.path());
    cmd.arg("--debug")
        .arg("--registries-conf")
        .arg(registries_conf)
        .arg("inspect")
        .arg("--raw")
        .arg(format!("docker://{image}"));
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    assert!(
        !out.timed_out,
        "skopeo inspect docker://{image} timed out; stderr so far:\n{}",
        out.stderr
    );
    parse_inspect(image, &out)
}

/// Parses the output of a `skopeo --debug inspect --raw docker://IMAGE` run.
pub fn parse_inspect(image: &str, out: &ProcOutput) -> Inspect {
    let mut tries = Vec::new();
    let mut failures = Vec::new();
    let mut fatal = None;
    for line in log_lines(&out.stderr) {
        if line.level == "fatal" {
            fatal = Some(line.msg.clone());
        }
        if let Some(rest) = line.msg.strip_prefix("Trying to access ") {
            if let Some((reference, _)) = go_unquote(rest) {
                tries.push(reference);
            }
        } else if let Some(rest) = line.msg.strip_prefix("Accessing ") {
            if let Some((reference, tail)) = go_unquote(rest) {
                if let Some(error) = tail.strip_prefix(" failed: ") {
                    failures.push(Failure {
                        reference,
                        error: error.to_string(),
                    });
                }
            }
        }
    }
    let result = if out.success() {
        InspectResult::Ok {
            digest: sha256_digest(&out.stdout),
        }
    } else {
        let fatal = fatal.unwrap_or_else(|| {
            panic!(
                "skopeo inspect docker://{image} failed ({:?}) without a level=fatal line:\n{}",
                out.code, out.stderr
            )
        });
        let wrapper = format!("Error parsing image name \"docker://{image}\": ");
        let error = fatal.strip_prefix(&wrapper).unwrap_or(&fatal).to_string();
        InspectResult::Failed { fatal, error }
    };
    Inspect {
        tries,
        failures,
        result,
        stderr: out.stderr.clone(),
    }
}

/// One logrus text-formatter line (`time="…" level=debug msg="…"`), message unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: String,
    pub msg: String,
}

/// Parses logrus text lines; lines that are not logrus output are skipped.
pub fn log_lines(stderr: &str) -> Vec<LogLine> {
    stderr.lines().filter_map(parse_log_line).collect()
}

fn parse_log_line(line: &str) -> Option<LogLine> {
    let level_at = line.find("level=")?;
    let level: String = line[level_at + 6..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let msg_at = line.find(" msg=")?;
    let raw = &line[msg_at + 5..];
    let msg = if raw.starts_with('"') {
        go_unquote(raw)?.0
    } else {
        // logrus leaves simple values unquoted.
        raw.split_whitespace().next().unwrap_or("").to_string()
    };
    Some(LogLine { level, msg })
}

/// Decodes a Go `%q` string at the start of `s`; returns the value and the rest after the closing
/// quote.
pub fn go_unquote(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' | 'u' | 'U' => {
                        let len = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String =
                            (0..len).filter_map(|_| chars.next().map(|p| p.1)).collect();
                        let v = u32::from_str_radix(&hex, 16).ok()?;
                        // \xNN is a raw byte; only ASCII ones round-trip into a String.
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    _ => return None,
                }
            }
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_logrus_messages() {
        let line = r#"time="2026-11-21T07:05:01Z" level=debug msg="Trying to access \"127.0.0.1:5002/library/tiny:1\"""#;
        let l = parse_log_line(line).unwrap();
        assert_eq!(l.level, "debug");
        assert_eq!(l.msg, "Trying to access \"127.0.0.1:5002/library/tiny:1\"");
        let (v, rest) = go_unquote(r#""a\nb\\c\"d" tail"#).unwrap();
        assert_eq!(v, "a\nb\\c\"d");
        assert_eq!(rest, " tail");
    }

    #[test]
    fn parses_attempts_and_fatal() {
        let stderr = concat!(
            "time=\"t\" level=debug msg=\"Trying to access \\\"m/x:1\\\"\"\n",
            "time=\"t\" level=debug msg=\"Accessing \\\"m/x:1\\\" failed: boom: \\\"q\\\"\"\n",
            "time=\"t\" level=fatal msg=\"Error parsing image name \\\"docker://r/x:1\\\": bad\"\n",
        );
        let out = ProcOutput {
            code: Some(1),
            stdout: vec![],
            stderr: stderr.into(),
            timed_out: false,
        };
        let p = parse_inspect("r/x:1", &out);
        assert_eq!(p.tries, vec!["m/x:1"]);
        assert_eq!(p.failure_of("m/x:1"), Some("boom: \"q\""));
        match p.result {
            InspectResult::Failed { error, .. } => assert_eq!(error, "bad"),
            other => panic!("{other:?}"),
        }
    }
}
