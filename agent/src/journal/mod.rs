//! The journal source: CRI-O and kubelet entries read through libsystemd.
//!
//! Everything that talks to sd-journal sits behind [`JournalReader`] so the follower thread, the
//! merge of several directories and the scan command do not depend on libsystemd directly.

pub mod check;
pub mod cursor;
pub mod libsystemd;
pub mod merge;
pub mod pages;
pub mod source;

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use mirrorscope_core::journal::{crio, klog, kubelet, JournalEntry};

/// Failures of the journal source. Each names the journal or file involved.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("opening journal {what}")]
    Open {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading journal {what}: {op}")]
    Read {
        what: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("the journal reader thread could not start")]
    ThreadGone,
}

/// What a wait on the journal saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Nothing changed before the timeout.
    Timeout,
    /// Entries were appended.
    Appended,
    /// Files were added or removed (rotation, vacuum); reading goes on from the current position.
    Invalidated,
}

/// Where reading starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The oldest entry still in the journal.
    #[default]
    Head,
    /// The first entry received at or after this time (µs since the epoch).
    Realtime(u64),
    /// The entry after this cursor (the cursor's own entry was already processed).
    AfterCursor(String),
}

/// A sequential reader of selected journal entries.
pub trait JournalReader {
    /// The next selected entry, or `None` at the current end of the journal.
    fn next_entry(&mut self) -> Result<Option<JournalEntry>, JournalError>;
    /// Blocks until the journal changes or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<WaitOutcome, JournalError>;
    /// The file descriptor that becomes readable when the journal changes, for waiting on several
    /// readers at once; call [`JournalReader::process`] after it fires.
    fn wait_fd(&mut self) -> Result<RawFd, JournalError>;
    /// Acknowledges a change signalled on [`JournalReader::wait_fd`].
    fn process(&mut self) -> Result<WaitOutcome, JournalError>;
    /// Entries (or fields) skipped because the journal data was unreadable.
    fn damaged(&self) -> u64 {
        0
    }
    /// Entries skipped because only their client-chosen fields claimed CRI-O or the kubelet.
    fn untrusted(&self) -> u64 {
        0
    }
}

/// The units and processes whose entries mirrorscope reads.
///
/// Only fields journald sets itself from the sender's credentials are trusted: `_SYSTEMD_UNIT`
/// (from the sender's cgroup), or `_UID` 0 with `_COMM` (for hosts where journald records no
/// unit). `SYSLOG_IDENTIFIER` is whatever the sender wrote (`logger -t crio` from any user), so
/// it only pre-selects entries, which are then checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub units: Vec<String>,
    pub identifiers: Vec<String>,
    /// Process names (`_COMM`) trusted when the sender is root.
    pub commands: Vec<String>,
    /// Longer messages have their middle cut out ([`shorten_message`]): a megabyte error line
    /// must not cost the agent megabytes in every stage it passes.
    pub max_message: Option<usize>,
    /// Pass on only entries whose MESSAGE can matter for pull records (see
    /// [`may_matter_for_pulls`]); the other entries are skipped before their fields are read.
    pub pull_lines_only: bool,
}

impl Default for Selection {
    /// CRI-O and the kubelet: by unit on a real node; by identifier where journald recorded no
    /// unit (a container without systemd as PID 1, `systemd-cat`, imported logs).
    fn default() -> Self {
        Selection {
            units: vec!["crio.service".into(), "kubelet.service".into()],
            identifiers: ["crio", "kubenswrapper", "hyperkube", "kubelet"]
                .map(String::from)
                .to_vec(),
            commands: ["crio", "kubenswrapper", "hyperkube", "kubelet"]
                .map(String::from)
                .to_vec(),
            pull_lines_only: false,
            max_message: None,
        }
    }
}

/// What journald itself recorded about an entry's sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    pub uid: Option<u32>,
    pub comm: Option<String>,
}

impl Selection {
    /// Whether the entry comes from a selected unit or process by the fields journald sets.
    pub fn trusts(&self, entry: &JournalEntry, sender: &Sender) -> bool {
        let unit_ok = entry
            .systemd_unit
            .as_deref()
            .is_some_and(|u| self.units.iter().any(|s| s == u));
        let process_ok = sender.uid == Some(0)
            && sender
                .comm
                .as_deref()
                .is_some_and(|c| self.commands.iter().any(|s| s == c));
        unit_ok || process_ok
    }

