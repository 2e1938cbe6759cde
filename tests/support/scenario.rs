//! Differential scenarios: one registries.conf (+ user drop-ins) and one image, run through Debian's
//! skopeo (the oracle) and through `mirrorscope explain`, then compared.
//!
//! A scenario's texts contain placeholders that [`World::expand`] fills in: live registries
//! `{SRC}` `{MIR}` `{MIR2}` (plain HTTP), `{AUTH}` (basic auth), `{TLS}` (self-signed HTTPS), closed
//! ports `{CLOSED}` `{CLOSED2}` (all `127.0.0.1:PORT`), bare ports `{SRCPORT}` `{MIRPORT}`
//! `{MIR2PORT}` `{CLOSEDPORT}`, digests `{D1}` `{D2}` (served) and `{DX}` (served nowhere), and per
//! run `{CONF}` (main file path) and `{USERDIR}` (user drop-in dir).
//!
//! Fixture format (`tests/fixtures/explain/*.txt`), one block per scenario:
//! ```text
//! === A2: mirror miss then source hit
//! --- conf
//! [[registry]]
//! location = "{SRC}"
//! --- dropin 10.conf        (optional, repeatable: a file in $HOME/.config/containers/registries.conf.d)
//! --- noconf                (instead of `--- conf`: the explicit main file does not exist)
//! --- image {SRC}/library/tiny:2
//! --- tries {MIR}/library/tiny:2 -> {SRC}/library/tiny:2   (optional expectation on skopeo)
//! --- ok                    (optional: skopeo succeeds)
//! --- error TEXT            (optional: skopeo's error, wrappers removed, exactly; `\n` = newline)
//! --- error-starts TEXT     (optional: … starts with TEXT)
//! --- known-failing REASON  (optional: explain disagrees because of a reported engine bug)
//! --- layout conf-is-dir | userdir-is-file | symlink NAME TARGET   (optional, repeatable)
//! ```
//! Lines starting with `#` outside `conf`/`dropin` bodies are comments.

use crate::oci;
use crate::registry::{closed_port, Registry};
use crate::skopeo::{self, Inspect, InspectResult, ProcOutput, SkopeoHome};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What skopeo is expected to do (checked by the oracle self-test only; the differential test
/// compares against whatever skopeo really does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Error(String),
    ErrorStarts(String),
}

/// One scenario, placeholders not yet expanded.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub id: String,
    pub note: String,
    /// Main registries.conf text; `None` = the explicitly named main file does not exist.
    pub conf: Option<String>,
    /// User drop-ins `(file name, text)`, written to `$HOME/.config/containers/registries.conf.d`.
    pub dropins: Vec<(String, String)>,
    pub image: String,
    pub expect_tries: Option<Vec<String>>,
    pub expect: Option<Expect>,
    /// `--- known-failing REASON`: explain is known to disagree (an engine bug reported to the
    /// integrator); the differential test reports it but does not fail on it. Never used to hide a
    /// harness problem.
    pub known_failing: Option<String>,
    /// Unusual file-system shapes (`--- layout …`), applied after the files are written.
    pub layout: Vec<Layout>,
}

/// A file-system shape a scenario needs beyond plain files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `--- layout conf-is-dir`: the main registries.conf path is a directory.
    ConfIsDir,
    /// `--- layout userdir-is-file`: the user drop-in dir path is a regular file.
    UserDirIsFile,
    /// `--- layout symlink NAME TARGET`: a symlink in the user drop-in dir; TARGET is absolute or
    /// relative to `$HOME`.
    Symlink { name: String, target: String },
}

