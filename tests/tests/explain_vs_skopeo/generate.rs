//! Seeded random scenarios for the differential test: random prefixes (hosts, host:port,
//! namespaces, `*.`-wildcards that match 127.0.0.x, docker.io), random mirrors and flags, random
//! references. Every host is a 127.0.0.x loopback name, `localhost`, or docker.io (which skopeo
//! reaches only through the closed proxy), so nothing leaves the machine; closed ports make attempts
//! fail fast, so skopeo logs whole source lists, while the live `{SRC}`/`{MIR}`/`{MIR2}`/`{TLS}`
//! registries sometimes serve and end a list early (`{AUTH}` answers 401 without credentials).

use mirrorscope_e2e::scenario::Scenario;

/// xorshift64* (no rand crate: the sequence must stay stable across toolchains and crate versions).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Hosts a prefix, location or mirror may name.
const HOSTS: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.3",
    "{CLOSED}",
    "{CLOSED2}",
    "127.0.0.2:{CLOSEDPORT}",
    "localhost:{CLOSEDPORT}",
    "{SRC}",
    "{MIR}",
    "{MIR2}",
    "{AUTH}",
    "{TLS}",
];
const NAMESPACES: &[&str] = &["", "library", "ns", "ns/sub", "foo", "bar"];
const REPOS: &[&str] = &["tiny", "app"];
const WILDCARDS: &[&str] = &["*.0.0.1", "*.0.1", "*.1", "*.0.0.2", "*.0.0.3"];

/// A host a reference may use under wildcard `w` (mostly matching it, sometimes not).
fn wildcard_host(rng: &mut Rng, w: &str) -> &'static str {
    match w {
        "*.0.0.2" => rng.pick(&["127.0.0.2", "127.0.0.2:{CLOSEDPORT}", "127.0.0.3"]),
        "*.0.0.3" => rng.pick(&["127.0.0.3", "127.0.0.2"]),
        _ => rng.pick(&["127.0.0.1", "{SRC}", "{MIR}", "{CLOSED}", "127.0.0.2"]),
    }
}
const SUFFIXES: &[&str] = &[
    ":1", ":1", ":2", ":3", "", "@{D1}", "@{D2}", "@{DX}", ":latest",
];

fn join(host: &str, ns: &str) -> String {
    if ns.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{ns}")
    }
}

struct Entry {
    prefix: Option<String>,
    location: Option<String>,
}

/// The path under a host: mostly the repositories the live registries hold.
fn gen_path(rng: &mut Rng) -> &'static str {
    rng.pick(&[
        "library/tiny",
        "library/tiny",
        "library/tiny",
        "foo/tiny",
        "bar/tiny",
        "ns/app",
        "ns/sub/app",
        "tiny",
        "app",
    ])
}

fn gen_endpoint(rng: &mut Rng) -> String {
    let host = rng.pick(HOSTS);
    let ns = if rng.chance(35) {
        rng.pick(NAMESPACES)
    } else {
        ""
    };
    join(host, ns)
}

