//! Differential test of the TOML error texts: `mirrorscope explain --containers-image-version
//! 5.23` against Debian's skopeo (containers/image 5.23.1, BurntSushi/toml 1.2.0) on malformed
//! registries.conf files, hand-written and generated from mutations of valid ones. The whole
//! error text must be equal: `toml: line N (last key "K"): message`. A file with several type
//! errors is the one exception: Go's map order decides which one it reports, so ours must be one
//! skopeo reports on some run.

use std::path::Path;
use std::process::Command;

use mirrorscope_e2e::scenario::{mirrorscope_bin, parallel_map};
use mirrorscope_e2e::skopeo::{inspect_raw, InspectResult, SkopeoHome};

const IMAGE: &str = "a.example/x:1";
const WRAPPER: &str = "loading registries configuration: ";

/// Hand-written malformed files, one per error path of BurntSushi's lexer, parser and decoder.
const HAND: &[&str] = &[
    // syntax
    "invalid\n",
    "invalid",
    "x = 1\ninvalid\n",
    "[[registry]]\nlocation\n",
    "= 1\n",
    ".a = 1\n",
    "a. = 1\n",
    "a..b = 1\n",
    "a = \n",
    "a =",
    "a = 1 2\n",
    "a = 1 # ok\nb = 2 c\n",
    "[\n",
    "[]\n",
    "[.a]\n",
    "[a\n",
    "[a.]\n",
    "[a b]\n",
    "[[a]\n",
    "[[a] ]\n",
    "[[]]\n",
    "[a] x\n",
    // strings
    "[[registry]]\nlocation = \"unterminated\n",
    "[[registry]]\nlocation = \"unterminated",
    "location = 'raw\n",
    "location = 'raw",
    "location = \"\"\"multi\nline",
    "location = '''multi\nline",
    "location = \"bad \\q escape\"\n",
    "location = \"bad \\ escape\"\n",
    "location = \"\\u12\"\n",
    "location = \"\\U1234567\"\n",
    "location = \"\\uD800\"\n",
    "location = \"\\U00110000\"\n",
    "location = \"\"\"a\"\"\"\"\"\"\n",
    "location = '''a''''''\n",
    "location = \"tab\u{1}ctl\"\n",
    "location = \"a\"\rb = 1\n",
    "a = \"\"\"x \\\n",
    // values
    "[[registry]]\ninsecure = yes\n",
    "[[registry]]\ninsecure = True\n",
    "a = .5\n",
    "a = +.5\n",
    "a = 1.\n",
    "a = 1e\n",
    "a = 01\n",
    "a = 1__0\n",
    "a = _1\n",
    "a = 0x\n",
    "a = +0x1\n",
    "a = 99999999999999999999\n",
    "a = 1e999\n",
    "a = +inx\n",
    "a = -nope\n",
    "a = 2024-13-01\n",
    "a = 2024-02-30\n",
    "a = 2024-01-01T25:00:00\n",
    "a = 07:32\n",
    "a = 1979-05-27T07:32:00+0100\n",
    "a = ?\n",
    // arrays and inline tables
    "a = [1, 2\n",
    "a = [1 2]\n",
    "a = [,]\n",
    "a = [1,,2]\n",
    "a = {x = 1,}\n",
    "a = {x = 1\n",
    "a = {x = 1, , y = 2}\n",
    "a = {x = 1 y = 2}\n",
    "a = {\nx = 1}\n",
    // duplicates and redefinitions
    "[[registry]]\nlocation = \"a\"\nlocation = \"b\"\n",
    "a = 1\na = 2\n",
    "[a]\n[a]\n",
    "[[registry]]\n[registry]\n",
    "registry = 1\n[[registry]]\n",
    "a = 1\n[a.b]\n",
    "a = 1\na.b = 2\n",
    "[a]\nb = 1\n[a.b]\n",
    "a = {b = 1}\na.c = 2\n",
    "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = \"m\"\nlocation = \"n\"\n",
    // types
    "[[registry]]\nlocation = \"a.example\"\ninsecure = \"yes\"\n",
    "[[registry]]\nlocation = 1\n",
    "[[registry]]\nprefix = true\nlocation = \"a\"\n",
    "[[registry]]\nlocation = \"a\"\nblocked = 1\n",
    "[[registry]]\nlocation = \"a\"\nmirror-by-digest-only = \"true\"\n",
    "[[registry]]\nlocation = \"a\"\nmirror = \"m\"\n",
    "[[registry]]\nlocation = \"a\"\nmirror = [\"m\"]\n",
    "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = \"m\"\ninsecure = \"no\"\n",
    "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = [\"m\"]\n",
    "registry = \"a\"\n",
    "registry = [\"a\"]\n",
    "[registry]\nlocation = \"a\"\n",
    "unqualified-search-registries = \"docker.io\"\n",
    "unqualified-search-registries = [\"docker.io\", 1]\n",
    "unqualified-search-registries = [[\"docker.io\"]]\n",
    "short-name-mode = 1\n",
    "short-name-mode = [\"enforcing\"]\n",
    "credential-helpers = \"x\"\n",
    "[aliases]\nfoo = 1\n",
    "[aliases]\n\"docker.io/foo\" = true\n",
    "[aliases]\n\"a\\u0001b\" = 1\n",
    "[aliases]\n\"a\\\"b\" = 1\n",
    "[aliases]\n'' = 1\n",
    "[registries]\nsearch = \"x\"\n",
    "[registries.search]\nregistries = \"docker.io\"\n",
    "[registries.block]\nregistries = [1]\n",
    "registries = 1\n",
    "[[registries]]\n",
    "[[Registry]]\nLocation = 1\n",
    "[[registry]]\nlocation = \"a\"\ninsecure = 2024-01-01\n",
    "[[registry]]\nlocation = \"a\"\ninsecure = 1.5\n",
    "[[registry]]\nlocation = \"a\"\ninsecure = {x = 1}\n",
    "[[registry]]\nlocation = \"a\"\ninsecure = [true]\n",
    "\u{feff}[[registry]]\nlocation = \"a\"\n",
];