/// Parses a fixture file (format in the module docs). `origin` names the file in error messages.
pub fn parse_fixture(origin: &str, text: &str) -> Result<Vec<Scenario>, String> {
    enum Body {
        None,
        Conf,
        Dropin,
    }
    let mut out: Vec<Scenario> = Vec::new();
    let mut body = Body::None;
    for (n, line) in text.lines().enumerate() {
        let at = || format!("{origin}:{}", n + 1);
        if let Some(head) = line.strip_prefix("=== ") {
            let (id, note) = head.split_once(':').unwrap_or((head, ""));
            out.push(Scenario {
                id: id.trim().to_string(),
                note: note.trim().to_string(),
                conf: Some(String::new()),
                ..Scenario::default()
            });
            body = Body::None;
            continue;
        }
        if let Some(directive) = line.strip_prefix("--- ") {
            let cur = out
                .last_mut()
                .ok_or_else(|| format!("{}: directive before the first === line", at()))?;
            let (key, arg) = directive.split_once(' ').unwrap_or((directive, ""));
            body = Body::None;
            match key {
                "conf" => body = Body::Conf,
                "noconf" => cur.conf = None,
                "layout" => {
                    let words: Vec<&str> = arg.split_whitespace().collect();
                    cur.layout.push(match words.as_slice() {
                        ["conf-is-dir"] => Layout::ConfIsDir,
                        ["userdir-is-file"] => Layout::UserDirIsFile,
                        ["symlink", name, target] => Layout::Symlink {
                            name: name.to_string(),
                            target: target.to_string(),
                        },
                        _ => return Err(format!("{}: bad layout {arg:?}", at())),
                    })
                }
                "dropin" => {
                    cur.dropins.push((arg.trim().to_string(), String::new()));
                    body = Body::Dropin;
                }
                "image" => cur.image = arg.trim().to_string(),
                "tries" => {
                    cur.expect_tries = Some(
                        arg.split("->")
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "ok" => cur.expect = Some(Expect::Ok),
                "known-failing" => cur.known_failing = Some(arg.trim().to_string()),
                "error" => cur.expect = Some(Expect::Error(arg.replace("\\n", "\n"))),
                "error-starts" => cur.expect = Some(Expect::ErrorStarts(arg.replace("\\n", "\n"))),
                other => return Err(format!("{}: unknown directive {other:?}", at())),
            }
            continue;
        }
        match body {
            Body::Conf => {
                if let Some(Scenario { conf: Some(c), .. }) = out.last_mut() {
                    c.push_str(line);
                    c.push('\n');
                }
            }
            Body::Dropin => {
                if let Some((_, t)) = out.last_mut().and_then(|s| s.dropins.last_mut()) {
                    t.push_str(line);
                    t.push('\n');
                }
            }
            Body::None => {
                if !(line.trim().is_empty() || line.starts_with('#')) {
                    return Err(format!(
                        "{}: text outside a conf/dropin body: {line:?}",
                        at()
                    ));
                }
            }
        }
    }
    for s in &out {
        if s.image.is_empty() {
            return Err(format!("{origin}: scenario {} has no --- image", s.id));
        }
    }
    Ok(out)
}

/// The live registries and closed ports every scenario may refer to.
pub struct World {
    pub src: Registry,
    pub mir: Registry,
    pub mir2: Registry,
    pub auth: Registry,
    pub tls: Registry,
    pub closed: String,
    pub closed2: String,
    pub d1: String,
    pub d2: String,
    pub dx: String,
}

impl World {
    /// Starts the registries and seeds them:
    /// - `{SRC}`: `library/tiny:1` (content 1), `library/tiny:2` (content 2), `foo/tiny:1`, `ns/app:1`
    /// - `{MIR}`: `library/tiny:1`, `foo/tiny:1`
    /// - `{MIR2}`: `library/tiny:2`, `bar/tiny:1`
    /// - tag `:3` and digest `{DX}` exist nowhere
    /// - `{AUTH}` (user `u`, password `pw`) and `{TLS}`: `library/tiny:1`
    pub fn start() -> World {
        let src = Registry::plain();
        let mir = Registry::plain();
        let mir2 = Registry::plain();
        let auth = Registry::basic_auth("u", "pw");
        let tls = Registry::tls();
        let one = oci::OciLayout::build("tiny-1", "1");
        let two = oci::OciLayout::build("tiny-2", "2");
        let d1 = one.push(&src, "library/tiny", "1");
        let d2 = two.push(&src, "library/tiny", "2");
        for (reg, repo, tag, layout, want) in [
            (&src, "foo/tiny", "1", &one, &d1),
            (&src, "ns/app", "1", &one, &d1),
            (&mir, "library/tiny", "1", &one, &d1),
            (&mir, "foo/tiny", "1", &one, &d1),
            (&mir2, "library/tiny", "2", &two, &d2),
            (&mir2, "bar/tiny", "1", &one, &d1),
            (&auth, "library/tiny", "1", &one, &d1),
            (&tls, "library/tiny", "1", &one, &d1),
        ] {
            let got = layout.push(reg, repo, tag);
            assert_eq!(
                &got, want,
                "pushing the same layout must give the same digest"
            );
        }
        assert_ne!(d1, d2);
        World {
            src,
            mir,
            mir2,
            auth,
            tls,
            closed: format!("127.0.0.1:{}", closed_port()),
            closed2: format!("127.0.0.1:{}", closed_port()),
            d1,
            d2,
            dx: oci::sha256_digest(b"served nowhere"),
        }
    }

    /// Replaces the world placeholders (not `{CONF}`/`{USERDIR}`, see [`Prepared::expand`]).
    pub fn expand(&self, text: &str) -> String {
        let port = |h: &str| h.rsplit(':').next().unwrap_or("").to_string();
        let pairs = [
            ("{SRCPORT}", port(&self.src.host())),
            ("{MIR2PORT}", port(&self.mir2.host())),
            ("{MIRPORT}", port(&self.mir.host())),
            ("{CLOSEDPORT}", port(&self.closed)),
            ("{SRC}", self.src.host()),
            ("{MIR2}", self.mir2.host()),
            ("{MIR}", self.mir.host()),
            ("{AUTH}", self.auth.host()),
            ("{TLS}", self.tls.host()),
            ("{CLOSED2}", self.closed2.clone()),
            ("{CLOSED}", self.closed.clone()),
            ("{D1}", self.d1.clone()),
            ("{D2}", self.d2.clone()),
            ("{DX}", self.dx.clone()),
        ];
        let mut out = text.to_string();
        for (k, v) in pairs {
            out = out.replace(k, &v);
        }
        out
    }

    /// Writes the scenario's files into a fresh private `$HOME`.
    pub fn prepare(&self, s: &Scenario) -> Prepared {
        let home = SkopeoHome::new();
        let conf_path = home.path().join("registries.conf");
        if let Some(conf) = &s.conf {
            home.write("registries.conf", &self.expand(conf));
        }
        for (name, text) in &s.dropins {
            home.write_user_dropin(name, &self.expand(text));
        }
        let userdir = home.user_dropin_dir();
        for l in &s.layout {
            let done = match l {
                Layout::ConfIsDir => std::fs::create_dir_all(&conf_path),
                Layout::UserDirIsFile => {
                    std::fs::create_dir_all(home.path().join(".config/containers"))
                        .and_then(|()| std::fs::write(&userdir, "not a directory\n"))
                }
                Layout::Symlink { name, target } => {
                    let target = if target.starts_with('/') {
                        PathBuf::from(target)
                    } else {
                        home.path().join(target)
                    };
                    std::fs::create_dir_all(&userdir)
                        .and_then(|()| std::os::unix::fs::symlink(&target, userdir.join(name)))
                }
            };
            done.unwrap_or_else(|e| panic!("scenario {}: cannot apply {l:?}: {e}", s.id));
        }
        Prepared {
            image: self.expand(&s.image),
            home,
            conf_path,
        }
    }
}

/// A scenario written to disk, ready to run through both sides.
pub struct Prepared {
    pub home: SkopeoHome,
    pub conf_path: PathBuf,
    pub image: String,
}

impl Prepared {
    /// Fills the per-run placeholders `{CONF}` and `{USERDIR}` (after [`World::expand`]).
    pub fn expand(&self, world: &World, text: &str) -> String {
        world
            .expand(text)
            .replace("{CONF}", &self.conf_path.display().to_string())
            .replace(
                "{USERDIR}",
                &self.home.user_dropin_dir().display().to_string(),
            )
    }

    pub fn skopeo(&self) -> Inspect {
        skopeo::inspect_raw(&self.home, &self.conf_path, &self.image)
    }

    /// skopeo under the same files but another image.
    pub fn skopeo_image(&self, image: &str) -> Inspect {
        skopeo::inspect_raw(&self.home, &self.conf_path, image)
    }

    /// Runs `mirrorscope explain` with the same files skopeo reads (main file, then the system and
    /// user drop-in dirs); `version` `None` = the default (newest) behaviour.
    pub fn explain(&self, version: Option<&str>) -> Explain {
        run_explain(
            version,
            &self.conf_path,
            &self.home.dropin_dirs(),
            &self.image,
        )
    }
}

/// Runs `mirrorscope explain [--containers-image-version V] --registries-conf CONF
/// --registries-conf-d D… -o json IMAGE`.
pub fn run_explain(version: Option<&str>, conf: &Path, dirs: &[PathBuf], image: &str) -> Explain {
    let mut cmd = Command::new(mirrorscope_bin());
    cmd.arg("explain");
    if let Some(v) = version {
        cmd.arg("--containers-image-version").arg(v);
    }
    cmd.arg("--registries-conf").arg(conf);
    for d in dirs {
        cmd.arg("--registries-conf-d").arg(d);
    }
    // `--`: an image may start with `-` (a scenario checks such a reference is rejected).
    cmd.arg("-o").arg("json").arg("--").arg(image);
    let out = skopeo::run_with_timeout(cmd, Duration::from_secs(30));
    Explain::from_output(out)
}

/// True when skopeo rejected the image reference itself: it parses the reference before it reads
/// any configuration, so such a run says nothing about the configuration.
pub fn is_reference_error(sk: &Inspect) -> bool {
    match &sk.result {
        InspectResult::Failed { error, .. } => {
            sk.tries.is_empty()
                && !error.starts_with("loading registries configuration: ")
                && !error.starts_with("rewriting reference: ")
        }
        InspectResult::Ok { .. } => false,
    }
}

/// Compares one prepared scenario on both sides (explain as containers/image `version`).
///
/// skopeo parses the reference before reading the configuration, explain reads the configuration
/// first. When a scenario has both a bad reference and a bad configuration, each reports a different
/// one of the two, so each is then checked on its own: skopeo on a valid reference against
/// explain's configuration error, and explain under an empty configuration against skopeo's
/// reference error.
pub fn compare_prepared(
    world: &World,
    p: &Prepared,
    sk: &Inspect,
    ex: &Explain,
    version: Option<&str>,
) -> Result<(), Vec<String>> {
    let first = compare(sk, ex);
    if first.is_ok() || !(is_reference_error(sk) && ex.code == Some(2)) {
        return first;
    }
    let mut diffs = Vec::new();
    let valid = format!("{}/split/check:1", world.closed);
    let sk_conf = p.skopeo_image(&valid);
    if let Err(d) = compare(&sk_conf, ex) {
        diffs.extend(
            d.into_iter()
                .map(|d| format!("(configuration, skopeo on {valid}) {d}")),
        );
    }
    let empty = p.home.write("empty-registries.conf", "");
    let ex_ref = run_explain(
        version,
        &empty,
        &[PathBuf::from(skopeo::SYSTEM_DROPIN_DIR)],
        &p.image,
    );
    if let Err(d) = compare(sk, &ex_ref) {
        diffs.extend(
            d.into_iter()
                .map(|d| format!("(reference, explain with an empty configuration) {d}")),
        );
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs)
    }
}

/// Path of the `mirrorscope` binary: `$MIRRORSCOPE_BIN_DIR/mirrorscope` (set by tests/run), else the
/// workspace's `target/debug`. Panics when it does not exist.
pub fn mirrorscope_bin() -> PathBuf {
    let dir = std::env::var_os("MIRRORSCOPE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let bin = dir.join("mirrorscope");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (tests/run does `cargo build --workspace --bins` and sets MIRRORSCOPE_BIN_DIR)",
        bin.display()
    );
    bin
}

/// One source of an explain result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub reference: String,
    pub mirror: bool,
    pub insecure: bool,
    pub blocked: bool,
    pub blocked_by: Option<String>,
}

