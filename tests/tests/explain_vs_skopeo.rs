//! Differential test of `mirrorscope explain --containers-image-version 5.23` against Debian's
//! skopeo (containers/image 5.23.1), on the hand-written scenarios of tests/fixtures/explain and on
//! seeded random ones. For each scenario both read the same main file and drop-in dirs; the rules
//! compared are in `mirrorscope_e2e::scenario::compare`:
//! (a) skopeo's `Trying to access` sequence equals explain's sources up to the one that served (the
//!     whole list when every attempt fails); (b) an attempt skopeo reports as blocked is exactly a
//!     source explain marks blocked; (c) failures before any attempt have the same text (config
//!     errors: exit 2 and the text on stderr; TOML errors word for word);
//! (d) each attempt's transport outcome agrees with explain's `insecure` flag.

#[path = "explain_vs_skopeo/generate.rs"]
mod generate;

use mirrorscope_e2e::scenario::{
    compare, compare_prepared, load_fixtures, mirrorscope_bin, parallel_map, report, Prepared,
    Scenario, World,
};
use mirrorscope_e2e::skopeo::InspectResult;

/// The generated scenarios' seed; `MIRRORSCOPE_ORACLE_SEED` explores others (a failure report names
/// the seed in each scenario id).
const SEED: u64 = 0x6d69_7272_6f72;
const GENERATED: usize = 400;
const THREADS: usize = 3;