fn gen_entry(rng: &mut Rng, out: &mut String, entries: &mut Vec<Entry>) {
    let (prefix, location) = match rng.below(10) {
        // host or host/ns, location only (prefix defaults to it)
        0..=3 => (None, Some(gen_endpoint(rng))),
        // explicit prefix rewritten elsewhere
        4..=5 => (Some(gen_endpoint(rng)), Some(gen_endpoint(rng))),
        // wildcard, usually without location
        6..=7 => {
            let w = rng.pick(WILDCARDS).to_string();
            let loc = rng.chance(25).then(|| gen_endpoint(rng));
            (Some(w), loc)
        }
        // docker.io scopes
        8 => {
            let p = rng.pick(&["docker.io", "docker.io/library", "docker.io/ns"]);
            let loc = match rng.below(3) {
                0 => p.to_string(),
                1 => join(
                    rng.pick(HOSTS),
                    if p == "docker.io" { "" } else { "library" },
                ),
                _ => gen_endpoint(rng),
            };
            (Some(p.to_string()), Some(loc))
        }
        // occasionally malformed: prefix without location, a scheme, a trailing slash
        _ => match rng.below(4) {
            0 => (Some(gen_endpoint(rng)), None),
            1 => (None, Some(format!("https://{}", gen_endpoint(rng)))),
            2 => (None, Some(format!("{}/", gen_endpoint(rng)))),
            _ => (
                Some(format!("{}/", gen_endpoint(rng))),
                Some(gen_endpoint(rng)),
            ),
        },
    };
    out.push_str("[[registry]]\n");
    if let Some(p) = &prefix {
        out.push_str(&format!("prefix = \"{p}\"\n"));
    }
    if let Some(l) = &location {
        out.push_str(&format!("location = \"{l}\"\n"));
    }
    if rng.chance(60) {
        out.push_str("insecure = true\n");
    }
    if rng.chance(20) {
        out.push_str("blocked = true\n");
    }
    let digest_only = rng.chance(15);
    if digest_only {
        out.push_str("mirror-by-digest-only = true\n");
    }
    for _ in 0..rng.below(4) {
        out.push_str("[[registry.mirror]]\n");
        let loc = gen_endpoint(rng);
        // a trailing slash on mirrors is a 5.23-specific rewrite failure: keep it rare
        let loc = if rng.chance(3) {
            format!("{loc}/")
        } else {
            loc
        };
        out.push_str(&format!("location = \"{loc}\"\n"));
        if rng.chance(60) {
            out.push_str("insecure = true\n");
        }
        if !digest_only || rng.chance(5) {
            match rng.below(8) {
                0 => out.push_str("pull-from-mirror = \"all\"\n"),
                1 | 2 => out.push_str("pull-from-mirror = \"digest-only\"\n"),
                3 | 4 => out.push_str("pull-from-mirror = \"tag-only\"\n"),
                _ => {}
            }
        }
    }
    entries.push(Entry { prefix, location });
}

/// A reference that usually falls under one of the generated entries.
fn gen_image(rng: &mut Rng, entries: &[Entry]) -> String {
    let suffix = if rng.chance(3) {
        ":1@{D1}"
    } else {
        rng.pick(SUFFIXES)
    };
    let scope = if rng.chance(85) {
        entries
            .get(rng.below(entries.len()))
            .and_then(|e| e.prefix.clone().or_else(|| e.location.clone()))
            .filter(|s| !s.contains("://"))
            .map(|s| s.trim_end_matches('/').to_string())
    } else {
        None
    };
    let name = match scope {
        Some(w) if w.starts_with("*.") => format!("{}/{}", wildcard_host(rng, &w), gen_path(rng)),
        Some(s) if s.starts_with("docker.io") => {
            let repo = rng.pick(REPOS);
            match rng.below(5) {
                0 => repo.to_string(), // short name
                1 => format!("library/{repo}"),
                2 => format!("index.docker.io/{repo}"),
                3 => format!("docker.io/ns/{repo}"),
                _ => format!("{s}/{repo}"),
            }
        }
        // the scope itself is sometimes a whole repository
        Some(s) if s.contains('/') && rng.chance(20) => s,
        Some(s) if s.contains('/') => format!("{s}/{}", rng.pick(REPOS)),
        Some(s) => format!("{s}/{}", gen_path(rng)),
        None => format!("{}/{}", rng.pick(HOSTS), gen_path(rng)),
    };
    format!("{name}{suffix}")
}

/// Top-level keys before any table: search registries, short-name mode, credential helpers and one
/// alias (one at most: several invalid aliases are reported in Go's random map order).
fn gen_top_level(rng: &mut Rng, out: &mut String) {
    if rng.chance(12) {
        let entries = [
            "\"127.0.0.2\"",
            "\"localhost:5000\"",
            "\"example.com/\"",
            "\"example.com/ns\"",
            "\"\"",
            "\"https://example.com\"",
            "\"Example.COM\"",
            "\"127.0.0.1:{CLOSEDPORT}\"",
        ];
        let n = rng.below(3);
        let list: Vec<&str> = (0..n).map(|_| rng.pick(&entries)).collect();
        out.push_str(&format!(
            "unqualified-search-registries = [{}]\n",
            list.join(", ")
        ));
    }
    if rng.chance(6) {
        let mode = rng.pick(&[
            "enforcing",
            "permissive",
            "disabled",
            "",
            "prompt",
            "Enforcing",
        ]);
        out.push_str(&format!("short-name-mode = \"{mode}\"\n"));
    }
    if rng.chance(5) {
        // Only the built-in helper: skopeo looks credentials up before the blocked check, so a
        // missing helper binary would mask the behaviour under test.
        out.push_str("credential-helpers = [\"containers-auth.json\"]\n");
    }
    if rng.chance(8) {
        let (k, v) = match rng.below(9) {
            0 => ("app", "docker.io/app"),
            1 => ("app", "quay.io/ns/app"),
            2 => ("ns/app", "127.0.0.1:{CLOSEDPORT}/ns/app"),
            3 => ("app", ""),
            4 => ("example.com/app", "quay.io/app"),
            5 => ("app:1", "quay.io/app"),
            6 => ("app", "ns/app"),
            7 => ("app", "quay.io/app@{D1}"),
            _ => ("App", "quay.io/app"),
        };
        out.push_str(&format!("[aliases]\n\"{k}\" = \"{v}\"\n"));
    }
}