/// A parsed `mirrorscope explain -o json IMAGE` run (one image).
#[derive(Debug, Clone)]
pub struct Explain {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `None` when stdout was not the expected JSON (e.g. a configuration error, exit 2).
    pub entry: Option<Value>,
    pub sources: Vec<Source>,
    pub error: Option<String>,
}

impl Explain {
    fn from_output(out: ProcOutput) -> Explain {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let entry = serde_json::from_str::<Value>(&stdout)
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()));
        let mut sources = Vec::new();
        let mut error = None;
        if let Some(e) = &entry {
            error = e.get("error").and_then(Value::as_str).map(str::to_string);
            for s in e
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
                sources.push(Source {
                    reference: s
                        .get("reference")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    mirror: flag("mirror"),
                    insecure: flag("insecure"),
                    blocked: flag("blocked"),
                    blocked_by: s
                        .get("blocked_by")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
        }
        Explain {
            code: out.code,
            stdout,
            stderr: out.stderr,
            entry,
            sources,
            error,
        }
    }
}

/// The prefix `P` of a `registry P is blocked in …` attempt error.
pub fn blocked_prefix(error: &str) -> Option<&str> {
    error
        .strip_prefix("registry ")?
        .split_once(" is blocked in ")
        .map(|(p, _)| p)
}

