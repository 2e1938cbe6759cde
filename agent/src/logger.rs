//! Logs for `run`, through `tracing`: one line per event on stderr (text, or JSON with the keys
//! `time`, `level`, `target`, `msg`), or the journal when the agent runs as a host service.

use std::fmt;

use mirrorscope_core::time::format_usec;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// The message and the other fields of an event, as one text.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

/// One line per event: `TIME LEVEL message` or a JSON object.
struct Line {
    json: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut msg = Message::default();
        event.record(&mut msg);
        let time = format_usec(crate::clock::now_usec());
        let level = *event.metadata().level();
        if self.json {
            let line = serde_json::json!({
                "time": time,
                "level": level.as_str().to_ascii_lowercase(),
                "target": event.metadata().target(),
                "msg": msg.0,
            });
            writeln!(writer, "{line}")
        } else {
            writeln!(writer, "{time} {:<5} {}", level.as_str(), msg.0)
        }
    }
}

/// Installs the subscriber; `MIRRORSCOPE_LOG=debug|info|warn|error` sets the level (default
/// info).
pub fn init(format: LogFormat, target: LogTarget) -> anyhow::Result<()> {
    let level = match std::env::var("MIRRORSCOPE_LOG").ok().as_deref() {
        Some("debug") => Level::DEBUG,
        Some("trace") => Level::TRACE,
        Some("warn") => Level::WARN,
        Some("error") => Level::ERROR,
        _ => Level::INFO,
    };
    // The agent's own events at the chosen level; its libraries' (hyper, kube-rs) at warn, so
    // `MIRRORSCOPE_LOG=debug` shows the agent, not every connection.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("mirrorscope_agent", level)
        .with_default(Level::WARN.min(level));
    let registry = tracing_subscriber::registry().with(filter);
    match target {
        LogTarget::Stderr => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .event_format(Line {
                        json: format == LogFormat::Json,
                    }),
            )
            .try_init()
            .map_err(|e| anyhow::anyhow!("installing the logger: {e}")),
        LogTarget::Journald => {
            let journald = tracing_journald::layer()
                .map_err(|e| anyhow::anyhow!("connecting to the journal: {e}"))?
                .with_syslog_identifier("mirrorscope-agent".into());
            registry
                .with(journald)
                .try_init()
                .map_err(|e| anyhow::anyhow!("installing the journal logger: {e}"))
        }
    }
}
