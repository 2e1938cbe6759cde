//! `mirrorscope plan` with a collector: the recent pulls that the change would break or move,
//! replayed against the new rendering.

use std::process::Command;

use mirrorscope_e2e::collector::*;

const CURRENT: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: quay}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.example.com/ns]\n";
const NEVER: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: quay}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.example.com/ns]\n    mirrorSourcePolicy: NeverContactSource\n";

#[test]
fn plan_names_the_pulls_a_change_breaks() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    let digest = format!("quay.io/ns/app@sha256:{}", "b".repeat(64));
    n.pulls = vec![
        pull_record("p1", "quay.io/ns/app:1", "quay.io/ns/app:1", false, false),
        pull_record(
            "p2",
            &digest,
            &digest.replace("quay.io/ns", "mirror.example.com/ns"),
            true,
            false,
        ),
        pull_record(
            "p3",
            "docker.io/library/nginx:1.25",
            "docker.io/library/nginx:1.25",
            false,
            false,
        ),
    ];
    n.push_to(&c.url);
    let dir = TempDir::new("plan-replay");
    let current = dir.path().join("current.yaml");
    let never = dir.path().join("never.yaml");
    std::fs::write(&current, CURRENT).unwrap();
    std::fs::write(&never, NEVER).unwrap();
    let out = Command::new(bin("mirrorscope"))
        .args([
            "plan",
            "--current",
            current.to_str().unwrap(),
            "-f",
            never.to_str().unwrap(),
        ])
        .args(["--merge", "-o", "json", "--collector", &c.url])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let affected = v["affected"].as_array().unwrap();
    // The tag pull went to the source (IDMS mirrors are digest-only); NeverContactSource blocks
    // it. The digest pull keeps its mirror but loses the source behind it.
    assert_eq!(affected.len(), 2, "{affected:?}");
    assert_eq!(
        affected[1]["change"],
        "the source is blocked from now on: only the mirrors can serve it"
    );
    assert_eq!(affected[1]["before"], affected[1]["after"]);
    assert_eq!(affected[0]["image"], "quay.io/ns/app:1");
    assert_eq!(
        affected[0]["change"],
        "starts failing: every location is blocked"
    );
    assert_eq!(affected[0]["before"], "quay.io/ns/app:1");
    // Without a collector there is nothing to replay, and nothing is claimed.
    let out = Command::new(bin("mirrorscope"))
        .args([
            "plan",
            "--current",
            current.to_str().unwrap(),
            "-f",
            never.to_str().unwrap(),
        ])
        .args(["--merge", "-o", "json"])
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("affected").is_none(), "{v}");
}