/// A legacy v1 main file (sometimes with empty arrays, which 5.23 does not count as v1).
fn gen_v1(rng: &mut Rng, out: &mut String, entries: &mut Vec<Entry>) {
    for table in ["search", "insecure", "block"] {
        if !rng.chance(60) {
            continue;
        }
        let hosts: Vec<String> = (0..rng.below(3))
            .map(|_| {
                let h = gen_endpoint(rng);
                match rng.below(12) {
                    0 => format!("{h}/"),
                    1 if table != "search" => format!("http://{h}"),
                    _ => h,
                }
            })
            .collect();
        if table != "search" {
            for h in &hosts {
                entries.push(Entry {
                    prefix: None,
                    location: Some(h.clone()),
                });
            }
        }
        let quoted: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        out.push_str(&format!(
            "[registries.{table}]\nregistries = [{}]\n",
            quoted.join(", ")
        ));
    }
}

/// Odd but plausible reference shapes: uppercase, separators, ports, long tags, other digests.
fn oddify(rng: &mut Rng, image: &str) -> String {
    match rng.below(10) {
        0 => image.to_uppercase(),
        1 => image.replacen("tiny", "ti_ny", 1),
        2 => image.replacen("tiny", "ti__ny", 1),
        3 => image.replacen("tiny", "ti-.ny", 1),
        4 => format!("{image}{}", "x".repeat(130)),
        5 => image.replacen("127.0.0.1", "127.0.0.1:0", 1),
        6 => image.replacen("127.0.0.", "Localhost.", 1),
        7 => format!(
            "{}@sha512:{}",
            image.split(['@']).next().unwrap_or(image),
            "ab".repeat(64)
        ),
        8 => format!("{image}@sha256:{}", "A".repeat(64)),
        _ => format!("{}/{}", "a".repeat(250), image),
    }
}

/// `n` scenarios from `seed`, ids `R<seed>-<i>`.
pub fn scenarios(seed: u64, n: usize) -> Vec<Scenario> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let mut conf = String::new();
            let mut entries = Vec::new();
            gen_top_level(&mut rng, &mut conf);
            if rng.chance(8) {
                gen_v1(&mut rng, &mut conf, &mut entries);
            } else {
                for _ in 0..1 + rng.below(3) {
                    gen_entry(&mut rng, &mut conf, &mut entries);
                }
            }
            let mut dropins = Vec::new();
            if rng.chance(30) {
                for _ in 0..1 + rng.below(2) {
                    let name = rng.pick(&["10.conf", "9.conf", "a.conf", "50-x.conf"]);
                    if dropins.iter().any(|(n, _)| n == name) {
                        continue;
                    }
                    let mut text = String::new();
                    for _ in 0..1 + rng.below(2) {
                        gen_entry(&mut rng, &mut text, &mut entries);
                    }
                    dropins.push((name.to_string(), text));
                }
            }
            let mut image = gen_image(&mut rng, &entries);
            if rng.chance(6) {
                image = oddify(&mut rng, &image);
            }
            Scenario {
                id: format!("R{seed}-{i}"),
                note: "generated".to_string(),
                conf: Some(conf),
                dropins,
                image,
                expect_tries: None,
                expect: None,
                known_failing: None,
                layout: Vec::new(),
            }
        })
        .collect()
}
