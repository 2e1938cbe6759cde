//! Logs for `run`: one line per record on stderr (text or JSON), or the journal when the agent
//! runs as a host service.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};
use mirrorscope_core::time::format_usec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    Stderr,
    Journald,
}

struct StderrLogger {
    json: bool,
    level: LevelFilter,
}

fn now() -> String {
    format_usec(crate::clock::now_usec())
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = if self.json {
            serde_json::json!({
                "time": now(),
                "level": r.level().as_str().to_ascii_lowercase(),
                "target": r.target(),
                "msg": r.args().to_string(),
            })
            .to_string()
        } else {
            format!("{} {:<5} {}", now(), r.level(), r.args())
        };
        // One write per line so concurrent threads do not interleave within a line.
        let _ = std::io::stderr()
            .lock()
            .write_all(format!("{line}\n").as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger; `MIRRORSCOPE_LOG=debug|info|warn|error` sets the level (default info).
pub fn init(format: LogFormat, target: LogTarget) -> anyhow::Result<()> {
    let level = match std::env::var("MIRRORSCOPE_LOG").ok().as_deref() {
        Some("debug") => LevelFilter::Debug,
        Some("trace") => LevelFilter::Trace,
        Some("warn") => LevelFilter::Warn,
        Some("error") => LevelFilter::Error,
        _ => LevelFilter::Info,
    };
    match target {
        LogTarget::Stderr => log::set_boxed_logger(Box::new(StderrLogger {
            json: format == LogFormat::Json,
            level,
        }))
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))?,
        LogTarget::Journald => systemd_journal_logger::JournalLog::new()
            .map_err(|e| anyhow::anyhow!("connecting to the journal: {e}"))?
            .with_syslog_identifier("mirrorscope-agent".into())
            .install()
            .map_err(|e| anyhow::anyhow!("installing the journal logger: {e}"))?,
    }
    log::set_max_level(level);
    Ok(())
}
