//! Many random and mutated inputs through the YAML reader and the renderer: nothing panics, the
//! TOML is always well-formed, renderings of valid scopes always load in the engine, and the
//! order of the mirror-set objects never changes the files (MCO lists them in no fixed order).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use mirrorscope_core::openshift::{
    parse_str, patterns, render, ImageConfig, Kind, MirrorEntry, MirrorSet, MirrorSourcePolicy,
    ObjectRef, OcpVersion, ParseOptions, RegistrySources, RenderInput, RenderOptions,
    REGISTRIES_CONF,
};
use mirrorscope_core::registries::{parse_config_str, FileKind};

mod common;
use common::Rng;

const VALID: &[&str] = &[
    "quay.io",
    "quay.io/ns",
    "quay.io/ns/repo",
    "quay.io/openshift-release-dev/ocp-release",
    "docker.io",
    "docker.io/library",
    "a.example.com",
    "b.example.com:5000/x",
    "registry.redhat.io",
    "mirror.example.com",
    "m1.example.com/ns",
    "m2.example.com/ns/deep/er",
    "localhost:5000",
];
const WILD: &[&str] = &["*.io", "*.example.com", "*.redhat.io"];
const ODD: &[&str] = &[
    "",
    "*",
    "quay.io/",
    "http://x.example.com",
    "Quay.IO/ns",
    "quay.io/ns/repo:latest",
    "registry-1.docker.io/x",
    "é.example/x",
    "a\"b\\c",
    "*.x/y",
    "a/b/c/d",
    "quay.io//x",
];

fn scope(rng: &mut Rng, odd: bool) -> String {
    let pool = match rng.below(10) {
        0 | 1 => WILD,
        2 if odd => ODD,
        _ => VALID,
    };
    rng.pick(pool).to_string()
}

fn list(rng: &mut Rng, odd: bool, wild: bool) -> Vec<String> {
    (0..rng.below(4))
        .map(|_| {
            let s = scope(rng, odd);
            if !wild && s.starts_with("*.") {
                rng.pick(VALID).to_string()
            } else {
                s
            }
        })
        .collect()
}

fn opt_list(rng: &mut Rng, odd: bool) -> Option<Vec<String>> {
    rng.chance(40).then(|| list(rng, odd, true))
}

fn sets(rng: &mut Rng, kind: Kind, odd: bool) -> Vec<MirrorSet> {
    (0..rng.below(3))
        .map(|i| MirrorSet {
            object: ObjectRef::new(kind, format!("o{i}")),
            entries: (0..rng.below(4))
                .map(|_| {
                    let source = scope(rng, odd);
                    let mut mirrors = list(rng, odd, false);
                    if rng.chance(20) {
                        let at = rng.below(mirrors.len() + 1);
                        mirrors.insert(at, source.clone());
                    }
                    let policy = match (kind, rng.below(3)) {
                        (Kind::ImageContentSourcePolicy, _) | (_, 0) => MirrorSourcePolicy::Unset,
                        (_, 1) => MirrorSourcePolicy::AllowContactingSource,
                        _ => MirrorSourcePolicy::NeverContactSource,
                    };
                    MirrorEntry {
                        source,
                        mirrors,
                        policy,
                    }
                })
                .collect(),
        })
        .collect()
}

fn random_input(rng: &mut Rng, odd: bool) -> RenderInput {
    let image = rng.chance(80).then(|| ImageConfig {
        object: ObjectRef::new(Kind::Image, "cluster"),
        registry_sources: RegistrySources {
            insecure_registries: opt_list(rng, odd),
            blocked_registries: opt_list(rng, odd),
            allowed_registries: if rng.chance(20) {
                opt_list(rng, odd)
            } else {
                None
            },
            container_runtime_search_registries: rng
                .chance(20)
                .then(|| vec!["registry.redhat.io".into()]),
        },
    });
    RenderInput {
        image,
        idms: sets(rng, Kind::ImageDigestMirrorSet, odd),
        itms: sets(rng, Kind::ImageTagMirrorSet, odd),
        icsp: sets(rng, Kind::ImageContentSourcePolicy, odd),
    }
}

fn version(rng: &mut Rng) -> OcpVersion {
    OcpVersion::new(4, 10 + rng.below(15) as u32)
}

fn release(rng: &mut Rng) -> Option<String> {
    let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    match rng.below(5) {
        0 => None,
        1 => Some("quay.io/openshift-release-dev/ocp-release:4.19.0".into()),
        2 => Some(format!("mirror.example.com/ocp/release@{d}")),
        3 => Some("not a reference".into()),
        _ => Some(format!("quay.io/openshift-release-dev/ocp-release@{d}")),
    }
}

