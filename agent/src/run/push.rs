//! Pushes the node report to the collector: within a second of a change, as a heartbeat, and
//! with exponential backoff and jitter while the collector is unreachable. Pull records leave
//! the outbox only when the collector acknowledged the report carrying them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use mirrorscope_core::report::PushAck;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use super::state::Shared;

/// Changes arriving together (a burst of pulls) go out in one report.
const COALESCE: Duration = Duration::from_millis(50);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);
/// Pull records per report; a larger outbox drains over several pushes.
pub const MAX_RECORDS: usize = 1000;
/// Bytes per report body: half the collector's limit (8 MiB), so a report never reaches it
/// whatever the records carry.
pub const BUDGET: usize = 4 * 1024 * 1024;
/// The smallest budget a 413 can shrink pushes to.
const MIN_BUDGET: usize = 64 * 1024;

/// `http[s]://host[:port][/prefix]`: where reports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorUrl {
    /// `scheme://host:port`.
    pub base: String,
    pub authority: String,
    pub path: String,
}

impl CollectorUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest, port) = if let Some(r) = url.strip_prefix("http://") {
            ("http", r, 80)
        } else if let Some(r) = url.strip_prefix("https://") {
            ("https", r, 443)
        } else {
            return Err(format!(
                "--collector {url}: must start with http:// or https://"
            ));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("--collector {url}: no host"));
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_owned()
        } else {
            format!("{authority}:{port}")
        };
        Ok(CollectorUrl {
            base: format!("{scheme}://{authority}"),
            authority,
            path: format!("{}/v1/reports", prefix.trim_end_matches('/')),
        })
    }

    /// The HTTP client for this collector: kube-rs' (hyper, rustls with ring, tower), the one
    /// layer the CLI and the collector use too. An https collector is verified against
    /// `ca_file` (PEM), else the system trust store.
    pub fn client(&self, ca_file: Option<&std::path::Path>) -> Result<kube::Client, String> {
        let uri: http::Uri = self
            .base
            .parse()
            .map_err(|e| format!("--collector {}: {e}", self.base))?;
        let mut config = kube::Config::new(uri);
        config.connect_timeout = Some(TIMEOUT);
        if let Some(path) = ca_file {
            use rustls::pki_types::pem::PemObject as _;
            let bad =
                |e: &dyn std::fmt::Display| format!("--collector-ca-file {}: {e}", path.display());
            let certs: Vec<Vec<u8>> = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(&e))?
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(bad(&"no CERTIFICATE block"));
            }
            config.root_cert = Some(certs);
        }
        kube::Client::try_from(config).map_err(|e| format!("--collector {}: {e}", self.base))
    }
}

#[derive(Clone)]
pub struct Pusher {
    pub url: CollectorUrl,
    pub client: kube::Client,
    pub token_file: Option<PathBuf>,
    pub shared: Arc<Shared>,
    /// Push this often when nothing changes, so the collector knows the node is alive.
    pub heartbeat: Duration,
    /// How large the next push may be: shrunk by a 413, grown back by successes.
    pub size: PushSize,
    /// The pull ids of the last push attempted.
    pub last_ids: Vec<String>,
}

/// `now + d`, or far ahead when that does not fit in an `Instant` (a huge --heartbeat-seconds).
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// The records and bytes one push may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSize {
    pub records: usize,
    pub bytes: usize,
}

impl Default for PushSize {
    fn default() -> Self {
        PushSize {
            records: MAX_RECORDS,
            bytes: BUDGET,
        }
    }
}

/// What to do after the collector refused a push as too large (413).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    /// Retry with this smaller size.
    Shrink(PushSize),
    /// One record alone is refused: drop it, or the outbox never drains past it.
    Discard(String),
    /// Nothing left to make smaller (no records, the report's largest fields already left
    /// out): retried as is with backoff.
    GiveUp,
}

impl PushSize {
    /// The next step after a 413 for a push of `ids` at this size; never the same body twice
    /// while anything can still be made smaller.
    pub fn after_too_large(self, ids: &[String]) -> TooLarge {
        match ids {
            [] => TooLarge::GiveUp,
            [only] => TooLarge::Discard(only.clone()),
            _ => TooLarge::Shrink(PushSize {
                records: (ids.len() / 2).max(1),
                bytes: (self.bytes / 2).max(MIN_BUDGET),
            }),
        }
    }