/// `MIRRORSCOPE_ORACLE_COUNT` raises the number of generated scenarios for a longer exploration.
fn generated() -> usize {
    std::env::var("MIRRORSCOPE_ORACLE_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(GENERATED)
}

fn seed() -> u64 {
    std::env::var("MIRRORSCOPE_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

#[test]
fn explain_agrees_with_skopeo_5_23() {
    mirrorscope_bin();
    let world = World::start();
    let mut scenarios = load_fixtures();
    let hand = scenarios.len();
    assert!(hand >= 60, "only {hand} hand-written scenarios");
    let seed = seed();
    let generated = generated();
    assert!(generated >= 300, "at least 300 generated scenarios");
    scenarios.extend(generate::scenarios(seed, generated));

    let results = parallel_map(&scenarios, THREADS, |s| {
        let p = world.prepare(s);
        let sk = p.skopeo();
        let ex = p.explain(Some("5.23"));
        let kind = match (&sk.result, sk.tries.is_empty()) {
            (InspectResult::Ok { .. }, _) => "served",
            (InspectResult::Failed { .. }, false) => "all attempts failed",
            (InspectResult::Failed { error, .. }, true)
                if error.starts_with("loading registries configuration: ") =>
            {
                "configuration error"
            }
            (InspectResult::Failed { .. }, true) => "reference/rewrite error",
        };
        let verdict = compare_prepared(&world, &p, &sk, &ex, Some("5.23"))
            .map_err(|d| report(&world, s, &p, &sk, &ex, &d));
        (kind, verdict)
    });

    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for (k, _) in &results {
        match kinds.iter_mut().find(|(n, _)| n == k) {
            Some((_, c)) => *c += 1,
            None => kinds.push((k, 1)),
        }
    }
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for (s, (_, verdict)) in scenarios.iter().zip(&results) {
        match (verdict, &s.known_failing) {
            (Ok(()), None) => {}
            (Ok(()), Some(why)) => known.push(format!(
                "{}: now agrees (remove known-failing: {why})",
                s.id
            )),
            (Err(r), Some(why)) => {
                // One line each; the full report only on request, to keep CI logs readable.
                let first = r.lines().find(|l| l.starts_with("!!! ")).unwrap_or("");
                known.push(format!("{}: still disagrees ({why}) {first}", s.id));
                if std::env::var_os("MIRRORSCOPE_ORACLE_VERBOSE").is_some() {
                    println!("{r}");
                }
            }
            (Err(r), None) => failures.push(r.as_str()),
        }
    }
    let agreed = results.iter().filter(|(_, v)| v.is_ok()).count();
    println!(
        "explain vs skopeo 5.23: {} scenarios ({hand} hand-written, {generated} generated with seed {seed}), {agreed} agreed, {} known-failing; skopeo outcomes: {}",
        scenarios.len(),
        known.len(),
        kinds
            .iter()
            .map(|(k, c)| format!("{c} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for k in &known {
        println!("KNOWN-FAILING {k}");
    }
    let stale: Vec<&String> = known
        .iter()
        .filter(|k| k.contains(": now agrees"))
        .collect();
    assert!(
        stale.is_empty(),
        "known-failing markers that now agree must be removed: {stale:#?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} scenarios disagree:\n\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n\n")
    );
}

/// Where later containers/image releases behave differently, the default (newest)
/// explain must differ from 5.23 (which itself must match skopeo).
#[test]
fn newest_version_differs_where_the_spec_says() {
    mirrorscope_bin();
    let world = World::start();
    let fixtures = load_fixtures();
    let get = |id: &str| -> Prepared {
        let s = fixtures
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("fixture {id} missing"));
        world.prepare(s)
    };

    // D15: mirror `location = "host/"` is trimmed only since 5.35: 5.23 fails the rewrite.
    let p = get("D15");
    let old = p.explain(Some("5.23"));
    let sk = p.skopeo();
    assert!(
        compare(&sk, &old).is_ok(),
        "5.23 must match skopeo: {:?}",
        old.stdout
    );
    let new = p.explain(None);
    assert_eq!(
        new.code,
        Some(0),
        "newest explain: {} {}",
        new.stdout,
        new.stderr
    );
    let refs: Vec<&str> = new.sources.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(
        refs,
        vec![
            format!("{}/library/tiny:1", world.mir.host()),
            format!("{}/library/tiny:1", world.src.host())
        ],
        "newest: trailing slash trimmed"
    );

    // Several invalid aliases: 5.23 chains them (`errN\n: …: err1`), >= 5.31 joins them with
    // newlines. (The >= 5.24 `%#v` dump after the v1/v2 mixing error is not modelled by explain.)
    let s = Scenario {
        id: "aliases".into(),
        conf: Some("[aliases]\n\"a.b/x\" = \"quay.io/x\"\n\"y\" = \"noreg\"\n".into()),
        image: "{CLOSED}/x:1".into(),
        ..Scenario::default()
    };
    let p = world.prepare(&s);
    let old = p.explain(Some("5.23"));
    let new = p.explain(None);
    let e1 = "invalid short name \"a.b/x\": must not contain registry";
    let e2 = "invalid alias \"noreg\": must contain registry and repository";
    assert_eq!(old.code, Some(2), "{}", old.stderr);
    assert_eq!(new.code, Some(2), "{}", new.stderr);
    // Go's map order makes skopeo's own order random, so only the form is compared with skopeo.
    let sk = p.skopeo();
    let InspectResult::Failed { error, .. } = &sk.result else {
        panic!("skopeo accepted invalid aliases: {:?}", sk.result)
    };
    assert!(
        error.contains("\n: ") && error.contains(e1) && error.contains(e2),
        "{error}"
    );
    assert!(
        old.stderr.contains("\n: ") && old.stderr.contains(e1) && old.stderr.contains(e2),
        "{}",
        old.stderr
    );
    assert!(
        new.stderr.contains(&format!("{e1}\n{e2}")) || new.stderr.contains(&format!("{e2}\n{e1}")),
        "{}",
        new.stderr
    );
    assert!(!new.stderr.contains("\n: "), "{}", new.stderr);

    // V5: an empty v1 array counts as v1 since 5.24, so v1 + v2 keys become a mixing error.
    let p = get("V5");
    let old = p.explain(Some("5.23"));
    assert!(
        compare(&p.skopeo(), &old).is_ok(),
        "5.23 must match skopeo: {}",
        old.stdout
    );
    assert_eq!(old.code, Some(0));
    let new = p.explain(None);
    assert_eq!(new.code, Some(2), "{} {}", new.stdout, new.stderr);
    assert!(
        new.stderr
            .contains("mixing sysregistry v1/v2 is not supported"),
        "{}",
        new.stderr
    );
}