/// What an attempt's outcome proves about the endpoint's `insecure` flag. Every live registry of the
/// [`World`] is plain HTTP or self-signed HTTPS, so any successful ping needs `insecure = true`; an
/// insecure endpoint's final error is its plain-HTTP ping, a secure one never tries HTTP.
pub fn inferred_insecure(error: Option<&str>) -> Option<bool> {
    let Some(e) = error else {
        return Some(true); // the manifest was served
    };
    if blocked_prefix(e).is_some() {
        return None; // refused before any network I/O
    }
    if e.contains("Get \"http://") {
        return Some(true);
    }
    if e.contains("Get \"https://")
        || e.contains("server gave HTTP response to HTTPS client")
        || e.contains("x509:")
    {
        return Some(false);
    }
    if e.starts_with("reading manifest ") {
        return Some(true);
    }
    None
}

/// The part of a TOML error both sides must print: all of it, now that mirrorscope words TOML
/// errors as BurntSushi/toml does (tests/tests/toml_errors_vs_skopeo.rs covers them in depth).
pub fn toml_comparable(text: &str) -> &str {
    text
}

/// Compares one scenario's skopeo and explain results under the rules of the differential test;
/// `Err` carries every disagreement found.
pub fn compare(sk: &Inspect, ex: &Explain) -> Result<(), Vec<String>> {
    let mut diffs = Vec::new();
    let refs: Vec<&str> = ex.sources.iter().map(|s| s.reference.as_str()).collect();
    match &sk.result {
        InspectResult::Failed { error, .. } if sk.tries.is_empty() => {
            // (c) failure before any attempt.
            if let Some(cfg) = error.strip_prefix("loading registries configuration: ") {
                let want = toml_comparable(cfg);
                if ex.code != Some(2) {
                    diffs.push(format!(
                        "configuration error expected (exit 2), explain exited {:?}",
                        ex.code
                    ));
                }
                let toml = want.len() < cfg.len();
                // The whole text must match: what follows it must be the end of the message (or,
                // for a truncated TOML error, anything but another digit of the line number).
                let whole = ex.stderr.match_indices(want).any(|(at, m)| {
                    let next = ex.stderr[at + m.len()..].chars().next();
                    if toml {
                        !next.is_some_and(|c| c.is_ascii_digit())
                    } else {
                        matches!(next, None | Some('\n'))
                    }
                });
                if !whole {
                    diffs.push(format!(
                        "explain stderr lacks the configuration error\n  want: {want}\n  got:  {}",
                        ex.stderr.trim_end()
                    ));
                }
            } else {
                if ex.code != Some(1) {
                    diffs.push(format!(
                        "per-image error expected (exit 1), explain exited {:?}",
                        ex.code
                    ));
                }
                if ex.error.as_deref() != Some(error.as_str()) {
                    diffs.push(format!(
                        "error text differs\n  skopeo:  {error}\n  explain: {:?}",
                        ex.error
                    ));
                }
                if !refs.is_empty() {
                    diffs.push("explain lists sources for a failed resolution".to_string());
                }
            }
        }
        result => {
            // (a) the attempt sequence.
            let ok = matches!(result, InspectResult::Ok { .. });
            // An image whose every location is blocked will not pull: explain says so with 1.
            let all_blocked = !ex.sources.is_empty() && ex.sources.iter().all(|s| s.blocked);
            let want_code = if all_blocked { Some(1) } else { Some(0) };
            if ex.code != want_code || ex.error.is_some() {
                diffs.push(format!(
                    "skopeo made attempts but explain failed: exit {:?}, error {:?}, stderr {}",
                    ex.code,
                    ex.error,
                    ex.stderr.trim_end()
                ));
            }
            let want_len = sk.tries.len();
            let seq_ok = if ok {
                refs.len() >= want_len && refs[..want_len] == sk.tries[..]
            } else {
                refs == sk.tries
            };
            if !seq_ok {
                diffs.push(format!(
                    "source sequence differs ({})\n  skopeo tried: {}\n  explain:      {}",
                    if ok {
                        "skopeo's tries must be a prefix"
                    } else {
                        "every attempt failed: whole list"
                    },
                    sk.tries.join(" -> "),
                    refs.join(" -> ")
                ));
            }
            if !ok && sk.failures.len() != sk.tries.len() {
                diffs.push(format!(
                    "oracle parse: {} tries but {} failures",
                    sk.tries.len(),
                    sk.failures.len()
                ));
            }
            // (b) blocked and (d) insecure, per attempt.
            for (i, tried) in sk.tries.iter().enumerate() {
                let Some(src) = ex.sources.get(i).filter(|s| &s.reference == tried) else {
                    continue;
                };
                let served = ok && i + 1 == want_len;
                // Failures are logged in attempt order, one per failed attempt; pairing by position
                // keeps repeated references (the same mirror listed twice) apart.
                let err = if served {
                    None
                } else {
                    sk.failures
                        .get(i)
                        .filter(|f| &f.reference == tried)
                        .map(|f| f.error.as_str())
                };
                let prefix = err.and_then(blocked_prefix);
                if prefix.is_some() != src.blocked {
                    diffs.push(format!(
                        "{tried}: skopeo {} blocked, explain blocked={} (skopeo: {})",
                        if prefix.is_some() {
                            "reports it"
                        } else {
                            "does not report it"
                        },
                        src.blocked,
                        err.unwrap_or("served the manifest")
                    ));
                }
                if let (Some(p), Some(by)) = (prefix, &src.blocked_by) {
                    if p != by {
                        diffs.push(format!(
                            "{tried}: blocked by {p} in skopeo, blocked_by {by} in explain"
                        ));
                    }
                }
                if let Some(want) = inferred_insecure(err) {
                    if want != src.insecure {
                        diffs.push(format!(
                            "{tried}: skopeo's attempt implies insecure={want}, explain says {} (skopeo: {})",
                            src.insecure,
                            err.unwrap_or("served the manifest")
                        ));
                    }
                }
            }
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs)
    }
}