    /// Back towards the full size after a success.
    pub fn grown(self) -> PushSize {
        PushSize {
            records: self.records.saturating_mul(2).min(MAX_RECORDS),
            bytes: self.bytes.saturating_mul(2).min(BUDGET),
        }
    }
}

#[derive(Debug)]
pub enum PushError {
    Transport(String),
    Status(u16, String),
}

impl PushError {
    /// The `error_type` this failure is counted under.
    pub fn class(&self) -> String {
        match self {
            PushError::Transport(_) => "transport".into(),
            PushError::Status(413, _) => "too_large".into(),
            PushError::Status(s, _) if (400..500).contains(s) => format!("http_{s}"),
            PushError::Status(s, _) => format!("http_{}xx", s / 100),
        }
    }
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Transport(e) => f.write_str(e),
            PushError::Status(s, body) => write!(f, "collector answered {s}: {}", body.trim()),
        }
    }
}

/// A small xorshift for jitter; quality does not matter, only that agents spread out.
fn jitter(d: Duration, seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    // 50% to 100% of the nominal delay ("equal jitter").
    let frac = 0.5 + (*seed % 1000) as f64 / 2000.0;
    d.mul_f64(frac)
}

impl Pusher {
    /// Runs until dropped.
    pub async fn run(mut self, mut changed: watch::Receiver<u64>) {
        let mut seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos().into())
                .unwrap_or(7)
            | 1;
        let mut backoff = BACKOFF_MIN;
        let mut failures: u64 = 0;
        // Push at once on start: the collector learns about this instance.
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = sleep_until(next) => {}
                r = changed.changed(), if failures == 0 => {
                    if r.is_err() {
                        return;
                    }
                    tokio::time::sleep(COALESCE).await;
                }
            }
            changed.borrow_and_update();
            match self.push_once().await {
                Ok(more) => {
                    if failures > 0 {
                        tracing::info!("collector reachable again after {failures} failed pushes");
                    }
                    failures = 0;
                    backoff = BACKOFF_MIN;
                    next = if more {
                        Instant::now()
                    } else {
                        later(self.heartbeat)
                    };
                }
                Err(e) => {
                    self.shared.metrics.push_failed();
                    self.shared.metrics.error("push", &e.class());
                    failures += 1;
                    // The first failure and then every tenth: a down collector must not flood logs.
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(
                            "push to {}{} failed ({failures} in a row; {} records waiting): {e}",
                            self.url.authority,
                            self.url.path,
                            self.shared.outbox_len()
                        );
                    }
                    next = later(jitter(backoff, &mut seed));
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One push; `Ok(true)` when the outbox still holds records to send. A 413 makes the next
    /// push smaller (or drops the one record refused alone).
    pub async fn push_once(&mut self) -> Result<bool, PushError> {
        let result = self.try_push().await;
        if let Err(PushError::Status(413, _)) = &result {
            self.shrink();
        }
        result
    }

    fn shrink(&mut self) {
        match self.size.after_too_large(&self.last_ids) {
            TooLarge::Shrink(size) => {
                tracing::warn!(
                    "collector refused a push of {} records as too large; now at most {} records, {} bytes",
                    self.last_ids.len(),
                    size.records,
                    size.bytes
                );
                self.size = size;
            }
            TooLarge::Discard(id) => {
                tracing::error!("collector refuses pull record {id} even alone; dropped");
                self.shared.metrics.error("push", "record_refused");
                self.shared.discard(&id);
            }
            TooLarge::GiveUp => {}
        }
    }

    async fn try_push(&mut self) -> Result<bool, PushError> {
        let (report, left_out) = self.shared.push_report(self.size.records, self.size.bytes);
        if left_out > 0 {
            self.shared.metrics.errors_by(1, "push", "report_truncated");
        }
        let ids: Vec<String> = report.pulls.iter().map(|r| r.pull_id.clone()).collect();
        self.last_ids.clone_from(&ids);
        let body = match serde_json::to_vec(&report) {
            Ok(b) => b,
            Err(e) => {
                self.shared.push_failed();
                return Err(PushError::Transport(e.to_string()));
            }
        };
        if let Err(e) = self.send(body).await {
            self.shared.push_failed();
            return Err(e);
        }
        self.size = self.size.grown();
        self.shared.ack(&ids);
        Ok(!ids.is_empty() && self.shared.outbox_len() > 0)
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), PushError> {
        let token = match &self.token_file {
            // Re-read on every attempt: projected ServiceAccount tokens rotate.
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map(|t| t.trim().to_owned())
                    .map_err(|e| {
                        PushError::Transport(format!("reading token {}: {e}", p.display()))
                    })?,
            ),
            None => None,
        };
        let (status, text) = tokio::time::timeout(TIMEOUT, self.post(body, token))
            .await
            .map_err(|_| {
                PushError::Transport(format!("no answer within {}s", TIMEOUT.as_secs()))
            })??;
        if status != 200 {
            return Err(PushError::Status(status, text));
        }
        match serde_json::from_str::<PushAck>(&text) {
            Ok(ack) => tracing::debug!(
                "pushed report: {} new records, {} duplicates",
                ack.accepted,
                ack.duplicates
            ),
            Err(e) => {
                tracing::debug!("collector answer is not a PushAck ({e}); records acknowledged")
            }
        }
        Ok(())
    }

    async fn post(&self, body: Vec<u8>, token: Option<String>) -> Result<(u16, String), PushError> {
        // A connection per push, as before: pushes are seconds apart, and a pooled connection
        // to a collector replica that stopped accepting would hide that it is gone.
        let mut req = http::Request::post(&self.url.path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONNECTION, "close");
        if let Some(tok) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {tok}"));
        }
        let req = req
            .body(kube::client::Body::from(body))
            .map_err(|e| PushError::Transport(e.to_string()))?;
        let resp =
            self.client.send(req).await.map_err(|e| {
                PushError::Transport(format!("{}: {}", self.url.authority, chain(&e)))
            })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PushError::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// An error and its causes (the TLS or connect reason sits in a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_urls() {
        assert_eq!(
            CollectorUrl::parse("http://127.0.0.1:9402").unwrap(),
            CollectorUrl {
                base: "http://127.0.0.1:9402".into(),
                authority: "127.0.0.1:9402".into(),
                path: "/v1/reports".into()
            }
        );
        assert_eq!(
            CollectorUrl::parse("http://collector.ns.svc/base/").unwrap(),
            CollectorUrl {
                base: "http://collector.ns.svc:80".into(),
                authority: "collector.ns.svc:80".into(),
                path: "/base/v1/reports".into()
            }
        );
        assert_eq!(
            CollectorUrl::parse("https://collector.ns.svc")
                .unwrap()
                .base,
            "https://collector.ns.svc:443"
        );
        assert!(CollectorUrl::parse("c:1").is_err());
    }

    /// A 413 never leads to the same body again while it can be made smaller; a record
    /// refused alone is dropped instead of blocking the outbox forever.
    #[test]
    fn too_large_halves_then_drops_the_single_refused_record() {
        let ids = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        let full = PushSize::default();
        let TooLarge::Shrink(half) = full.after_too_large(&ids(1000)) else {
            panic!("no shrink");
        };
        assert_eq!(half.records, 500);
        assert_eq!(half.bytes, BUDGET / 2);
        let mut size = half;
        let mut steps = 0;
        let mut n = 500;
        while let TooLarge::Shrink(s) = size.after_too_large(&ids(n)) {
            assert!(s.records < n);
            size = s;
            n = s.records;
            steps += 1;
        }
        assert!(steps <= 10, "{steps}");
        assert_eq!(size.after_too_large(&ids(1)), TooLarge::Discard("0".into()));
        assert_eq!(size.after_too_large(&[]), TooLarge::GiveUp);
        assert!(size.bytes >= MIN_BUDGET);
        let mut back = size;
        for _ in 0..20 {
            back = back.grown();
        }
        assert_eq!(back, PushSize::default());
    }

    #[test]
    fn a_huge_heartbeat_does_not_overflow_the_clock() {
        let t = later(Duration::from_secs(u64::MAX));
        assert!(t > Instant::now());
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        let mut seed = 12345;
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10), &mut seed);
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
