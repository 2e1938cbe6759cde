//! The hand-written differential scenarios checked against Debian's skopeo alone: each scenario's
//! `--- tries` / `--- ok` / `--- error` lines record what containers/image (`pkg/sysregistriesv2`, `docker/`) does
//! containers/image 5.23.1 does, so this test proves both the fixtures and our reading of the oracle.

use mirrorscope_e2e::scenario::{check_expectations, load_fixtures, parallel_map, World};

#[test]
fn hand_written_scenarios_match_the_spec_on_skopeo() {
    let scenarios = load_fixtures();
    assert!(
        scenarios.len() >= 60,
        "only {} hand-written scenarios",
        scenarios.len()
    );
    let world = World::start();
    let results = parallel_map(&scenarios, 3, |s| {
        let p = world.prepare(s);
        let sk = p.skopeo();
        check_expectations(&world, s, &p, &sk).map_err(|d| {
            format!(
                "=== {} ({})\n--- image {}\n--- skopeo tried: {}\n{}\n!!! {}",
                s.id,
                s.note,
                p.image,
                sk.tries.join(" -> "),
                sk.failures
                    .iter()
                    .map(|f| format!("      {} failed: {}", f.reference, f.error))
                    .collect::<Vec<_>>()
                    .join("\n"),
                d.join("\n!!! ")
            )
        })
    });
    let with_expectations = scenarios
        .iter()
        .filter(|s| s.expect.is_some() || s.expect_tries.is_some())
        .count();
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    println!(
        "{} scenarios ({} with expectations), {} agreed with the spec",
        scenarios.len(),
        with_expectations,
        scenarios.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