/// A readable report of one disagreement: the files, the image, both sides.
pub fn report(
    world: &World,
    s: &Scenario,
    p: &Prepared,
    sk: &Inspect,
    ex: &Explain,
    diffs: &[String],
) -> String {
    let mut r = format!("=== {} ({})\n", s.id, s.note);
    match &s.conf {
        Some(c) => r.push_str(&format!("--- registries.conf\n{}", world.expand(c))),
        None => r.push_str("--- registries.conf does not exist\n"),
    }
    for (n, t) in &s.dropins {
        r.push_str(&format!("--- drop-in {n}\n{}", world.expand(t)));
    }
    r.push_str(&format!("--- image {}\n", p.image));
    r.push_str(&format!("--- skopeo tried: {}\n", sk.tries.join(" -> ")));
    for f in &sk.failures {
        r.push_str(&format!("      {} failed: {}\n", f.reference, f.error));
    }
    r.push_str(&format!("--- skopeo result: {:?}\n", sk.result));
    r.push_str(&format!(
        "--- explain (exit {:?}): {}\n",
        ex.code,
        ex.stdout.trim_end()
    ));
    if !ex.stderr.trim().is_empty() {
        r.push_str(&format!("--- explain stderr: {}\n", ex.stderr.trim_end()));
    }
    for d in diffs {
        r.push_str(&format!("!!! {d}\n"));
    }
    r
}

