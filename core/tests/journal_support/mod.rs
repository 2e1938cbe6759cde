//! Fixture loader for the journal tests.
//!
//! A fixture is a text file in `journal_fixtures/`, close to `journalctl -o short-precise`:
//!
//! ```text
//! # comment
//! @node worker-1
//! @sources quay.io/acme/ledger:1 => mirror.example:8443/acme/ledger:1 quay.io/acme/ledger:1
//! 07:05:01.000100 crio[1484]: time="…" level=info msg="Pulling image: …" id=… name=…
//! 07:05:03.000000 kubenswrapper[2213]: \t[continuation line of a klog multi-line value]
//! ```
//!
//! The clock is on 2026-11-21 UTC; `crio`, `kubenswrapper`, `hyperkube` and `kubelet` set the
//! unit. A message starting with the two characters `\t` starts with a real TAB (fixture files
//! keep no literal tabs). The cursor is `s=fixture;i=<line number>`.

#![allow(dead_code)]

use mirrorscope_core::journal::{
    Correlator, CorrelatorConfig, JournalEntry, Notice, PullRecord, StaticResolver,
};

/// 2026-11-21T00:00:00Z in microseconds.
pub const DAY_USEC: u64 = 1_795_219_200 * 1_000_000;

pub struct Fixture {
    pub entries: Vec<JournalEntry>,
    pub resolver: StaticResolver,
}

pub fn load(name: &str) -> Fixture {
    let path = format!(
        "{}/tests/journal_fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&text)
}

pub fn parse(text: &str) -> Fixture {
    let mut node = None;
    let mut resolver = StaticResolver::new();
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("@node ") {
            node = Some(rest.trim().to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("@sources ") {
            let (image, sources) = rest.split_once(" => ").expect("@sources IMAGE => LOC...");
            resolver.insert(
                image.trim(),
                sources.split_whitespace().map(str::to_owned).collect(),
            );
            continue;
        }
        let (clock, rest) = line.split_once(' ').expect("time");
        let (ident, message) = rest.split_once("]: ").expect("ident[pid]: message");
        let (ident, pid) = ident.split_once('[').expect("ident[pid");
        let message = match message.strip_prefix("\\t") {
            Some(m) => format!("\t{m}"),
            None => message.to_owned(),
        };
        // `<line-max>` at the end: journald cut the line there (`_LINE_BREAK=line-max`).
        let (message, line_continues) = match message.strip_suffix("<line-max>") {
            Some(m) => (m.to_owned(), true),
            None => (message, false),
        };
        let unit = match ident {
            "crio" => Some("crio.service".to_owned()),
            "kubenswrapper" | "hyperkube" | "kubelet" => Some("kubelet.service".to_owned()),
            _ => None,
        };
        entries.push(JournalEntry {
            cursor: format!("s=fixture;i={}", n + 1),
            realtime_usec: DAY_USEC + clock_usec(clock),
            systemd_unit: unit,
            syslog_identifier: Some(ident.to_owned()),
            hostname: node.clone(),
            pid: pid.parse().ok(),
            message,
            line_continues,
        });
    }
    Fixture { entries, resolver }
}

fn clock_usec(clock: &str) -> u64 {
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().expect("hh:mm:ss"));
    let (h, m, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let frac: u64 = format!("{frac:0<6}")[..6].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1_000_000 + frac
}

pub struct Run {
    /// Records in the order the correlator emitted them, then those of `finish()`.
    pub records: Vec<PullRecord>,
    pub notices: Vec<Notice>,
    pub correlator: Correlator,
}

pub fn run_with(f: Fixture, config: CorrelatorConfig) -> Run {
    let mut c = Correlator::new(Box::new(f.resolver), config);
    let mut records = Vec::new();
    let mut notices = Vec::new();
    for e in &f.entries {
        if let Some(n) = c.push(e, &mut records) {
            notices.push(n);
        }
    }
    records.extend(c.finish());
    Run {
        records,
        notices,
        correlator: c,
    }
}

pub fn run(name: &str) -> Run {
    run_with(load(name), CorrelatorConfig::default())
}

pub fn by_id<'a>(records: &'a [PullRecord], id: &str) -> &'a PullRecord {
    records
        .iter()
        .find(|r| r.pull_id == id)
        .unwrap_or_else(|| panic!("no record {id} in {records:#?}"))
}