    /// Same test as the journal matches, for entries from readers that cannot filter.
    pub fn accepts(&self, entry: &JournalEntry) -> bool {
        let unit_ok = entry
            .systemd_unit
            .as_deref()
            .is_some_and(|u| self.units.iter().any(|s| s == u));
        let ident_ok = entry
            .syslog_identifier
            .as_deref()
            .is_some_and(|i| self.identifiers.iter().any(|s| s == i));
        unit_ok || ident_ok
    }
}

/// Whether a MESSAGE can change a pull record: the correlator's own cheap pre-checks (CRI-O pull
/// and registries lines, kubelet pull lines, klog continuation lines), plus every klog line that
/// opens a multi-line value, so that continuation lines always follow their own header.
///
/// The lines dropped are ones the correlator ignores; what changes is only that an unterminated
/// multi-line kubelet value is closed at the next line that is passed on rather than at the next
/// line of that process.
pub fn may_matter_for_pulls(message: &[u8]) -> bool {
    let Ok(msg) = std::str::from_utf8(message) else {
        // Let the normal path decode it lossily and decide.
        return true;
    };
    match msg.as_bytes().first() {
        Some(b'\t' | b' ') => klog::is_continuation(msg),
        Some(b'{') if kubelet::is_json(msg) => kubelet::json_may_be_relevant(msg),
        // Any CRI-O debug line too: it tells the correlator that debug lines reach the journal,
        // so a pull without blob fallback lines got its layers where its manifest came from.
        Some(b't' | b'{') => crio::line_may_be_relevant(msg) || crio::line_is_debug(msg),
        Some(b'I' | b'W' | b'E' | b'F') => {
            kubelet::may_be_relevant(msg) || klog::opens_multiline(msg)
        }
        _ => false,
    }
}

/// Where the journal lives: explicit files, or directories (followed across rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalLocation {
    Files(Vec<PathBuf>),
    Directories(Vec<PathBuf>),
}