/// Runs `f` over `items` on `threads` worker threads; results keep the input order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if let Ok(mut guard) = results.lock() {
                    guard[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| panic!("a worker thread panicked")))
        .collect()
}

/// Directory of the hand-written scenario fixtures.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/explain")
}

/// Loads every `*.txt` fixture of [`fixture_dir`] in file-name order; panics on a malformed file or
/// a duplicate scenario id.
pub fn load_fixtures() -> Vec<Scenario> {
    let dir = fixture_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut all: Vec<Scenario> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        let parsed =
            parse_fixture(&f.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
        for s in parsed {
            assert!(
                !all.iter().any(|o| o.id == s.id),
                "duplicate scenario id {} in {}",
                s.id,
                f.display()
            );
            all.push(s);
        }
    }
    all
}

/// Checks skopeo's run against the scenario's own expectations (`--- tries`, `--- ok`, `--- error`);
/// `Err` lists what differs.
pub fn check_expectations(
    world: &World,
    s: &Scenario,
    p: &Prepared,
    sk: &Inspect,
) -> Result<(), Vec<String>> {
    let mut diffs = Vec::new();
    if let Some(want) = &s.expect_tries {
        let want: Vec<String> = want.iter().map(|t| p.expand(world, t)).collect();
        if want != sk.tries {
            diffs.push(format!(
                "tries differ\n  expected: {}\n  skopeo:   {}",
                want.join(" -> "),
                sk.tries.join(" -> ")
            ));
        }
    }
    match (&s.expect, &sk.result) {
        (None, _) | (Some(Expect::Ok), InspectResult::Ok { .. }) => {}
        (Some(Expect::Ok), InspectResult::Failed { error, .. }) => {
            diffs.push(format!("expected success, skopeo failed: {error}"))
        }
        (Some(Expect::Error(e)), InspectResult::Failed { error, .. }) => {
            let want = p.expand(world, e);
            if &want != error {
                diffs.push(format!(
                    "error differs\n  expected: {want}\n  skopeo:   {error}"
                ));
            }
        }
        (Some(Expect::ErrorStarts(e)), InspectResult::Failed { error, .. }) => {
            let want = p.expand(world, e);
            if !error.starts_with(&want) {
                diffs.push(format!(
                    "error prefix differs\n  expected: {want}…\n  skopeo:   {error}"
                ));
            }
        }
        (Some(_), InspectResult::Ok { .. }) => {
            diffs.push("expected an error, skopeo succeeded".into())
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skopeo::Failure;

    fn sk(tries: &[&str], failures: &[(&str, &str)], result: InspectResult) -> Inspect {
        Inspect {
            tries: tries.iter().map(|s| s.to_string()).collect(),
            failures: failures
                .iter()
                .map(|(r, e)| Failure {
                    reference: r.to_string(),
                    error: e.to_string(),
                })
                .collect(),
            result,
            stderr: String::new(),
        }
    }

    fn ex(code: i32, sources: &[(&str, bool, bool)], error: Option<&str>, stderr: &str) -> Explain {
        Explain {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.to_string(),
            entry: None,
            sources: sources
                .iter()
                .map(|(r, insecure, blocked)| Source {
                    reference: r.to_string(),
                    mirror: false,
                    insecure: *insecure,
                    blocked: *blocked,
                    blocked_by: None,
                })
                .collect(),
            error: error.map(str::to_string),
        }
    }

    fn ok() -> InspectResult {
        InspectResult::Ok {
            digest: "sha256:x".into(),
        }
    }

    fn failed(e: &str) -> InspectResult {
        InspectResult::Failed {
            fatal: e.into(),
            error: e.into(),
        }
    }

    const REFUSED_HTTP: &str =
        "pinging container registry m: Get \"http://m/v2/\": dial tcp: connection refused";
    const BLOCKED: &str = "registry s is blocked in /c or /d";

    #[test]
    fn a_served_prefix_agrees_and_a_wrong_order_does_not() {
        let s = sk(&["m/x:1", "s/x:1"], &[("m/x:1", REFUSED_HTTP)], ok());
        let good = ex(
            0,
            &[
                ("m/x:1", true, false),
                ("s/x:1", true, false),
                ("t/x:1", false, false),
            ],
            None,
            "",
        );
        assert!(compare(&s, &good).is_ok());
        let swapped = ex(
            0,
            &[("s/x:1", true, false), ("m/x:1", true, false)],
            None,
            "",
        );
        assert!(compare(&s, &swapped).is_err());
    }

    #[test]
    fn a_failed_run_needs_the_whole_list_and_matching_flags() {
        let s = sk(
            &["m/x:1", "s/x:1"],
            &[("m/x:1", REFUSED_HTTP), ("s/x:1", BLOCKED)],
            failed("agg"),
        );
        assert!(compare(
            &s,
            &ex(
                0,
                &[("m/x:1", true, false), ("s/x:1", false, true)],
                None,
                ""
            )
        )
        .is_ok());
        // one source too many
        assert!(compare(
            &s,
            &ex(
                0,
                &[
                    ("m/x:1", true, false),
                    ("s/x:1", false, true),
                    ("t/x:1", false, false)
                ],
                None,
                ""
            )
        )
        .is_err());
        // blocked flag missing
        assert!(compare(
            &s,
            &ex(
                0,
                &[("m/x:1", true, false), ("s/x:1", false, false)],
                None,
                ""
            )
        )
        .is_err());
        // the mirror's HTTP retry proves insecure
        assert!(compare(
            &s,
            &ex(
                0,
                &[("m/x:1", false, false), ("s/x:1", false, true)],
                None,
                ""
            )
        )
        .is_err());
    }

    #[test]
    fn errors_before_any_attempt_compare_texts() {
        let s = sk(
            &[],
            &[],
            failed("rewriting reference: invalid reference format"),
        );
        assert!(compare(
            &s,
            &ex(
                1,
                &[],
                Some("rewriting reference: invalid reference format"),
                ""
            )
        )
        .is_ok());
        assert!(compare(&s, &ex(1, &[], Some("rewriting reference: other"), "")).is_err());
        assert!(compare(&s, &ex(0, &[("a/b:1", false, false)], None, "")).is_err());

        let cfg = sk(
            &[],
            &[],
            failed(
                "loading registries configuration: loading registries configuration \"/c\": bad",
            ),
        );
        assert!(compare(
            &cfg,
            &ex(
                2,
                &[],
                None,
                "x: loading registries configuration \"/c\": bad\n"
            )
        )
        .is_ok());
        assert!(compare(
            &cfg,
            &ex(
                2,
                &[],
                None,
                "x: loading registries configuration \"/c\": bad entry\n"
            )
        )
        .is_err());
        assert!(compare(
            &cfg,
            &ex(
                1,
                &[],
                None,
                "x: loading registries configuration \"/c\": bad\n"
            )
        )
        .is_err());

        let toml = sk(
            &[],
            &[],
            failed("loading registries configuration: loading registries configuration \"/c\": toml: line 2: expected x"),
        );
        assert!(compare(
            &toml,
            &ex(
                2,
                &[],
                None,
                "loading registries configuration \"/c\": toml: line 2: other words"
            )
        )
        .is_err());
        assert!(compare(
            &toml,
            &ex(
                2,
                &[],
                None,
                "loading registries configuration \"/c\": toml: line 2: expected x"
            )
        )
        .is_ok());
        assert!(compare(
            &toml,
            &ex(
                2,
                &[],
                None,
                "loading registries configuration \"/c\": toml: line 21: x"
            )
        )
        .is_err());
    }

    #[test]
    fn fixture_parser_reads_all_directives_and_rejects_stray_text() {
        let text = "# c\n=== X1: note\n--- conf\n[[registry]]\nlocation = \"a\"\n--- dropin 10.conf\nx = 1\n--- image a/b:1\n--- tries a/b:1 -> c/b:1\n--- error e\\nf\n--- known-failing why\n=== X2\n--- noconf\n--- image q\n--- ok\n";
        let s = parse_fixture("t", text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].conf.as_deref(),
            Some("[[registry]]\nlocation = \"a\"\n")
        );
        assert_eq!(
            s[0].dropins,
            vec![("10.conf".to_string(), "x = 1\n".to_string())]
        );
        assert_eq!(
            s[0].expect_tries,
            Some(vec!["a/b:1".to_string(), "c/b:1".to_string()])
        );
        assert_eq!(s[0].expect, Some(Expect::Error("e\nf".into())));
        assert_eq!(s[0].known_failing.as_deref(), Some("why"));
        assert_eq!(s[1].conf, None);
        assert_eq!(s[1].expect, Some(Expect::Ok));
        assert!(parse_fixture("t", "=== X\nstray\n--- image a\n").is_err());
        assert!(parse_fixture("t", "=== X\n--- conf\n").is_err());
    }
}