/// Files that are not UTF-8 (BurntSushi/toml reads bytes).
const BYTES: &[&[u8]] = &[
    b"a = \"\x80\"\n",
    b"[[registry]]\nlocation = \"a\xc3\"\n",
    b"\xff\xfe\x00\x80\n\xc3",
    b"a\x00 = 1\n",
    b"x = 1\n\xe2\x82 = 2\n",
];

/// Valid files the generator mutates: v2 with tables, arrays of tables and aliases; inline
/// tables, dotted keys and multi-line strings; the v1 format.
const BASES: &[&str] = &[
    r#"unqualified-search-registries = ["registry.access.redhat.com", "docker.io"]
short-name-mode = "enforcing"

[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"
insecure = false
blocked = false

[[registry.mirror]]
location = "mirror.example.com:5000/acme"
pull-from-mirror = "digest-only"

[aliases]
"web" = "quay.io/acme/web"
"#,
    r#"# inline forms
registry = [
  { prefix = "a.example", location = "b.example", mirror = [{ location = "m.example" }] }, # first
  {location = 'c.example', insecure = true},
]
aliases."x/y" = """quay.io/\
    x/y"""
credential-helpers = ['''containers-auth.json''']
"#,
    r#"[registries.search]
registries = ["docker.io", "quay.io"]

[registries.insecure]
registries = []

[registries.block]
registries = ["bad.example"]
"#,
];

/// What a mutation may insert: TOML's structural characters and a few troublemakers.
const INSERTS: &[&str] = &[
    "=",
    "[",
    "]",
    "\"",
    "'",
    ".",
    ",",
    "{",
    "}",
    "#",
    "\n",
    " x",
    "1",
    "true",
    "\\",
    "\"\"\"",
    "[[",
    "]]",
    "-",
    "_",
    ":",
    "\t",
    "1979-05-27",
    "\\u00",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Deterministic mutations of [`BASES`], one to three stacked: a character deleted, a token
/// inserted, a line repeated, or a value replaced by one of another type.
fn generated(seed: u64, n: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    let values = [
        "1",
        "\"s\"",
        "true",
        "[1]",
        "{a = 1}",
        "1.5",
        "2024-01-01",
        "[]",
    ];
    (0..n)
        .map(|_| {
            let mut text = BASES[rng.below(BASES.len())].to_owned();
            for _ in 0..=rng.below(3) {
                text = mutate(&mut rng, &text, &values);
            }
            text
        })
        .collect()
}

fn mutate(rng: &mut Rng, text: &str, values: &[&str]) -> String {
    let mut text = text.to_owned();
    let boundary = |text: &str, mut at: usize| {
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match rng.below(4) {
        0 if !text.is_empty() => {
            let at = boundary(&text, rng.below(text.len()));
            text.remove(at);
        }
        1 => {
            let at = boundary(&text, rng.below(text.len() + 1).min(text.len()));
            text.insert_str(at, INSERTS[rng.below(INSERTS.len())]);
        }
        2 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut ls = lines.clone();
            ls.insert(i, lines[i].clone());
            text = ls.join("\n") + "\n";
        }
        _ => {
            let candidates: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            if candidates.is_empty() {
                return text;
            }
            let i = candidates[rng.below(candidates.len())];
            let mut ls = lines.clone();
            if let Some((k, _)) = lines[i].split_once(" = ") {
                ls[i] = format!("{k} = {}", values[rng.below(values.len())]);
            }
            text = ls.join("\n") + "\n";
        }
    }
    text
}

fn explain(conf: &Path, dropins: &[std::path::PathBuf]) -> (i32, String) {
    let mut cmd = Command::new(mirrorscope_bin());
    cmd.arg("explain")
        .arg("--containers-image-version")
        .arg("5.23")
        .arg("--registries-conf")
        .arg(conf);
    for d in dropins {
        cmd.arg("--registries-conf-d").arg(d);
    }
    let out = cmd.arg(IMAGE).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    let text = stderr
        .strip_prefix("mirrorscope: invalid registries configuration: ")
        .unwrap_or(&stderr)
        .to_owned();
    (out.status.code().unwrap_or(-1), text)
}

#[derive(Debug)]
enum Verdict {
    Agree,
    /// skopeo accepted the configuration (a generated mutation that stayed valid).
    Valid,
    Differ {
        skopeo: String,
        mirrorscope: String,
    },
}

/// A decoding (type) error: with two of them in one file, which one Go reports depends on its
/// randomised map iteration order.
fn is_type_error(text: &str) -> bool {
    text.contains("): incompatible types: ") || text.contains("): type mismatch for ")
}

fn skopeo_config_error(home: &SkopeoHome, conf: &Path) -> Result<String, String> {
    match inspect_raw(home, conf, IMAGE).result {
        InspectResult::Failed { error, .. } if error.starts_with(WRAPPER) => {
            Ok(error[WRAPPER.len()..].to_owned())
        }
        other => Err(format!("{other:?}")),
    }
}

fn check(text: &[u8]) -> Verdict {
    let home = SkopeoHome::new();
    let conf = home.write("registries.conf", "");
    std::fs::write(&conf, text).unwrap();
    let (code, ours) = explain(&conf, &home.dropin_dirs());
    let skopeo_error = match skopeo_config_error(&home, &conf) {
        Ok(e) => e,
        // No configuration error (a mutation that stayed valid TOML; a reference that does not
        // rewrite is the other differential test's business): mirrorscope must not report one.
        Err(other) => {
            return if code == 2 && ours.starts_with("loading registries configuration") {
                Verdict::Differ {
                    skopeo: other,
                    mirrorscope: ours,
                }
            } else {
                Verdict::Valid
            };
        }
    };
    if code == 2 && ours == skopeo_error {
        return Verdict::Agree;
    }
    // Several type errors: skopeo may name any of them; ours must be one it can name.
    if code == 2 && is_type_error(&ours) && is_type_error(&skopeo_error) {
        for _ in 0..12 {
            if skopeo_config_error(&home, &conf).as_deref() == Ok(ours.as_str()) {
                return Verdict::Agree;
            }
        }
    }
    Verdict::Differ {
        skopeo: skopeo_error,
        mirrorscope: format!("exit {code}: {ours}"),
    }
}

#[test]
fn toml_errors_match_skopeo_5_23_word_for_word() {
    mirrorscope_bin();
    let mut files: Vec<Vec<u8>> = HAND.iter().map(|s| s.as_bytes().to_vec()).collect();
    files.extend(BYTES.iter().map(|b| b.to_vec()));
    // `MIRRORSCOPE_TOML_SEED` / `MIRRORSCOPE_TOML_COUNT` explore other mutations.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("MIRRORSCOPE_TOML_SEED").unwrap_or(0x746f_6d6c);
    let count = env("MIRRORSCOPE_TOML_COUNT").map_or(150, |c| c as usize);
    files.extend(generated(seed, count).into_iter().map(String::into_bytes));
    let verdicts = parallel_map(&files, 3, |t| check(t));
    let mut agree = 0;
    let mut valid = 0;
    let mut differ = Vec::new();
    for (t, v) in files.iter().zip(&verdicts) {
        match v {
            Verdict::Agree => agree += 1,
            Verdict::Valid => valid += 1,
            Verdict::Differ {
                skopeo,
                mirrorscope,
            } => differ.push(format!(
                "file {:?}\n  skopeo:      {skopeo}\n  mirrorscope: {mirrorscope}",
                String::from_utf8_lossy(t)
            )),
        }
    }
    eprintln!(
        "{} files: {agree} malformed files agree, {valid} valid, {} differ",
        files.len(),
        differ.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(agree >= 60, "only {agree} malformed files compared");
}