fn all_strings_valid(input: &RenderInput) -> bool {
    let rs = input
        .image
        .as_ref()
        .map(|i| i.registry_sources.clone())
        .unwrap_or_default();
    let scopes = [
        rs.insecure_registries,
        rs.blocked_registries,
        rs.allowed_registries,
    ];
    let scopes_ok = scopes
        .iter()
        .flatten()
        .flatten()
        .all(|s| patterns::matches_source_pattern(s));
    let sets_ok = input.mirror_sets().flat_map(|s| s.entries.iter()).all(|e| {
        patterns::matches_source_pattern(&e.source)
            && e.mirrors
                .iter()
                .all(|m| patterns::matches_mirror_pattern(m))
    });
    scopes_ok && sets_ok
}

#[test]
fn random_inputs_render_without_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut rendered, mut refused) = (0, 0);
    for i in 0..4000 {
        let odd = i % 2 == 0;
        let input = random_input(&mut rng, odd);
        let options = RenderOptions {
            ocp_version: version(&mut rng),
            release_image: release(&mut rng),
        };
        let result = render(&input, &options);
        // The mirror-set objects in reverse order give the same files (or also a refusal).
        let mut reversed = input.clone();
        reversed.idms.reverse();
        reversed.itms.reverse();
        reversed.icsp.reverse();
        let again = render(&reversed, &options);
        match (&result, &again) {
            (Ok(a), Ok(b)) => assert_eq!(
                a.files, b.files,
                "case {i}: object order changed the files\n{input:#?}"
            ),
            (Err(_), Err(_)) => {}
            _ => panic!("case {i}: object order changed the outcome\n{input:#?}"),
        }
        let Ok(r) = result else {
            refused += 1;
            continue;
        };
        rendered += 1;
        for f in &r.files {
            if f.path.ends_with(".conf") {
                assert!(
                    toml::from_str::<toml::Table>(&f.contents).is_ok(),
                    "case {i}: bad TOML\n{}",
                    f.contents
                );
            } else {
                assert!(
                    serde_json::from_str::<serde_json::Value>(&f.contents).is_ok(),
                    "case {i}: bad JSON"
                );
            }
        }
        if all_strings_valid(&input) {
            if let Some(conf) = r.registries_conf() {
                let loaded = parse_config_str(
                    conf,
                    REGISTRIES_CONF,
                    FileKind::Main,
                    options.ocp_version.containers_image(),
                );
                assert!(
                    loaded.is_ok(),
                    "case {i}: engine rejects {loaded:?}\n{conf}"
                );
            }
        }
    }
    assert!(
        rendered > 500 && refused > 200,
        "rendered {rendered}, refused {refused}"
    );
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    const TOKENS: &[&str] = &[
        "\n- ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        "\n---\n",
        "null",
        "*",
        "&a ",
        "*a",
        "!!binary ",
        "\"",
        "'",
        "\t",
        "\n  ",
        "kind: List\nitems:\n",
        "42",
        "~",
        "source: ",
        "mirrors: [",
        "NeverContactSource",
        "é",
        "\u{0}",
    ];
    let mut bytes: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() && at < bytes.len() => {
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => {
                let tok: Vec<char> = rng.pick(TOKENS).chars().collect();
                bytes.splice(at..at, tok);
            }
            2 if at < bytes.len() => {
                bytes[at] = *rng.pick(&['a', '-', ':', '/', '.', ' ', '\n', '#', '0'])
            }
            _ => {
                let end = (at + rng.below(40)).min(bytes.len());
                let copy: Vec<char> = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes.into_iter().collect()
}

#[test]
fn mutated_fixture_documents_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render");
    let mut texts = Vec::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let dir = e.unwrap().path();
        for name in ["input.yaml", "input.json"] {
            if let Ok(t) = std::fs::read_to_string(dir.join(name)) {
                texts.push(t);
            }
        }
    }
    assert!(texts.len() >= 25);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut parsed_objects = 0;
    for i in 0..3000 {
        let original = texts[rng.below(texts.len())].as_str();
        let text = mutate(&mut rng, original);
        let version = version(&mut rng);
        let set = parse_str(&text, "mutated.yaml", &ParseOptions { version });
        for e in &set.errors {
            assert!(!e.to_string().is_empty(), "case {i}");
        }
        parsed_objects += set.input.mirror_sets().count();
        let options = RenderOptions {
            ocp_version: version,
            release_image: release(&mut rng),
        };
        let _ = render(&set.input, &options);
    }
    assert!(
        parsed_objects > 300,
        "mutations left too few objects ({parsed_objects})"
    );
}
