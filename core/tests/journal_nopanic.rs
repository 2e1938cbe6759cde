//! No input may panic the grammar or the correlator: random and mutated lines, many rounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod journal_support;

use mirrorscope_core::journal::{
    cimage_error, crio, gostr, klog, kubelet, logrus, timefmt, Correlator, CorrelatorConfig,
    JournalEntry, StaticResolver,
};

mod common;
use common::Rng;

const TOKENS: &[&str] = &[
    "\"",
    "\\",
    "\\\"",
    "=",
    "=<",
    " >",
    "\t",
    "\n",
    "]",
    "[",
    "): ",
    ": ",
    "(Mirrors also failed: [",
    "]\n[",
    "msg=",
    "id=",
    "\\x4",
    "\\u12",
    "\\U0001F6",
    "\\7",
    "é",
    "€",
    "😀",
    "time=\"",
    "] \"",
    " is blocked in ",
    "@sha256:",
    "Pulling image: ",
    "Trying to access ",
    "Pulled image: ",
    "\"PullImage from image service failed\"",
    "\"Event occurred\"",
    "reason=\"Pulling\"",
    "E1121 07:05:01.123456    2213 log.go:32] ",
    "{",
    "}",
    "\"msg\":\"",
];

fn mutate(rng: &mut Rng, line: &str) -> String {
    let mut chars: Vec<char> = line.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(5) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                for (k, c) in t.chars().enumerate() {
                    chars.insert(at + k, c);
                }
            }
            2 => chars.truncate(at),
            3 if at < chars.len() => {
                chars[at] = char::from_u32((rng.next() % 0x250) as u32).unwrap_or('x');
            }
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                chars.extend(t.chars());
            }
        }
    }
    chars.into_iter().collect()
}

fn exercise_grammar(line: &str) {
    let _ = logrus::parse_logrus(line);
    let _ = logrus::raw_msg(line);
    let _ = klog::parse_klog(line);
    let _ = crio::parse_crio_line(line);
    let _ = kubelet::parse_kubelet_line(line);
    let _ = kubelet::parse_pulled_message(line);
    let _ = gostr::unquote(line);
    let _ = gostr::read_quoted(line);
    let _ = timefmt::parse_logrus_time(line);
    let _ = cimage_error::classify_error(line);
    let _ = cimage_error::split_error(line, &[]);
    let _ = cimage_error::split_error(line, &["a/b:1", "m.example/x/y:1", "q.io/x/y:1"]);
    let _ = crio::pulled_value(line);
}

fn all_fixture_lines() -> Vec<JournalEntry> {
    let dir = format!("{}/tests/journal_fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| journal_support::load(n).entries)
        .collect()
}

#[test]
fn mutated_fixture_lines_never_panic() {
    let base = all_fixture_lines();
    assert!(base.len() > 50, "fixtures missing");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let resolver = StaticResolver::new()
        .with(
            "quay.io/acme/ledger:7",
            &[
                "mirror-a.example.net/acme/ledger:7",
                "quay.io/acme/ledger:7",
            ],
        )
        .with("quay.io/acme/web:1.8", &[]);
    let config = CorrelatorConfig {
        abandon_after_usec: 2_000_000,
        linger_usec: 500_000,
        pod_hint_usec: 1_000_000,
        // The agent's mode: records out at once, amendments later.
        emit_early: true,
    };
    let mut c = Correlator::new(Box::new(resolver), config);
    let mut out = Vec::new();
    let mut time = journal_support::DAY_USEC;
    for round in 0..25_000u32 {
        let src = &base[rng.below(base.len())];
        let mut e = src.clone();
        if rng.below(4) != 0 {
            e.message = mutate(&mut rng, &src.message);
        }
        exercise_grammar(&e.message);
        // Journal time mostly moves forward, sometimes jumps, sometimes goes back (clock steps).
        time = match rng.below(20) {
            0 => time.saturating_sub(rng.next() % 10_000_000),
            1 => time + rng.next() % 100_000_000,
            _ => time + rng.next() % 50_000,
        };
        e.realtime_usec = time;
        e.pid = if rng.below(3) == 0 {
            None
        } else {
            Some(rng.below(3) as u32)
        };
        e.cursor = format!("c{round}");
        let _ = c.push(&e, &mut out);
    }
    out.extend(c.finish());
    assert!(!out.is_empty());
    for r in &out {
        serde_json::to_string(r).unwrap();
        assert!(!r.pull_id.is_empty());
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    let mut c = Correlator::new(Box::new(StaticResolver::new()), CorrelatorConfig::default());
    let mut out = Vec::new();
    for i in 0..20_000u64 {
        let len = rng.below(160);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        // Give some of them a plausible start so they reach the deeper parsers.
        match rng.below(4) {
            0 => text.insert_str(0, "time=\"2026-11-21T07:05:01Z\" level=info msg=\""),
            1 => text.insert_str(0, "E1121 07:05:01.123456    2213 log.go:32] \""),
            2 => text.insert_str(0, "(Mirrors also failed: ["),
            _ => {}
        }
        exercise_grammar(&text);
        let e = JournalEntry {
            cursor: format!("r{i}"),
            realtime_usec: journal_support::DAY_USEC + i * 1000,
            pid: Some(7),
            message: text,
            ..JournalEntry::default()
        };
        let _ = c.push(&e, &mut out);
    }
    let _ = c.finish();
}