/// Opens the reader for `location`, selecting `selection` and positioned at `start`.
///
/// Several directories are opened as separate sd-journal handles and merged by time, since
/// sd-journal opens only one directory per handle.
pub fn open(
    location: &JournalLocation,
    selection: &Selection,
    start: &StartAt,
) -> Result<Box<dyn JournalReader>, JournalError> {
    match location {
        JournalLocation::Files(files) => Ok(Box::new(libsystemd::SdJournal::open_files(
            files, selection, start,
        )?)),
        JournalLocation::Directories(dirs) => {
            let mut readers = Vec::with_capacity(dirs.len());
            for dir in dirs {
                readers.push(libsystemd::SdJournal::open_directory(
                    dir, selection, start,
                )?);
            }
            if readers.len() == 1 {
                if let Some(only) = readers.pop() {
                    return Ok(Box::new(only));
                }
            }
            Ok(Box::new(merge::Merged::new(readers)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fields_journald_sets_are_trusted() {
        let sel = Selection::default();
        let entry = |unit: Option<&str>| JournalEntry {
            systemd_unit: unit.map(str::to_owned),
            syslog_identifier: Some("crio".into()),
            ..JournalEntry::default()
        };
        let sender = |uid, comm: &str| Sender {
            uid: Some(uid),
            comm: Some(comm.into()),
        };
        // `logger -t crio` as nobody: the identifier says crio, nothing else does.
        assert!(sel.accepts(&entry(None)));
        assert!(!sel.trusts(&entry(None), &sender(65534, "logger")));
        assert!(!sel.trusts(&entry(None), &sender(65534, "crio")));
        assert!(!sel.trusts(&entry(None), &sender(0, "logger")));
        assert!(!sel.trusts(&entry(None), &Sender::default()));
        assert!(sel.trusts(&entry(Some("crio.service")), &Sender::default()));
        assert!(sel.trusts(&entry(None), &sender(0, "crio")));
        assert!(sel.trusts(&entry(None), &sender(0, "kubelet")));
        assert!(!sel.trusts(&entry(Some("user@1000.service")), &sender(1000, "crio")));
    }

    #[test]
    fn pull_lines_pass_and_other_lines_are_dropped() {
        let keep = [
            r#"time="2026-11-21T07:05:00.1Z" level=info msg="Pulling image: quay.io/a/b:1" id=u name=/runtime.v1.ImageService/PullImage"#,
            r#"time="2026-11-21 07:05:00.100000000Z" level=info msg="Trying to access \"m.example/a/b:1\"""#,
            r#"{"level":"info","msg":"Pulled image: quay.io/a/b@sha256:00","time":"2026-11-21T07:05:00Z"}"#,
            r#"E1121 07:05:00.100000    2213 log.go:32] "PullImage from image service failed" err="x" image="quay.io/a/b:1""#,
            r#"E1121 07:05:00.100000    2213 other.go:1] "Something else" err=<"#,
            "\trpc error: code = Unknown desc = (Mirrors also failed: [a: b]",
            " > image=\"quay.io/a/b:1\"",
            // Debug lines (blob fallback, or any other: debug logging is on).
            r#"time="2026-11-21T07:05:00.1Z" level=debug msg="Blob fetch succeeded from fallback source \"q/a:1\", switching to it for future requests""#,
            r#"time="2026-11-21T07:05:00.1Z" level=debug msg="Downloading /v2/a/b/blobs/sha256:00""#,
        ];
        for m in keep {
            assert!(may_matter_for_pulls(m.as_bytes()), "{m}");
        }
        let drop = [
            r#"time="2026-11-21T07:05:00.1Z" level=info msg="Creating container: ns/pod/c" id=u name=/runtime.v1.RuntimeService/CreateContainer"#,
            r#"I1121 07:05:00.100000    2213 kubelet.go:2470] "SyncLoop (PLEG): event for pod" pod="ns/p""#,
            "Accepted publickey for core from 192.0.2.10",
            "",
        ];
        for m in drop {
            assert!(!may_matter_for_pulls(m.as_bytes()), "{m}");
        }
        // Undecodable bytes are left to the full read.
        assert!(may_matter_for_pulls(b"\xff\xfe"));
    }
}

/// Cuts the middle out of a MESSAGE longer than `max` bytes, keeping its start and its end
/// (where klog puts the `image="…"` of an error line) and saying how much was cut. The cuts
/// fall on spaces where possible: inside a quoted value a space is never part of an escape,
/// so the line still parses.
pub fn shorten_message(value: &[u8], max: usize) -> std::borrow::Cow<'_, [u8]> {
    const SEARCH: usize = 256;
    if value.len() <= max || max < 4 * SEARCH {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut head = max * 3 / 4;
    if let Some(i) = value[head - SEARCH..head].iter().rposition(|&b| b == b' ') {
        head = head - SEARCH + i;
    }
    while head > 0 && (value[head - 1] == b'\\' || value[head] & 0xC0 == 0x80) {
        head -= 1;
    }
    let mut tail = value.len() - max / 4;
    if let Some(i) = value[tail..tail + SEARCH].iter().position(|&b| b == b' ') {
        tail += i;
    }
    while tail < value.len() && (value[tail - 1] == b'\\' || value[tail] & 0xC0 == 0x80) {
        tail += 1;
    }
    let marker = format!(" [{} bytes cut by mirrorscope-agent]", tail - head);
    let mut out = Vec::with_capacity(head + marker.len() + value.len() - tail);
    out.extend_from_slice(&value[..head]);
    out.extend_from_slice(marker.as_bytes());
    out.extend_from_slice(&value[tail..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod shorten_tests {
    use super::*;

    #[test]
    fn long_kubelet_errors_keep_their_start_and_image_and_still_parse() {
        let err = format!(
            "rpc error: code = Unknown desc = reading manifest: {}",
            "Get \\\"https://m.example/v2/\\\": no such host ".repeat(30_000)
        );
        let line = format!(
            "E1121 10:00:00.002000    2213 log.go:32] \"PullImage from image service failed\" err=\"{err}\" image=\"quay.io/acme/app-1:1\""
        );
        let short = shorten_message(line.as_bytes(), 64 * 1024);
        assert!(short.len() <= 64 * 1024 + 64, "{}", short.len());
        let text = std::str::from_utf8(&short).unwrap();
        assert!(text.starts_with("E1121 10:00:00.002000"));
        assert!(
            text.ends_with(" image=\"quay.io/acme/app-1:1\""),
            "{}",
            &text[text.len() - 100..]
        );
        assert!(text.contains("bytes cut by mirrorscope-agent]"));
        let parsed = mirrorscope_core::journal::klog::parse_klog(text).unwrap();
        assert_eq!(parsed.value("image"), Some("quay.io/acme/app-1:1"));
        assert!(parsed
            .value("err")
            .is_some_and(|e| e.starts_with("rpc error: code = Unknown desc = reading manifest")));
        // Short lines pass untouched.
        assert!(matches!(
            shorten_message(b"short", 64 * 1024),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
