//! The registries.conf engine against the rules of containers/image, one rule per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::explain::explain;
use mirrorscope_core::reference::ImageReference;
use mirrorscope_core::registries::{
    load, parse_config_str, ConfigFile, ConfigLocation, EffectiveConfig, FileKind, ShortNameMode,
    ShortNameResolution,
};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn file(text: &str) -> ConfigFile {
    parse_config_str(
        text,
        "/etc/containers/registries.conf",
        FileKind::Main,
        CImageVersion::LATEST,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn cfg(text: &str) -> EffectiveConfig {
    EffectiveConfig::from_files(
        Some(file(text)),
        [],
        ("/etc/containers/registries.conf".into(), "/d".into()),
    )
}

fn cfg_with(main: &str, drop_ins: &[&str]) -> EffectiveConfig {
    let d = drop_ins.iter().enumerate().map(|(i, t)| {
        parse_config_str(
            t,
            &format!("/d/{i}.conf"),
            FileKind::DropIn,
            CImageVersion::LATEST,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    EffectiveConfig::from_files(Some(file(main)), d, ("/m".into(), "/d".into()))
}

fn err(text: &str) -> String {
    err_v(text, FileKind::Main, CImageVersion::LATEST)
}

fn err_v(text: &str, kind: FileKind, v: CImageVersion) -> String {
    match parse_config_str(text, "/f.conf", kind, v) {
        Ok(_) => "OK".into(),
        Err(e) => e.to_string(),
    }
}

/// Sources as `ref` strings, blocked ones marked with a leading `!`.
fn sources(c: &EffectiveConfig, image: &str) -> Vec<String> {
    let r = ImageReference::parse_docker(image).unwrap();
    match c.pull_sources(&r) {
        Ok(s) => s
            .iter()
            .map(|s| format!("{}{}", if s.blocked() { "!" } else { "" }, s.reference))
            .collect(),
        Err(e) => vec![format!("ERR {e}")],
    }
}

#[test]
fn no_config_means_the_reference_itself() {
    let c = cfg("");
    assert_eq!(sources(&c, "quay.io/ns/app:1"), ["quay.io/ns/app:1"]);
    assert!(c.find_registry("quay.io/ns/app").is_none());
}

#[test]
fn man_page_example() {
    let c = cfg(r#"
[[registry]]
prefix = "example.com/foo"
location = "internal-registry-for-example.com/bar"
[[registry.mirror]]
location = "example-mirror-0.local/mirror-for-foo"
[[registry.mirror]]
location = "example-mirror-1.local/mirrors/foo"
insecure = true
"#);
    assert_eq!(
        sources(&c, "example.com/foo/image:latest"),
        [
            "example-mirror-0.local/mirror-for-foo/image:latest",
            "example-mirror-1.local/mirrors/foo/image:latest",
            "internal-registry-for-example.com/bar/image:latest"
        ]
    );
    let r = ImageReference::parse_docker("example.com/foo/image").unwrap();
    let s = c.pull_sources(&r).unwrap();
    assert_eq!(
        s.iter().map(|s| (s.mirror, s.insecure)).collect::<Vec<_>>(),
        [(true, false), (true, true), (false, false)]
    );
}

#[test]
fn prefix_boundaries_and_longest_match() {
    let c = cfg(r#"
[[registry]]
location = "r1:5001"
[[registry.mirror]]
location = "m:5002"
[[registry]]
location = "r1:5001/library"
[[registry.mirror]]
location = "m3:5003/library"
[[registry]]
prefix = "example.com/foo"
location = "x.example.com/foo"
"#);
    assert_eq!(
        sources(&c, "r1:5001/library/tiny:1"),
        ["m3:5003/library/tiny:1", "r1:5001/library/tiny:1"]
    );
    assert_eq!(
        sources(&c, "r1:5001/other/tiny:1"),
        ["m:5002/other/tiny:1", "r1:5001/other/tiny:1"]
    );
    assert_eq!(
        sources(&c, "example.com/foobar:1"),
        ["example.com/foobar:1"]
    );
    assert_eq!(sources(&c, "example.com/foo:1"), ["x.example.com/foo:1"]);
    assert_eq!(sources(&c, "r1:50011/x:1"), ["r1:50011/x:1"]);
}

#[test]
fn host_only_prefix_matches_a_port_and_carries_it() {
    let c = cfg(r#"
[[registry]]
location = "127.0.0.1"
[[registry.mirror]]
location = "127.0.0.2"
"#);
    assert_eq!(
        sources(&c, "127.0.0.1:5002/library/tiny:1"),
        [
            "127.0.0.2:5002/library/tiny:1",
            "127.0.0.1:5002/library/tiny:1"
        ]
    );
    let c = cfg(r#"
[[registry]]
location = "127.0.0.1"
[[registry.mirror]]
location = "127.0.0.2/x"
"#);
    assert_eq!(
        sources(&c, "127.0.0.1:5002/library/tiny:1"),
        ["ERR rewriting reference: invalid reference format"]
    );
}

#[test]
fn docker_hub_normalisation_before_matching() {
    let c = cfg(r#"
[[registry]]
prefix = "docker.io/library"
location = "l:5001/library"
[[registry.mirror]]
location = "m:5002/library"
"#);
    for img in [
        "tiny:2",
        "index.docker.io/tiny:2",
        "docker.io/tiny:2",
        "library/tiny:2",
    ] {
        assert_eq!(
            sources(&c, img),
            ["m:5002/library/tiny:2", "l:5001/library/tiny:2"],
            "{img}"
        );
    }
    // The man page's pitfall: docker.io/tiny never matches a normalised reference.
    let c = cfg(
        "[[registry]]\nprefix = \"docker.io/tiny\"\nlocation = \"m:5002/tiny\"\nblocked = true\n",
    );
    assert_eq!(sources(&c, "tiny:1"), ["docker.io/library/tiny:1"]);
    // registry-1.docker.io is a different host.
    let c = cfg("[[registry]]\nlocation = \"registry-1.docker.io\"\nblocked = true\n");
    assert_eq!(sources(&c, "tiny:1"), ["docker.io/library/tiny:1"]);
    assert_eq!(
        sources(&c, "registry-1.docker.io/library/tiny:1"),
        ["!registry-1.docker.io/library/tiny:1"]
    );
}

#[test]
fn blocked_source_is_still_listed_last() {
    let c = cfg(r#"
[[registry]]
prefix = "docker.io"
location = "docker.io"
blocked = true
[[registry.mirror]]
location = "m:5002"
"#);
    assert_eq!(
        sources(&c, "tiny:2"),
        ["m:5002/library/tiny:2", "!docker.io/library/tiny:2"]
    );
    assert_eq!(
        c.blocked_message("docker.io"),
        "registry docker.io is blocked in /etc/containers/registries.conf or /d"
    );
}

#[test]
fn rewrite_must_be_canonical() {
    let c = cfg("[[registry]]\nprefix = \"r:5001\"\nlocation = \"docker.io\"\n");
    assert_eq!(
        sources(&c, "r:5001/tiny:1"),
        ["ERR rewriting reference: repository name must be canonical"]
    );
}

#[test]
fn digest_only_and_tag_only_mirrors() {
    let c = cfg(r#"
[[registry]]
location = "r:5001"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m:5002"
"#);
    assert_eq!(
        sources(&c, "r:5001/library/tiny:1"),
        ["r:5001/library/tiny:1"]
    );
    assert_eq!(
        sources(&c, &format!("r:5001/library/tiny@{D1}")),
        [
            format!("m:5002/library/tiny@{D1}"),
            format!("r:5001/library/tiny@{D1}")
        ]
    );
    let c = cfg(r#"
[[registry]]
location = "r:5001"
[[registry.mirror]]
location = "m:5002"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m3:5003"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "x:5999"
pull-from-mirror = "all"
"#);
    assert_eq!(
        sources(&c, "r:5001/library/tiny:2"),
        [
            "m3:5003/library/tiny:2",
            "x:5999/library/tiny:2",
            "r:5001/library/tiny:2"
        ]
    );
    assert_eq!(
        sources(&c, &format!("r:5001/library/tiny@{D1}")),
        [
            format!("m:5002/library/tiny@{D1}"),
            format!("x:5999/library/tiny@{D1}"),
            format!("r:5001/library/tiny@{D1}")
        ]
    );
}

#[test]
fn mirror_blocked_by_its_own_entry_and_insecure_is_the_endpoints() {
    let c = cfg(r#"
[[registry]]
location = "r:5001"
[[registry.mirror]]
location = "m:5002"
insecure = true
[[registry]]
location = "m:5002"
blocked = true
"#);
    let r = ImageReference::parse_docker("r:5001/library/tiny:1").unwrap();
    let s = c.pull_sources(&r).unwrap();
    assert_eq!(s[0].blocked_by.as_deref(), Some("m:5002"));
    assert!(s[0].insecure);
    assert!(!s[1].blocked() && !s[1].insecure);
}

#[test]
fn wildcards() {
    let c = cfg(r#"
[[registry]]
prefix = "*.example.com"
[[registry.mirror]]
location = "mirror.local/ex"
[[registry]]
prefix = "*.0.0.1"
[[registry.mirror]]
location = "m:5002"
"#);
    assert_eq!(
        sources(&c, "a.b.example.com/ns/img:1"),
        ["mirror.local/ex/ns/img:1", "a.b.example.com/ns/img:1"]
    );
    assert_eq!(
        sources(&c, "a.example.com:5000/ns/img:1"),
        ["ERR rewriting reference: invalid reference format"]
    );
    assert_eq!(
        sources(&c, "example.com/ns/img:1"),
        ["example.com/ns/img:1"]
    );
    assert_eq!(
        sources(&c, "127.0.0.1/library/tiny:2"),
        ["m:5002/library/tiny:2", "127.0.0.1/library/tiny:2"]
    );
    assert_eq!(
        sources(&c, "x.example.com.example.com/y:1"),
        ["x.example.com.example.com/y:1"]
    );
}

#[test]
fn wildcard_competes_by_literal_length_and_ties_go_to_byte_order() {
    let c = cfg(r#"
[[registry]]
prefix = "*.example.com"
location = "w.local"
[[registry]]
location = "a.example.com"
blocked = true
[[registry]]
prefix = "bb.example.com"
location = "ab.local"
"#);
    // "*.example.com" (13) vs "a.example.com" (13): '*' sorts first and wins the tie.
    assert_eq!(sources(&c, "a.example.com/x:1"), ["w.local/x:1"]);
    // "bb.example.com" (14) is longer than the wildcard.
    assert_eq!(sources(&c, "bb.example.com/x:1"), ["ab.local/x:1"]);
}

#[test]
fn tag_in_prefix_never_matches() {
    let c = cfg(
        "[[registry]]\nprefix = \"r:5001/library/tiny:1\"\nlocation = \"m:5002/library/tiny:1\"\n",
    );
    assert_eq!(
        sources(&c, "r:5001/library/tiny:1"),
        ["r:5001/library/tiny:1"]
    );
}

#[test]
fn first_duplicate_prefix_wins_within_a_file() {
    let c = cfg(r#"
[[registry]]
location = "r:5001"
[[registry.mirror]]
location = "m3:5003"
[[registry]]
location = "r:5001"
[[registry.mirror]]
location = "m:5002"
"#);
    assert_eq!(sources(&c, "r:5001/x:1"), ["m3:5003/x:1", "r:5001/x:1"]);
}

#[test]
fn drop_ins_replace_whole_entries_and_add_new_ones() {
    let c = cfg_with(
        "[[registry]]\nlocation = \"r:5001\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"m:5002\"\ninsecure = true\n[[registry]]\nlocation = \"q:1\"\nblocked = true\n",
        &["[[registry]]\nlocation = \"r:5001\"\n[[registry.mirror]]\nlocation = \"m3:5003\"\n", "[[registry]]\nprefix = \"r:5001/x\"\nlocation = \"r:5001/x\"\nblocked = true\n"],
    );
    let r = ImageReference::parse_docker("r:5001/y:1").unwrap();
    let s = c.pull_sources(&r).unwrap();
    assert_eq!(
        s.iter()
            .map(|s| s.reference.to_string())
            .collect::<Vec<_>>(),
        ["m3:5003/y:1", "r:5001/y:1"]
    );
    assert!(
        !s[1].insecure,
        "the override's missing insecure makes the primary secure"
    );
    assert_eq!(sources(&c, "q:1/z:1"), ["!q:1/z:1"]);
    assert_eq!(sources(&c, "r:5001/x:1"), ["!r:5001/x:1"]);
    assert_eq!(c.find_registry("r:5001/y").unwrap().file, "/d/0.conf");
    assert_eq!(
        c.files,
        ["/etc/containers/registries.conf", "/d/0.conf", "/d/1.conf"]
    );
}

#[test]
fn search_registries_and_helpers_replace_if_present() {
    let c = cfg_with(
        "unqualified-search-registries = [\"a.io\", \"b.io/\"]\ncredential-helpers = [\"x\"]\nshort-name-mode = \"enforcing\"\n",
        &["unqualified-search-registries = []\n", "short-name-mode = \"\"\n"],
    );
    assert!(c.unqualified_search_registries.is_empty());
    assert_eq!(c.unqualified_search_registries_origin, "/d/0.conf");
    assert_eq!(c.credential_helpers, ["x"]);
    assert_eq!(c.short_name_mode, ShortNameMode::Enforcing);
    let c = cfg_with(
        "unqualified-search-registries = [\"a.io\", \"b.io/\"]\n",
        &["credential-helpers = []\n"],
    );
    assert_eq!(c.unqualified_search_registries, ["a.io", "b.io"]);
    assert_eq!(c.credential_helpers, ["containers-auth.json"]);
    assert_eq!(c.short_name_mode, ShortNameMode::Permissive);
}

#[test]
fn aliases_merge_per_key_and_tombstones_delete() {
    let c = cfg_with(
        "[aliases]\nalpine = \"docker.io/alpine\"\nfoo = \"quay.io/foo\"\n",
        &["[aliases]\nfoo = \"\"\nbar = \"quay.io/bar\"\n"],
    );
    assert_eq!(c.aliases.keys().collect::<Vec<_>>(), ["alpine", "bar"]);
    match c.resolve_short_name("alpine:3") {
        Ok(ShortNameResolution::Alias { candidate, origin }) => {
            assert_eq!(candidate.to_string(), "docker.io/library/alpine:3");
            assert_eq!(origin, "/etc/containers/registries.conf");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn short_name_candidates_and_errors() {
    let c = cfg("unqualified-search-registries = [\"registry.example.com\", \"docker.io\"]\n");
    let res = c.resolve_short_name("nginx:1.25.3").unwrap();
    let cands: Vec<String> = res.candidates().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        cands,
        [
            "registry.example.com/nginx:1.25.3",
            "docker.io/library/nginx:1.25.3"
        ]
    );
    assert_eq!(
        cfg("").resolve_short_name("nginx").unwrap_err().to_string(),
        "short-name \"nginx\" did not resolve to an alias and no unqualified-search registries are defined in \"/etc/containers/registries.conf\""
    );
    let empty = EffectiveConfig::empty(("/m".into(), "/d".into()));
    assert_eq!(
        empty.resolve_short_name("nginx").unwrap_err().to_string(),
        "short-name \"nginx\" did not resolve to an alias and no containers-registries.conf(5) was found"
    );
    let c = cfg(
        "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"a.io\", \"b.io\"]\n",
    );
    assert_eq!(
        c.resolve_short_name("nginx").unwrap_err().to_string(),
        "short name mode is enforcing, but image name nginx returns ambiguous list"
    );
    assert!(matches!(
        c.resolve_short_name("quay.io/x"),
        Ok(ShortNameResolution::Qualified(_))
    ));
}

#[test]
fn validation_messages_in_order() {
    let cases: &[(&str, &str)] = &[
        ("[[registry]]\ninsecure = true\n", "invalid condition: both location and prefix are unset"),
        ("[[registry]]\nprefix = \"a.io\"\n", "invalid condition: location is unset and prefix is not in the format: *.example.com"),
        ("[[registry]]\nlocation = \"https://a.io/\"\n", "invalid location 'https://a.io/': URI schemes are not supported"),
        ("[[registry]]\nlocation = \"a.io\"\nprefix = \"http://a.io\"\n", "invalid location 'http://a.io': URI schemes are not supported"),
        ("[[registry]]\nlocation = \"a.io\"\npull-from-mirror = \"all\"\n", "pull-from-mirror must not be set for a non-mirror registry \"a.io\""),
        ("[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\ninsecure = true\n", "invalid condition: mirror location is unset"),
        ("[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"https://m\"\n", "invalid location 'https://m': URI schemes are not supported"),
        (
            "[[registry]]\nlocation = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"all\"\n",
            "cannot set mirror usage mirror-by-digest-only for the registry (\"a.io\") and pull-from-mirror for per-mirror (\"m\") at the same time",
        ),
        ("[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"some\"\n", "unsupported pull-from-mirror value \"some\" for mirror \"m\""),
        (
            "[[registry]]\nlocation = \"a.io\"\n[[registry]]\nprefix = \"b.io\"\nlocation = \"a.io\"\ninsecure = true\n",
            "registry 'a.io' is defined multiple times with conflicting 'insecure' setting",
        ),
        (
            "[[registry]]\nlocation = \"a.io\"\n[[registry]]\nprefix = \"b.io\"\nlocation = \"a.io\"\nblocked = true\n",
            "registry 'a.io' is defined multiple times with conflicting 'blocked' setting",
        ),
        ("unqualified-search-registries = [\"a.io\", \"\"]\n", "Invalid unqualified-search-registries entry \"\""),
        ("unqualified-search-registries = [\"a.io/x\"]\n", "Invalid unqualified-search-registries entry \"a.io/x\""),
        ("unqualified-search-registries = [\"https://a.io\"]\n", "invalid location 'https://a.io': URI schemes are not supported"),
        ("short-name-mode = \"prompt\"\n", "invalid short-name mode: \"prompt\""),
        ("[[registry]]\nprefix = \"*.a.io/x\"\n", "Wildcarded prefix should be in the format: *.example.com. Current prefix \"*.a.io/x\" is incorrectly formatted"),
        ("[aliases]\n\"a:1\" = \"quay.io/a\"\n", "validating short-name aliases: invalid short name \"a:1\": must not contain tag"),
        ("[[registry]\nlocation = \"a\"\n", "toml: line 2"),
        ("[[registry]]\nlocation = \"\\x31\"\n", "toml: line 2"),
        ("registry = [{location = \"a\", insecure = true,}]\n", "toml: line 1"),
        ("[[registry]]\nlocation = \"a\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m/\"\npull-from-mirror = \"x\"\n", "cannot set mirror usage mirror-by-digest-only for the registry (\"a\") and pull-from-mirror for per-mirror (\"m\") at the same time"),
        ("[[registry]]\nprefix = \"*.a/\\u007f\\u0001\"\n", "Wildcarded prefix should be in the format: *.example.com. Current prefix \"*.a/\\x7f\\x01\" is incorrectly formatted"),
        ("unqualified-search-registries = [\"a\\u0001\\u2028\"]\n", "Invalid unqualified-search-registries entry \"a\\x01\\u2028\""),
        ("[[registry]]\nlocation = \"a\"\ninsecure = \"yes\"\n", "toml: line 3"),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(
            got.starts_with(want),
            "config:\n{text}\nwant: {want}\n got: {got}"
        );
    }
}

#[test]
fn first_failing_check_wins() {
    // Entry order first: the second entry's problem is never reached.
    assert_eq!(
        err("[[registry]]\nlocation = \"https://x\"\n[[registry]]\ninsecure = true\n"),
        "invalid location 'https://x': URI schemes are not supported"
    );
    // Per-entry checks come before the search-registry check.
    assert_eq!(
        err("unqualified-search-registries = [\"\"]\n[[registry]]\nprefix = \"a.io\"\n"),
        "invalid condition: location is unset and prefix is not in the format: *.example.com"
    );
}

#[test]
fn keys_match_case_insensitively_like_burntsushi_toml() {
    let c = cfg("[[Registry]]\nLocation = \"r:1\"\nBLOCKED = true\n[[Registry.Mirror]]\nlocation = \"m:2\"\nPull-From-Mirror = \"tag-only\"\n[Aliases]\nfoo = \"quay.io/foo\"\n");
    assert_eq!(sources(&c, "r:1/x:1"), ["m:2/x:1", "!r:1/x:1"]);
    // Alias names are map keys: never folded (and "Foo" is not a valid short name).
    assert!(err("[aliases]\nFoo = \"quay.io/foo\"\n")
        .starts_with("validating short-name aliases: cannot parse short name: \"Foo\""));
    assert_eq!(
        err("Unqualified-Search-Registries = [\"a/b\"]\n"),
        "Invalid unqualified-search-registries entry \"a/b\""
    );
    assert_eq!(err("[Registries.Search]\nRegistries = [\"s.io\"]\n"), "OK");
    // A type error found after folding has no line number but still names the problem.
    assert!(err("[[Registry]]\nlocation = \"a\"\ninsecure = \"yes\"\n").starts_with("toml: "));
}

#[test]
fn byte_order_mark_depends_on_version() {
    let text = "\u{feff}[[registry]]\nlocation = \"a\"\n";
    assert_eq!(err_v(text, FileKind::Main, CImageVersion::LATEST), "OK");
    assert!(err_v(text, FileKind::Main, CImageVersion::V5_23).starts_with("toml: line 1"));
}

#[test]
fn unknown_keys_are_ignored() {
    assert_eq!(
        err("no-such-key = 1\n[[registry]]\nlocation = \"a.io\"\nnot-a-key = true\n"),
        "OK"
    );
}

#[test]
fn v1_format() {
    let f = file("[registries.search]\nregistries = [\"s.io\"]\n[registries.insecure]\nregistries = [\"i.io\", \"b.io/\"]\n[registries.block]\nregistries = [\"b.io\"]\n");
    let c = EffectiveConfig::from_main_file(f);
    assert_eq!(c.unqualified_search_registries, ["s.io"]);
    let b = c.find_registry("b.io/x").unwrap();
    assert!(b.blocked && b.insecure && b.prefix == "b.io");
    assert!(c.find_registry("i.io/x").unwrap().insecure);
    assert_eq!(
        err_v(
            "[registries.search]\nregistries = [\"s.io\"]\n",
            FileKind::DropIn,
            CImageVersion::LATEST
        ),
        "registry must be in v2 format but is in v1"
    );
    assert_eq!(
        err_v(
            "[registries.search]\nregistries = [\"s.io\"]\n",
            FileKind::Main,
            CImageVersion::V5_23
        ),
        "OK"
    );
    let mixed =
        "unqualified-search-registries = [\"a.io\"]\n[registries.block]\nregistries = [\"b.io\"]\n";
    assert!(err(mixed).starts_with("mixing sysregistry v1/v2 is not supported"));
    // An empty v1 array makes a file v1 only since 5.24.
    let empty_v1 =
        "unqualified-search-registries = [\"a.io\"]\n[registries.block]\nregistries = []\n";
    assert!(err(empty_v1).starts_with("mixing sysregistry v1/v2 is not supported"));
    assert_eq!(err_v(empty_v1, FileKind::Main, CImageVersion::V5_23), "OK");
    assert_eq!(
        err("[registries.block]\nregistries = [\"http://b.io\"]\n"),
        "invalid location 'http://b.io': URI schemes are not supported"
    );
}

#[test]
fn mirror_trailing_slash_depends_on_version() {
    let text = "[[registry]]\nlocation = \"r:5001\"\n[[registry.mirror]]\nlocation = \"m:5002/\"\n";
    let new = EffectiveConfig::from_main_file(file(text));
    assert_eq!(
        sources(&new, "r:5001/x/y:1"),
        ["m:5002/x/y:1", "r:5001/x/y:1"]
    );
    let old = EffectiveConfig::from_main_file(
        parse_config_str(text, "/f", FileKind::Main, CImageVersion::V5_23).unwrap(),
    );
    assert_eq!(
        sources(&old, "r:5001/x/y:1"),
        ["ERR rewriting reference: invalid reference format"]
    );
}

#[test]
fn canonical_hash_ignores_form_but_not_meaning() {
    let a = cfg("[[registry]]\nlocation = \"r.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\n");
    let b = cfg("# comment\n[[registry]]\nprefix = \"r.io\"\nlocation = \"r.io\"\n\n[[registry.mirror]]\npull-from-mirror = \"digest-only\"\nlocation = \"m.io\"\n");
    assert_eq!(a.canonical_sha256(), b.canonical_sha256());
    assert!(a.canonical_sha256().starts_with("sha256:") && a.canonical_sha256().len() == 71);
    let c = cfg("[[registry]]\nlocation = \"r.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\n");
    assert_ne!(a.canonical_sha256(), c.canonical_sha256());
    let d = cfg("[[registry]]\nlocation = \"r.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"all\"\n");
    assert_eq!(c.canonical_sha256(), d.canonical_sha256());
    let e = cfg("[[registry]]\nlocation = \"r.io\"\nblocked = true\n[[registry.mirror]]\nlocation = \"m.io\"\n");
    assert_ne!(c.canonical_sha256(), e.canonical_sha256());
}

#[test]
fn explain_in_words() {
    let c = cfg(r#"
[[registry]]
prefix = "docker.io"
location = "docker.io"
blocked = true
[[registry.mirror]]
location = "mirror.example.com"
pull-from-mirror = "tag-only"
[[registry]]
prefix = "quay.io"
location = "quay.io"
[[registry.mirror]]
location = "mirror.example.com/quay"
pull-from-mirror = "digest-only"
"#);
    let e = explain(&c, "nginx:1.25.3");
    assert_eq!(
        e.reference.as_deref(),
        Some("docker.io/library/nginx:1.25.3")
    );
    assert_eq!(
        e.registry.as_ref().map(|r| r.prefix.as_str()),
        Some("docker.io")
    );
    assert_eq!(e.sources.len(), 2);
    assert!(e.sources[1].blocked && !e.sources[1].mirror && e.sources[0].mirror);
    assert_eq!(e.summary, "mirror only (1 mirror); source blocked");
    let e = explain(&c, "quay.io/acme/app:1");
    assert_eq!(
        e.summary,
        "tag pull: 1 digest-only mirror skipped; no mirror used: pulled directly from the source"
    );
    let e = explain(&c, "ghcr.io/x/y:1");
    assert!(e.registry.is_none());
    assert_eq!(
        e.summary,
        "no registries.conf entry: pulled directly from the source"
    );
    let e = explain(&c, &format!("nginx:1@{D1}"));
    assert_eq!(
        e.error.as_deref(),
        Some("Docker references with both a tag and digest are currently not supported")
    );
    assert!(e.sources.is_empty());
    let json = serde_json::to_value(explain(&c, "nginx")).unwrap();
    for key in [
        "image",
        "reference",
        "registry",
        "sources",
        "candidates",
        "error",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
}

#[test]
fn load_reads_files_in_order_and_names_the_failing_file() {
    let dir = std::env::temp_dir().join(format!("ms-load-{}", std::process::id()));
    let d = dir.join("registries.conf.d");
    std::fs::create_dir_all(d.join("sub.conf")).unwrap();
    std::fs::write(
        dir.join("registries.conf"),
        "[[registry]]\nlocation = \"r:1\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("9.conf"),
        "[[registry]]\nlocation = \"r:1\"\nblocked = true\n",
    )
    .unwrap();
    std::fs::write(
        d.join("10.conf"),
        "[[registry]]\nlocation = \"r:1\"\ninsecure = true\n",
    )
    .unwrap();
    std::fs::write(d.join("99.conf.bak"), "garbage [[[").unwrap();
    std::fs::write(
        d.join(".hidden.conf"),
        "unqualified-search-registries = [\"h.io\"]\n",
    )
    .unwrap();
    let loc = ConfigLocation {
        main: dir.join("registries.conf"),
        main_required: true,
        dirs: vec![d.clone()],
    };
    let c = load(&loc, CImageVersion::LATEST).unwrap();
    // Byte order: ".hidden.conf" < "10.conf" < "9.conf"; the last one wins.
    assert!(
        c.files[1].ends_with(".hidden.conf")
            && c.files[2].ends_with("10.conf")
            && c.files[3].ends_with("9.conf")
    );
    assert!(c.find_registry("r:1/x").unwrap().blocked);
    assert_eq!(c.unqualified_search_registries, ["h.io"]);

    std::fs::write(
        d.join("5.conf"),
        "[registries.search]\nregistries = [\"x\"]\n",
    )
    .unwrap();
    let e = load(&loc, CImageVersion::LATEST).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("loading drop-in registries configuration {:?}: registry must be in v2 format but is in v1", d.join("5.conf").display().to_string())
    );
    std::fs::remove_file(d.join("5.conf")).unwrap();

    let missing = ConfigLocation {
        main: dir.join("nope.conf"),
        main_required: true,
        dirs: vec![],
    };
    let e = load(&missing, CImageVersion::LATEST)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("nope.conf: no such file or directory"), "{e}");
    let optional = ConfigLocation {
        main_required: false,
        ..missing
    };
    assert!(load(&optional, CImageVersion::LATEST)
        .unwrap()
        .registries
        .is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
