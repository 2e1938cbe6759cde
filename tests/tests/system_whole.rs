//! The whole system on one machine, with real parts only: two simulated nodes, each with its own
//! host root (registries.conf, the MCD's currentconfig) and its own journal, written live by a
//! `systemd-journal-remote` per node (so that each node's entries carry its own `_HOSTNAME` as
//! on a real node; two journalds on one machine would both say this machine's); a real
//! `mirrorscope-agent run` per node pushing to one real `mirrorscope-collector`; real
//! docker-registry instances on 127.0.0.1 as the mirror (LOCAL) and as a source; real skopeo
//! pulls through each node's registries.conf, whose containers/image lines are written into
//! that node's journal as CRI-O and the kubelet write them; and the `mirrorscope` CLI.
//!
//! The scenarios admins hit: an ImageTagMirrorSet `docker.io -> LOCAL`
//! with NeverContactSource, rendered by `mirrorscope render` and rolled out to worker-1 then
//! worker-2 (`mirrorscope wait` returns only after both); a pull served by the mirror; a pull
//! that fails because the mirror lacks `library/` (blocked source, `manifest unknown` at the
//! mirror); a silent fallback to a source under AllowContactingSource. docker.io is never
//! contacted: skopeo runs with HTTP(S)_PROXY=http://127.0.0.1:9 and docker.io is blocked.
//! Finally the alert rules meet the real exports: the series of the promtool unit tests have the
//! names and labels the agents and the collector serve, and promtool, fed the collector's own
//! scrapes from before and after the pulls, fires exactly the blocked and fallback alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirrorscope_e2e::agent::{Agent, HostRoot};
use mirrorscope_e2e::child::ChildGuard;
use mirrorscope_e2e::collector::{
    bin, cli, http, machine_config_object, write_atomic, Collector, TempDir,
};
use mirrorscope_e2e::journal::{
    crio_msg, export, klog_entries, require, Entry, TimeFormat, JOURNAL_REMOTE,
};
use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::Registry;
use mirrorscope_e2e::skopeo::{inspect_raw, Inspect, InspectResult, SkopeoHome};
use serde_json::Value;

/// Pull records are final once the correlator's linger passed after the pull, then pushed.
const RECORDS: Duration = Duration::from_secs(60);

/// What the nodes had before the mirror sets: MCO's base registries.conf.
const OLD_CONF: &str = "unqualified-search-registries = [\"registry.access.redhat.com\", \"docker.io\"]\nshort-name-mode = \"\"\n";

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A node's journal: systemd-journal-remote turning export-format entries on its stdin into a
/// journal file the agent follows while it grows.
struct LiveJournal {
    child: Child,
    dir: PathBuf,
}

impl LiveJournal {
    fn start(dir: PathBuf) -> LiveJournal {
        require(JOURNAL_REMOTE);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(JOURNAL_REMOTE)
            .arg(format!("--output={}", dir.join("system.journal").display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        LiveJournal { child, dir }
    }

    fn write(&mut self, entries: &[Entry]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(&export(entries)).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for LiveJournal {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A simulated node: its host root, its journal, its agent.
struct Node {
    name: String,
    root: HostRoot,
    journal: LiveJournal,
    agent: Option<Agent>,
}

impl Node {
    fn new(name: &str) -> Node {
        let root = HostRoot::new(&format!("system-{name}"));
        let journal = LiveJournal::start(root.at("/var/log/journal/live"));
        let mut node = Node {
            name: name.to_owned(),
            root,
            journal,
            agent: None,
        };
        // The journal file exists before the agent starts following it.
        node.crio("Starting CRI-O", None);
        node.apply("rendered-worker-old", OLD_CONF);
        node
    }

    /// What the MCD does for a registries-only change: the file, then currentconfig.
    fn apply(&self, machine_config: &str, registries_conf: &str) {
        write_atomic(
            &self.root.at("/etc/containers/registries.conf"),
            registries_conf.as_bytes(),
        );
        let mc = machine_config_object(machine_config, registries_conf);
        write_atomic(
            &self.root.at("/etc/machine-config-daemon/currentconfig"),
            serde_json::to_string(&mc).unwrap().as_bytes(),
        );
    }

    fn start_agent(&mut self, collector: &str, token: &str) {
        let token_file = self.root.at("/token");
        std::fs::write(&token_file, token).unwrap();
        let args = [
            "--host-root".to_owned(),
            self.root.path().display().to_string(),
            "--state-dir".to_owned(),
            self.root.at("/state").display().to_string(),
            "--journal-dir".to_owned(),
            self.journal.dir.display().to_string(),
            "--node-name".to_owned(),
            self.name.clone(),
            "--collector".to_owned(),
            collector.to_owned(),
            "--token-file".to_owned(),
            token_file.display().to_string(),
        ];
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.agent = Some(Agent::start(&a));
    }

    fn agent(&self) -> &Agent {
        self.agent.as_ref().unwrap()
    }

    /// Entries as this node's journald stores them: its own host name.
    fn write(&mut self, mut entries: Vec<Entry>) {
        for e in &mut entries {
            e.set("_HOSTNAME", &self.name);
        }
        self.journal.write(&entries);
    }

    fn crio(&mut self, msg: &str, id: Option<&str>) {
        let usec = now_usec();
        let line = crio_msg(usec, TimeFormat::Rfc3339Nano, msg, id);
        self.write(vec![Entry::crio(usec, &line)]);
    }

    /// The MCD's rollout of a new rendered config: files, then (once the agent saw them) the
    /// CRI-O reload it triggers.
    fn roll_out(&mut self, machine_config: &str, registries_conf: &str) {
        let before = self.agent().report()["registries"]["effective_canonical"].clone();
        self.apply(machine_config, registries_conf);
        self.agent()
            .wait_report("the new registries.conf", Duration::from_secs(20), |r| {
                r["registries"]["effective_canonical"] != before
                    && r["machine_config"]["current_config"] == machine_config
            });
        std::thread::sleep(Duration::from_millis(50));
        self.crio("Applied new registry configuration: ", None);
    }

    /// One pull as CRI-O logs it (`Pulling image`, each `Trying to access`, `Pulled image`), or,
    /// when skopeo failed, as the kubelet logs the failure it gets back from CRI-O.
    fn journal_pull(&mut self, id: &str, image: &str, run: &Inspect) {
        let tf = TimeFormat::Rfc3339Nano;
        let crio = |msg: &str, id: Option<&str>| {
            let usec = now_usec();
            Entry::crio(usec, &crio_msg(usec, tf, msg, id))
        };
        let mut entries = vec![crio(&format!("Pulling image: {image}"), Some(id))];
        for t in &run.tries {
            entries.push(crio(&format!("Trying to access \"{t}\""), None));
        }
        match &run.result {
            InspectResult::Ok { digest } => {
                let name = image.split('@').next().unwrap();
                let name = match name.rfind(':') {
                    Some(i) if !name[i..].contains('/') => &name[..i],
                    _ => name,
                };
                entries.push(crio(&format!("Pulled image: {name}@{digest}"), Some(id)));
            }
            InspectResult::Failed { error, .. } => {
                let err = format!(
                    "rpc error: code = Unknown desc = initializing source docker://{image}: {error}"
                );
                entries.extend(klog_entries(
                    now_usec(),
                    'E',
                    "log.go:32",
                    "PullImage from image service failed",
                    &[("err", &err), ("image", image)],
                ));
            }
        }
        self.write(entries);
    }
}

fn run_cli(collector: &Collector, args: &[&str]) -> String {
    let out = cli(&collector.url, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("$ mirrorscope {}\n{stdout}", args.join(" "));
    assert_eq!(
        out.status.code(),
        Some(0),
        "mirrorscope {args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn poll(what: &str, within: Duration, mut ok: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + within;
    loop {
        let state = match ok() {
            None => return,
            Some(s) => s,
        };
        assert!(
            Instant::now() < deadline,
            "never {what} within {within:?}; last state:\n{state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn landed(collector: &Collector) -> BTreeSet<String> {
    collector.get_json("/v1/nodes")["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["landed"] == true)
        .map(|n| n["node"].as_str().unwrap().to_owned())
        .collect()
}

/// The desired objects: an ITMS docker.io -> LOCAL (NeverContactSource), an ITMS for the team
/// source with the default AllowContactingSource, and the insecure (plain HTTP) registries.
fn desired_objects(dir: &Path, local: &str, source: &str) -> PathBuf {
    let d = dir.join("desired");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("itms.yaml"),
        format!(
            r#"apiVersion: config.openshift.io/v1
kind: ImageTagMirrorSet
metadata:
  name: docker-io
spec:
  imageTagMirrors:
    - source: docker.io
      mirrors: ["{local}"]
      mirrorSourcePolicy: NeverContactSource
---
apiVersion: config.openshift.io/v1
kind: ImageTagMirrorSet
metadata:
  name: team
spec:
  imageTagMirrors:
    - source: {source}/team
      mirrors: ["{local}/team"]
"#
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("image.yaml"),
        format!(
            r#"apiVersion: config.openshift.io/v1
kind: Image
metadata:
  name: cluster
spec:
  registrySources:
    insecureRegistries: ["{local}", "{source}"]
"#
        ),
    )
    .unwrap();
    d
}

/// `mirrorscope render --output-dir`: the registries.conf MCO will write to every node.
fn render(desired: &Path, out: &Path) -> String {
    let o = Command::new(bin("mirrorscope"))
        .args(["render", "-f"])
        .arg(desired)
        .arg("--output-dir")
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "render: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(out.join("etc/containers/registries.conf")).unwrap()
}

/// `name{k="v",...}` sample lines of a /metrics body: name -> label sets.
fn samples(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels) = parse_series(line.rsplit_once(' ').unwrap().0);
        out.entry(name).or_default().push(labels);
    }
    out
}

/// `name{k="v",...}` -> (name, labels). Label values in these tests hold no `,` or `"`.
fn parse_series(s: &str) -> (String, BTreeMap<String, String>) {
    let (name, rest) = s.split_once('{').unwrap_or((s, "}"));
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
        })
        .collect();
    (name.trim().to_owned(), labels)
}

/// Labels Prometheus adds at scrape time (the ServiceMonitors' targets), not the exporters.
const TARGET_LABELS: [&str; 5] = ["job", "instance", "namespace", "pod", "node"];

#[test]
fn rollout_mirror_hit_blocked_pull_and_fallback_seen_through_the_cli() {
    // Registries: LOCAL (the mirror) and a source for the team images.
    let mirror = Registry::plain();
    let source = Registry::plain();
    let (local, src) = (mirror.host(), source.host());
    oci::seed(&mirror, "library/tiny", "1", "tiny-1");
    // Copied without `library/`: every redirected docker.io/library/nginx pull misses.
    oci::seed(&mirror, "nginx", "1.25.3", "nginx-1.25.3");
    oci::seed(&source, "team/app", "2", "app-2");

    // What the admin applies, rendered before applying.
    let work = TempDir::new("system");
    let desired = desired_objects(work.path(), &local, &src);
    let rendered = render(&desired, &work.path().join("rendered"));
    assert!(
        rendered.contains("location = \"docker.io\"\n  blocked = true"),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!("location = \"{local}\"")),
        "{rendered}"
    );
    // And planned: from a cluster with no mirror sets, the tag mirrors make every node drain.
    let current = work.path().join("current.yaml");
    std::fs::write(
        &current,
        "apiVersion: config.openshift.io/v1\nkind: Image\nmetadata: {name: cluster}\nspec: {}\n",
    )
    .unwrap();
    let planned = Command::new(bin("mirrorscope"))
        .args(["plan", "--current", current.to_str().unwrap(), "-f"])
        .arg(&desired)
        .args(["-o", "json"])
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(
        planned.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let planned: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(
        planned["disruption"]["action"], "drain-and-reload-crio",
        "{planned}"
    );
    assert!(
        planned["files"][0]["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("+  location = \"docker.io\""),
        "{planned}"
    );

    // The collector: desired state from the same objects, one token per node.
    let tokens = work.path().join("tokens");
    std::fs::write(&tokens, "token-w1 worker-1\ntoken-w2 worker-2\n").unwrap();
    let collector = Collector::start(&[
        "--desired",
        desired.to_str().unwrap(),
        "--tokens-file",
        tokens.to_str().unwrap(),
        "--stale-after",
        "30s",
        "--audit-interval",
        "2s",
    ]);
    let mut nodes = [Node::new("worker-1"), Node::new("worker-2")];
    for (n, token) in nodes.iter_mut().zip(["token-w1", "token-w2"]) {
        n.start_agent(&collector.url, token);
    }
    poll(
        "both nodes reported, none landed",
        Duration::from_secs(30),
        || {
            let v = collector.get_json("/v1/nodes");
            let names: BTreeSet<&str> = v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["node"].as_str().unwrap())
                .collect();
            (names != BTreeSet::from(["worker-1", "worker-2"]) || !landed(&collector).is_empty())
                .then(|| format!("{v:#}"))
        },
    );
    let status = run_cli(&collector, &["status"]);
    assert!(status.contains("Rollout: 0 of 2 nodes landed"), "{status}");

    // `wait` started before the rollout returns only once both nodes have landed.
    let mut wait = ChildGuard::new(
        Command::new(bin("mirrorscope"))
            .args(["wait", "--desired"])
            .arg(&desired)
            .args(["--nodes", "worker-1,worker-2", "--timeout", "120s"])
            .env("MIRRORSCOPE_COLLECTOR", &collector.url)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    nodes[0].roll_out("rendered-worker-new", &rendered);
    poll("worker-1 landed", Duration::from_secs(30), || {
        let l = landed(&collector);
        (l != BTreeSet::from(["worker-1".to_owned()]))
            .then(|| format!("{:#}", collector.get_json("/v1/nodes")))
    });
    // Long enough for several of wait's checks (every 250 ms).
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        wait.try_wait().unwrap().is_none(),
        "wait returned with only worker-1 landed"
    );
    let status = run_cli(&collector, &["status"]);
    assert!(status.contains("Rollout: 1 of 2 nodes landed"), "{status}");
    assert!(status.contains("worker-2"), "{status}");
    let nodes_table = run_cli(&collector, &["nodes"]);
    let row = |name: &str| {
        nodes_table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{nodes_table}"))
            .to_owned()
    };
    assert!(row("worker-1").contains("Landed"), "{nodes_table}");
    assert!(row("worker-2").contains("Lagging"), "{nodes_table}");
    // Every check of the lagging node: still on the old MachineConfig and the old rendering.
    let detail = run_cli(&collector, &["nodes", "worker-2"]);
    assert!(detail.contains("State:          Lagging"), "{detail}");
    assert!(
        detail.contains("MachineConfig:  rendered-worker-old"),
        "{detail}"
    );
    let check = |name: &str| {
        detail
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no check {name}:\n{detail}"))
            .to_owned()
    };
    assert!(check("desired").contains("pending"), "{detail}");
    assert!(check("valid").contains("pass"), "{detail}");
    assert!(check("machine_config").contains("pass"), "{detail}");

    let rolled = Instant::now();
    nodes[1].roll_out("rendered-worker-new", &rendered);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status_code = loop {
        if let Some(st) = wait.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "wait did not return after worker-2 landed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = wait.into_inner().wait_with_output().unwrap();
    let wait_stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        status_code.code(),
        Some(0),
        "{wait_stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_stdout.contains("landed: 2 of 2 nodes"),
        "{wait_stdout}"
    );
    assert!(rolled.elapsed() < Duration::from_secs(30));
    let status = run_cli(&collector, &["status"]);
    assert!(status.contains("Rollout: 2 of 2 nodes landed"), "{status}");

    let (_, metrics_before_pulls) = http(&collector.url, "GET", "/metrics", &[], b"");

    // Pulls through the rendered registries.conf, as CRI-O would do them on the nodes.
    let home = SkopeoHome::new();
    let conf = nodes[0].root.at("/etc/containers/registries.conf");
    let hit = "docker.io/library/tiny:1";
    let miss = "docker.io/library/nginx:1.25.3";
    let team = format!("{src}/team/app:2");
    let pulls = [
        (0, "5e5e0001-0000-4000-8000-000000000001", hit.to_owned()),
        (0, "5e5e0001-0000-4000-8000-000000000002", miss.to_owned()),
        (0, "5e5e0001-0000-4000-8000-000000000003", team.clone()),
        (1, "5e5e0001-0000-4000-8000-000000000004", hit.to_owned()),
    ];
    for (i, id, image) in &pulls {
        let i = *i;
        let run = inspect_raw(&home, &conf, image);
        // docker.io is never contacted, not even through the (closed) proxy.
        assert!(!run.stderr.contains("127.0.0.1:9"), "{}", run.stderr);
        assert!(
            !run.tries.iter().any(|t| t.starts_with("docker.io/"))
                || matches!(run.result, InspectResult::Failed { .. }),
            "{}",
            run.stderr
        );
        nodes[i].journal_pull(id, image, &run);
        // The oracle did what each scenario is about.
        match image.as_str() {
            i if i == hit => {
                assert_eq!(
                    run.tries,
                    [format!("{local}/library/tiny:1")],
                    "{}",
                    run.stderr
                );
                assert!(matches!(run.result, InspectResult::Ok { .. }));
            }
            i if i == miss => {
                assert_eq!(
                    run.tries,
                    [format!("{local}/library/nginx:1.25.3"), miss.to_owned()],
                    "{}",
                    run.stderr
                );
                let InspectResult::Failed { error, .. } = &run.result else {
                    panic!("{}", run.stderr)
                };
                assert!(error.contains("manifest unknown"), "{error}");
                assert!(error.contains("registry docker.io is blocked"), "{error}");
            }
            _ => {
                assert_eq!(
                    run.tries,
                    [format!("{local}/team/app:2"), team.clone()],
                    "{}",
                    run.stderr
                );
                assert!(matches!(run.result, InspectResult::Ok { .. }));
            }
        }
    }

    poll("all four pulls at the collector", RECORDS, || {
        let v = collector.get_json("/v1/pulls");
        let n = v["pulls"].as_array().map(Vec::len).unwrap_or(0);
        (n < pulls.len()).then(|| format!("{v:#}"))
    });
    let v: Value = serde_json::from_str(&run_cli(&collector, &["pulls", "-o", "json"])).unwrap();
    let recs = v["pulls"].as_array().unwrap();
    assert_eq!(recs.len(), 4, "{v:#}");
    let rec = |id: &str| recs.iter().find(|r| r["pull_id"] == id).unwrap();
    for (i, id, image) in &pulls {
        let r = rec(id);
        assert_eq!(r["node"], nodes[*i].name, "{r:#}");
        assert_eq!(r["image"], image.as_str(), "{r:#}");
    }
    // Served by the mirror, on both nodes: the Pod would still say docker.io.
    for id in [pulls[0].1, pulls[3].1] {
        let r = rec(id);
        assert_eq!(r["outcome"], "pulled", "{r:#}");
        assert_eq!(r["served_by"], format!("{local}/library/tiny:1"), "{r:#}");
        assert_eq!(r["via_mirror"], true, "{r:#}");
        assert_eq!(r["fallback"], false, "{r:#}");
    }
    // Blocked: the mirror lacks library/, the source may not be contacted.
    let r = rec(pulls[1].1);
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["served_by"], Value::Null, "{r:#}");
    let classes: Vec<(&str, &str)> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["reference"].as_str().unwrap(),
                a["error_class"].as_str().unwrap_or("null"),
            )
        })
        .collect();
    let local_nginx = format!("{local}/library/nginx:1.25.3");
    assert_eq!(
        classes,
        [
            (local_nginx.as_str(), "manifest_unknown"),
            (miss, "blocked")
        ],
        "{r:#}"
    );
    // The silent fallback: the mirror missed, the source served.
    let r = rec(pulls[2].1);
    assert_eq!(r["outcome"], "pulled", "{r:#}");
    assert_eq!(r["served_by"], team.as_str(), "{r:#}");
    assert_eq!(r["fallback"], true, "{r:#}");
    assert_eq!(r["via_mirror"], false, "{r:#}");

    // The tables an admin reads.
    let table = run_cli(&collector, &["pulls"]);
    let line_of = |t: &str, image: &str, node: &str| {
        t.lines()
            .find(|l| l.contains(&format!(" {image} ")) && l.contains(node))
            .unwrap_or_else(|| panic!("no row {image} on {node}:\n{t}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // STARTED NODE IMAGE OUTCOME SERVED-BY FALLBACK
    assert_eq!(
        line_of(&table, hit, "worker-2")[1..],
        [
            "worker-2",
            hit,
            "pulled",
            &format!("{local}/library/tiny:1"),
            "no"
        ]
    );
    assert_eq!(
        line_of(&table, miss, "worker-1")[1..],
        ["worker-1", miss, "failed", "-", "no"]
    );
    assert_eq!(
        line_of(&table, &team, "worker-1")[1..],
        ["worker-1", team.as_str(), "pulled", team.as_str(), "yes"]
    );
    let on_w2 = run_cli(&collector, &["pulls", "--node", "worker-2"]);
    assert_eq!(on_w2.lines().count(), 2, "{on_w2}");
    assert!(on_w2.contains(hit), "{on_w2}");
    let fallbacks = run_cli(&collector, &["pulls", "--fallback"]);
    assert!(fallbacks.contains(&team), "{fallbacks}");
    assert!(
        !fallbacks.contains(hit) && !fallbacks.contains(miss),
        "{fallbacks}"
    );
    let failed = run_cli(&collector, &["pulls", "--failed", "-o", "wide"]);
    assert!(failed.contains(miss) && !failed.contains(hit), "{failed}");
    assert!(
        failed.contains(&format!("{local_nginx} > {miss}")),
        "{failed}"
    );
    // The cause is the mirror's answer; the blocked source only says nothing was left to try.
    let row = failed.lines().find(|l| l.contains(miss)).unwrap();
    assert!(
        row.trim_end().ends_with("manifest unknown") && !row.contains("is blocked"),
        "{failed}"
    );
    let json = run_cli(&collector, &["pulls", "--failed", "-o", "json"]);
    assert!(json.contains("registry docker.io is blocked"), "{json}");

    let regs = run_cli(&collector, &["registries"]);
    let reg_row = |name: &str| {
        regs.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name}:\n{regs}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // REGISTRY PULLS MIRROR SOURCE FALLBACKS BLOCKED FAILED MIRROR-RULE
    assert_eq!(
        reg_row("docker.io"),
        ["docker.io", "3", "2", "0", "0", "1", "1", "yes"]
    );
    assert_eq!(
        reg_row(&src),
        [src.as_str(), "1", "0", "1", "1", "0", "0", "yes"]
    );

    // Where a node would pull the failing image from, explained with that node's files.
    let explain = run_cli(&collector, &["explain", miss, "--node", "worker-1"]);
    assert!(explain.contains(&format!("1. {local_nginx}")), "{explain}");
    assert!(explain.contains("mirror"), "{explain}");
    assert!(
        explain.contains(&format!("2. {miss}")) && explain.contains("BLOCKED"),
        "{explain}"
    );

    // The status page and the metrics the alerts use.
    let (code, page) = http(&collector.url, "GET", "/", &[], b"");
    assert_eq!(code, 200);
    assert!(
        page.contains("worker-1") && page.contains("worker-2"),
        "{page}"
    );
    // The audit (every 2 s here) has seen the pulls: the failing image fails it too.
    poll(
        "an audit of the pulled images",
        Duration::from_secs(30),
        || {
            let audit = collector.get_json("/v1/audit");
            let failing = audit["last"]["summary"]["fail"]
                .as_u64()
                .is_some_and(|n| n > 0);
            (!failing).then(|| audit.to_string())
        },
    );
    let (_, collector_metrics) = http(&collector.url, "GET", "/metrics", &[], b"");
    let mut scraped = samples(&collector_metrics);
    for n in &nodes {
        for (k, v) in samples(&n.agent().metrics()) {
            scraped.entry(k).or_default().extend(v);
        }
    }
    let value = |series: &str| {
        collector_metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(
        value("mirrorscope_cluster_blocked_total{registry=\"docker.io\"}").as_deref(),
        Some("1"),
        "{collector_metrics}"
    );
    assert_eq!(
        value(&format!(
            "mirrorscope_cluster_fallbacks_total{{registry=\"{src}\"}}"
        ))
        .as_deref(),
        Some("1"),
        "{collector_metrics}"
    );
    check_alert_test_series(&scraped);
    alerts_fire_on_the_real_scrapes(&metrics_before_pulls, &collector_metrics, &src);

    for n in &mut nodes {
        let (st, _) = n.agent.take().unwrap().terminate();
        assert!(st.success(), "{} agent exit: {st}", n.name);
    }
}

/// Each `mirrorscope_*` series the promtool unit tests feed the alert rules has the exact name
/// and label names (without the scrape-time target labels) of a series the running collector
/// and agents export, and the enumerated label values the rules match on are real ones.
fn check_alert_test_series(scraped: &BTreeMap<String, Vec<BTreeMap<String, String>>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/alerts_test.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let Some(s) = line.trim().strip_prefix("- series: '") else {
            continue;
        };
        let (name, labels) = parse_series(s.trim_end_matches('\''));
        if !name.starts_with("mirrorscope_") {
            continue;
        }
        let own: BTreeSet<&str> = labels
            .keys()
            .map(String::as_str)
            .filter(|k| !TARGET_LABELS.contains(k))
            .collect();
        let real = scraped
            .get(&name)
            .unwrap_or_else(|| panic!("{name} (alerts_test.yaml) is not exported:\n{scraped:#?}"));
        assert!(
            real.iter()
                .any(|l| l.keys().map(String::as_str).collect::<BTreeSet<_>>() == own),
            "{s}: no exported {name} has exactly the labels {own:?}: {real:?}"
        );
        for (k, v) in &labels {
            if ["served_by_kind", "outcome", "error_class"].contains(&k.as_str()) {
                assert!(
                    real.iter().any(|l| l.get(k) == Some(v)),
                    "{s}: {k}={v} never exported: {real:?}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} series checked");
    // The rollout states the alerts match on.
    let states: BTreeSet<&str> = scraped["mirrorscope_nodes"]
        .iter()
        .filter_map(|l| l.get("state").map(String::as_str))
        .collect();
    assert!(
        states.is_superset(&BTreeSet::from(["lagging", "stale", "landed"])),
        "{states:?}"
    );
}

/// The collector's two real scrapes (after the rollout, after the pulls) as a Prometheus would
/// have stored them: the first for 12 minutes, then the second. promtool must fire exactly the
/// blocked-pull alert for docker.io and the fallback alert for the team source, and no other.
fn alerts_fire_on_the_real_scrapes(before: &str, after: &str, source: &str) {
    let rules = kustomized_rules();
    let dir = TempDir::new("system-promtool");
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    let before = samples_with_values(before);
    let mut series = String::new();
    for (s, v) in samples_with_values(after) {
        let old = before.get(&s).cloned().unwrap_or_else(|| "_".into());
        let labelled = match s.split_once('{') {
            Some((name, rest)) => {
                format!("{name}{{job=\"mirrorscope-collector\",instance=\"collector:8080\",{rest}")
            }
            None => format!("{s}{{job=\"mirrorscope-collector\",instance=\"collector:8080\"}}"),
        };
        series.push_str(&format!(
            "      - series: '{labelled}'\n        values: '{old}x11 {v}x33'\n"
        ));
    }
    let all = [
        "MirrorscopeRegistriesNotLanded",
        "MirrorscopePullsFallingBackToSource",
        "MirrorscopePullsBlocked",
        "MirrorscopeAgentStale",
        "MirrorscopeDesiredConfigRefused",
    ];
    let blocked = (
        "MirrorscopePullsBlocked",
        "severity: critical, registry: docker.io".to_owned(),
        "Pulls from docker.io fail: the source is blocked and no mirror served them".to_owned(),
        "1 pull(s) of docker.io images failed in the last 15 minutes with the source blocked (NeverContactSource) and every mirror failing, typically `manifest unknown` on a stale or mis-pathed mirror. `mirrorscope pulls --failed --registry docker.io`.".to_owned(),
    );
    let fallback = (
        "MirrorscopePullsFallingBackToSource",
        format!("severity: warning, registry: \"{source}\""),
        format!("Pulls from {source} fall back to the source"),
        format!("1 pull(s) of {source} images in the last 30 minutes were served by the source after a mirror was tried. Under NeverContactSource these pulls would fail. `mirrorscope pulls --fallback --registry {source}`."),
    );
    let mut checks = String::new();
    // Before the pulls nothing fires; both pull alerts right after them; only the fallback
    // (30-minute window) once the blocked pull is out of its 15-minute window.
    for (at, firing) in [
        (8, vec![]),
        (20, vec![&blocked, &fallback]),
        (40, vec![&fallback]),
    ] {
        for a in all {
            match firing.iter().find(|f| f.0 == a) {
                Some((_, labels, summary, description)) => checks.push_str(&format!(
                    "      - eval_time: {at}m\n        alertname: {a}\n        exp_alerts:\n          - exp_labels: {{{labels}}}\n            exp_annotations:\n              summary: \"{summary}\"\n              description: \"{description}\"\n              runbook: docs/runbooks.md#{}\n",
                    a.to_lowercase()
                )),
                None => checks.push_str(&format!(
                    "      - eval_time: {at}m\n        alertname: {a}\n        exp_alerts: []\n"
                )),
            }
        }
    }
    let test = format!(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n{checks}"
    );
    std::fs::write(dir.path().join("real_test.yaml"), &test).unwrap();
    let out = Command::new("/usr/bin/promtool")
        .args(["test", "rules", "real_test.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("/usr/bin/promtool (Debian prometheus, tests/deps.txt): {e}"));
    assert!(
        out.status.success(),
        "promtool test rules on the real scrapes:\n{}{}\n--- test ---\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `series -> value` of a /metrics body.
fn samples_with_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(s, v)| (s.to_owned(), v.to_owned()))
        .collect()
}

/// The PrometheusRule's groups from the rendered base, as a Prometheus rule file.
fn kustomized_rules() -> String {
    let out = Command::new("/usr/bin/kubectl")
        .arg("kustomize")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base"))
        .output()
        .unwrap_or_else(|e| panic!("/usr/bin/kubectl (1.32, with kustomize): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rule = serde_norway::Deserializer::from_str(&text)
        .map(|d| <serde_norway::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "PrometheusRule")
        .unwrap();
    serde_norway::to_string(&rule["spec"]).unwrap()
}
