//! Journals for the tests: entries in journal export format turned into real journal files by
//! `systemd-journal-remote`, CRI-O (logrus) and kubelet (klog) line builders, a standalone
//! `systemd-journald` to follow live, and a runner for `mirrorscope-agent scan`.

use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
pub const JOURNALD: &str = "/lib/systemd/systemd-journald";
pub const BOOT_ID: &str = "6d3f0c6f8a2b4f0e9d1c2b3a4f5e6d7c";

/// `mirrorscope-agent`, from `$MIRRORSCOPE_BIN_DIR` (set by tests/run) or this workspace's
/// debug build.
pub fn agent_bin() -> PathBuf {
    let dir = std::env::var_os("MIRRORSCOPE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let bin = dir.join("mirrorscope-agent");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p mirrorscope-agent` (tests/run does)",
        bin.display()
    );
    bin
}

/// A fresh scratch directory under the system temp dir, unique per test, removed when dropped
/// (a failing test's too: the panic unwinds through it).
pub fn scratch(name: &str) -> crate::collector::TempDir {
    crate::collector::TempDir::new(&format!("journal-{name}"))
}

/// Fails loudly when a real part is missing (tests/deps.txt installs it).
pub fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the package listed for it in tests/deps.txt"
    );
}

/// One journal entry, fields in export order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// An entry as journald stores a line a service wrote to stdout.
    pub fn stdout(
        realtime_usec: u64,
        unit: Option<&str>,
        ident: &str,
        pid: u32,
        msg: &str,
    ) -> Self {
        let mut e = Entry { fields: Vec::new() };
        e.set("__REALTIME_TIMESTAMP", &realtime_usec.to_string());
        // Any monotonic clock consistent with the realtime one will do.
        e.set(
            "__MONOTONIC_TIMESTAMP",
            &(realtime_usec % 10_000_000_000).to_string(),
        );
        e.set("_BOOT_ID", BOOT_ID);
        e.set("_HOSTNAME", "worker-1.example.com");
        e.set("_TRANSPORT", "stdout");
        e.set("PRIORITY", "6");
        e.set("SYSLOG_FACILITY", "3");
        e.set("SYSLOG_IDENTIFIER", ident);
        e.set("_PID", &pid.to_string());
        // What journald records itself about a root service: the agent trusts these, not
        // SYSLOG_IDENTIFIER.
        e.set("_UID", "0");
        e.set("_GID", "0");
        e.set("_COMM", ident);
        if let Some(u) = unit {
            e.set("_SYSTEMD_UNIT", u);
            e.set("_SYSTEMD_CGROUP", &format!("/system.slice/{u}"));
        }
        e.set("MESSAGE", msg);
        e
    }

    /// A `crio.service` entry.
    pub fn crio(realtime_usec: u64, msg: &str) -> Self {
        Entry::stdout(realtime_usec, Some("crio.service"), "crio", 1484, msg)
    }

    /// A `kubelet.service` entry as OpenShift's kubenswrapper writes it.
    pub fn kubelet(realtime_usec: u64, msg: &str) -> Self {
        Entry::stdout(
            realtime_usec,
            Some("kubelet.service"),
            "kubenswrapper",
            2213,
            msg,
        )
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.fields.retain(|(k, _)| k != key);
        self.fields
            .push((key.to_owned(), value.as_bytes().to_vec()));
    }

    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    pub fn message(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == "MESSAGE")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Journal export format: text `KEY=VALUE` lines, the binary form for values with a newline,
/// a blank line after every entry.
pub fn export(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (k, v) in &e.fields {
            if v.contains(&b'\n') {
                out.extend_from_slice(k.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
                out.push(b'\n');
            } else {
                out.extend_from_slice(k.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
    out
}

/// Converts export-format text into the journal file `path` (must end in `.journal`).
pub fn journal_from_export(export_text: &[u8], path: &Path) {
    require(JOURNAL_REMOTE);
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", path.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(export_text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        path.exists(),
        "systemd-journal-remote wrote no {}",
        path.display()
    );
}

/// Writes `entries` into a new journal file `dir/name.journal`.
pub fn write_journal(dir: &Path, name: &str, entries: &[Entry]) -> PathBuf {
    let path = dir.join(format!("{name}.journal"));
    journal_from_export(&export(entries), &path);
    path
}

/// Runs `mirrorscope-agent scan ARGS`.
pub fn scan(args: &[&str]) -> Output {
    Command::new(agent_bin())
        .arg("scan")
        .args(args)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

/// Runs scan, asserts success, and parses its `-o jsonl` (or `--entries`) output.
pub fn scan_jsonl(args: &[&str]) -> Vec<serde_json::Value> {
    let out = scan(args);
    assert!(
        out.status.success(),
        "scan {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad jsonl line {l:?}: {e}")))
        .collect()
}

// ---- line builders ----

/// Civil UTC date and time of `usec` since the epoch: (y, m, d, hh, mm, ss, micros).
pub fn civil(usec: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = (usec / 1_000_000) as i64;
    let micros = (usec % 1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60, micros)
}

/// RFC 3339 UTC with microseconds, as pull records print times.
pub fn rfc3339(usec: u64) -> String {
    let (y, mo, d, h, mi, s, us) = civil(usec);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
}

/// The CRI-O version whose logrus `time=` format a line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// ≤ 1.31: `2006-01-02 15:04:05.000000000Z07:00`.
    Spaced,
    /// ≥ 1.32: RFC3339Nano with trailing zeros trimmed.
    Rfc3339Nano,
}

fn logrus_time(usec: u64, f: TimeFormat) -> String {
    let (y, mo, d, h, mi, s, us) = civil(usec);
    match f {
        TimeFormat::Spaced => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}000Z"),
        TimeFormat::Rfc3339Nano => {
            let frac = format!("{us:06}");
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac}Z")
            }
        }
    }
}

/// logrus TextFormatter value: bare when every char is in `[A-Za-z0-9-._/@^+]`, else Go `%q`.
pub fn logrus_value(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        v.to_owned()
    } else {
        go_quote(v)
    }
}

/// Go `strconv.Quote` for the characters these tests use.
pub fn go_quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A CRI-O info line; `id` adds `id=<uuid> name=/runtime.v1.ImageService/PullImage`.
pub fn crio_msg(usec: u64, tf: TimeFormat, msg: &str, id: Option<&str>) -> String {
    let mut line = format!(
        "time={} level=info msg={}",
        go_quote(&logrus_time(usec, tf)),
        logrus_value(msg)
    );
    if let Some(id) = id {
        line.push_str(&format!(
            " id={} name=/runtime.v1.ImageService/PullImage",
            logrus_value(id)
        ));
    }
    line
}

/// The text a klog call prints (with real newlines when a value has some): the header line, and
/// for a multi-line value the `key=<` / TAB-indented / ` >` lines.
pub fn klog_text(
    usec: u64,
    severity: char,
    file_line: &str,
    msg: &str,
    pairs: &[(&str, &str)],
) -> String {
    let (_, mo, d, h, mi, s, us) = civil(usec);
    let mut text = format!(
        "{severity}{mo:02}{d:02} {h:02}:{mi:02}:{s:02}.{us:06} {:>7} {file_line}] {}",
        2213,
        go_quote(msg)
    );
    for (k, v) in pairs {
        if v.contains('\n') {
            text.push_str(&format!(" {k}=<\n"));
            for l in v.split('\n') {
                text.push('\t');
                text.push_str(l);
                text.push('\n');
            }
            text.push_str(" >");
        } else {
            text.push_str(&format!(" {k}={}", go_quote(v)));
        }
    }
    text
}

/// The journal entries of one klog call: journald splits its text at `\n`.
pub fn klog_entries(
    usec: u64,
    severity: char,
    file_line: &str,
    msg: &str,
    pairs: &[(&str, &str)],
) -> Vec<Entry> {
    klog_text(usec, severity, file_line, msg, pairs)
        .split('\n')
        .enumerate()
        .map(|(i, line)| Entry::kubelet(usec + i as u64, line))
        .collect()
}

// ---- standalone journald ----

/// A `systemd-journald` instance in its own journal namespace: its own sockets under
/// `/run/systemd/journal.<ns>/` and its own journal directory, torn down on drop.
pub struct Journald {
    child: Child,
    namespace: String,
    socket: PathBuf,
    dir: PathBuf,
    /// A namespace journald exits after 30 s without a connected stdout stream ("Server is idle,
    /// exiting."); this empty stream keeps it up through a test's quiet phases.
    _keepalive: Option<UnixStream>,
    /// Idle processes named like the services entries are sent for (see [`Journald::send`]).
    senders: std::sync::Mutex<std::collections::HashMap<String, Child>>,
}

/// Process names journald records as `_COMM` for the services the agent trusts.
const SERVICE_COMMS: [&str; 4] = ["crio", "kubelet", "kubenswrapper", "hyperkube"];

impl Journald {
    pub fn start() -> Self {
        require(JOURNALD);
        static N: AtomicU32 = AtomicU32::new(0);
        let namespace = format!(
            "mirrorscope-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let machine_id = std::fs::read_to_string("/etc/machine-id")
            .expect("journald needs /etc/machine-id")
            .trim()
            .to_owned();
        let child = Command::new(JOURNALD)
            .arg(&namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = PathBuf::from(format!("/run/systemd/journal.{namespace}/socket"));
        let candidates = [
            PathBuf::from(format!("/var/log/journal/{machine_id}.{namespace}")),
            PathBuf::from(format!("/run/log/journal/{machine_id}.{namespace}")),
        ];
        let mut j = Journald {
            child,
            namespace,
            socket,
            dir: PathBuf::new(),
            _keepalive: None,
            senders: Default::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = j.child.try_wait().unwrap() {
                panic!("systemd-journald exited at start: {status}");
            }
            let dir = candidates.iter().find(|d| has_journal_file(d));
            if let (true, Some(dir)) = (j.socket.exists(), dir) {
                j.dir = dir.clone();
                j._keepalive = Some(j.stdout_stream("mirrorscope-keepalive", "keepalive.service"));
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "systemd-journald did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The native-protocol socket of this namespace (`/run/systemd/journal.<ns>/socket`).
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The directory journald writes this namespace's files to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one entry over the native protocol, as a service logging to the journal would.
    /// With `SYSLOG_IDENTIFIER` crio, kubelet, kubenswrapper or hyperkube the entry is sent in
    /// the name of an idle root process of that name, so journald records `_UID=0` and that
    /// `_COMM`, as for the real service on a host without units.
    pub fn send(&self, fields: &[(&str, &str)]) {
        let mut dgram = Vec::new();
        for (k, v) in fields {
            assert!(!v.contains('\n'), "native text fields cannot hold newlines");
            dgram.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
        let sock = UnixDatagram::unbound().unwrap();
        let comm = fields
            .iter()
            .find(|(k, _)| *k == "SYSLOG_IDENTIFIER")
            .map(|(_, v)| *v)
            .filter(|v| SERVICE_COMMS.contains(v));
        match comm {
            Some(comm) => {
                let pid = self.sender_pid(comm);
                send_with_pid(&sock, &self.socket, &dgram, pid);
            }
            None => {
                sock.send_to(&dgram, &self.socket).unwrap();
            }
        }
    }

    /// The pid of an idle process whose name (`/proc/PID/comm`) is `comm`: `sleep` started
    /// through a symlink of that name.
    fn sender_pid(&self, comm: &str) -> u32 {
        let mut senders = self.senders.lock().unwrap();
        if let Some(c) = senders.get(comm) {
            return c.id();
        }
        let dir = scratch(&format!("sender-{comm}"));
        let exe = dir.join(comm);
        std::os::unix::fs::symlink("/bin/sleep", &exe).unwrap();
        let child = Command::new(&exe)
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The name is set by exec: wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
            .map(|c| c.trim() != comm)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "{comm} helper did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let pid = child.id();
        senders.insert(comm.to_owned(), child);
        pid
    }

    /// A stdout stream as systemd connects a service's stdout/stderr to journald: the stream
    /// header (identifier, unit, priority 6, no level prefix, no forwarding), then every line
    /// written becomes one entry.
    pub fn stdout_stream(&self, identifier: &str, unit: &str) -> UnixStream {
        let path = self.socket.with_file_name("stdout");
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(format!("{identifier}\n{unit}\n6\n0\n0\n0\n0\n").as_bytes())
            .unwrap();
        s
    }

    /// Asks journald to rotate its files (SIGUSR2), and waits until an archived file exists.
    pub fn rotate(&self) {
        let before = self.archived_files().len();
        signal(self.pid(), "USR2");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.archived_files().len() <= before {
            assert!(Instant::now() < deadline, "journald did not rotate");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes the archived (rotated) files, as `journalctl --vacuum-*` does.
    pub fn vacuum(&self) -> usize {
        let archived = self.archived_files();
        for f in &archived {
            std::fs::remove_file(f).unwrap();
        }
        archived.len()
    }

    pub fn archived_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.contains('@') && n.ends_with(".journal"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Ok(mut senders) = self.senders.lock() {
            for (_, mut c) in senders.drain() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{}", self.namespace));
    }
}

/// Sends `dgram` to `socket` with credentials naming process `pid` (root may name any
/// process: CAP_SYS_ADMIN), so journald takes `_PID`, `_COMM` and `_EXE` from that process.
fn send_with_pid(sock: &UnixDatagram, socket: &Path, dgram: &[u8], pid: u32) {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len(), "socket path too long");
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let cred = libc::ucred {
        pid: pid as libc::pid_t,
        uid: 0,
        gid: 0,
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: dgram.as_ptr() as *mut libc::c_void,
        iov_len: dgram.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut addr as *mut libc::sockaddr_un as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at live buffers sized as declared; the header is written into
    // `control`, which CMSG_SPACE sized for one ucred.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null());
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_CREDENTIALS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::ucred>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            &cred as *const libc::ucred as *const u8,
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<libc::ucred>(),
        );
        libc::sendmsg(sock.as_raw_fd(), &msg, 0)
    };
    assert!(
        sent >= 0,
        "sendmsg to {}: {}",
        socket.display(),
        std::io::Error::last_os_error()
    );
}

fn has_journal_file(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        })
        .unwrap_or(false)
}

/// Sends a signal by name with kill(1), to processes this test started.
pub fn signal(pid: u32, name: &str) {
    let st = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{name} {pid} failed");
}

// ---- scenarios ----

/// 2026-11-21T00:00:00Z in microseconds: the day of every scenario.
pub const DAY_USEC: u64 = 1_795_219_200 * 1_000_000;

/// `HH:MM:SS[.ffffff]` on the scenario day, in µs since the epoch.
pub fn at(clock: &str) -> u64 {
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut it = hms.split(':').map(|p| p.parse::<u64>().unwrap());
    let (h, m, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let us: u64 = format!("{frac:0<6}")[..6].parse().unwrap();
    DAY_USEC + ((h * 60 + m) * 60 + s) * 1_000_000 + us
}

/// The unit journald records for a line of `ident` on an OpenShift node.
fn unit_of(ident: &str) -> String {
    match ident {
        "crio" => "crio.service".into(),
        "kubenswrapper" | "hyperkube" | "kubelet" => "kubelet.service".into(),
        other => format!("{other}.service"),
    }
}

/// Parses a fixture in the format of `tests/fixtures/journal/README.md`.
pub fn fixture_entries(text: &str) -> Vec<Entry> {
    let mut node = "worker-1.example.com".to_owned();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("@node ") {
            node = rest.trim().to_owned();
            continue;
        }
        let (clock, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("fixture line {}: no time", n + 1));
        let (ident, msg) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("fixture line {}: no `ident: `", n + 1));
        let (ident, unit) = match ident.strip_prefix('-') {
            Some(i) => (i, None),
            None => (ident, Some(unit_of(ident))),
        };
        let msg = match msg.strip_prefix("\\t") {
            Some(m) => format!("\t{m}"),
            None => msg.to_owned(),
        };
        let pid = match ident {
            "crio" => 1484,
            "kubenswrapper" | "hyperkube" | "kubelet" => 2213,
            _ => 700,
        };
        let mut e = Entry::stdout(at(clock), unit.as_deref(), ident, pid, &msg);
        e.set("_HOSTNAME", &node);
        out.push(e);
    }
    out
}

/// A scan scenario: entries, the node's registries.conf, and a private scratch directory.
pub struct Scenario {
    pub dir: crate::collector::TempDir,
    pub entries: Vec<Entry>,
    pub registries_conf: String,
}

impl Scenario {
    pub fn new(name: &str, registries_conf: &str) -> Self {
        Scenario {
            dir: scratch(name),
            entries: Vec::new(),
            registries_conf: registries_conf.to_owned(),
        }
    }

    /// A checked-in fixture pair `tests/fixtures/journal/NAME.{journal.txt,registries.conf}`.
    pub fn fixture(name: &str) -> Self {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/journal");
        let read = |ext: &str| {
            let p = base.join(format!("{name}.{ext}"));
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut s = Scenario::new(name, &read("registries.conf"));
        s.entries = fixture_entries(&read("journal.txt"));
        s
    }

    /// A CRI-O line at `clock`.
    pub fn crio(&mut self, clock: &str, tf: TimeFormat, msg: &str, id: Option<&str>) -> &mut Self {
        let t = at(clock);
        self.entries.push(Entry::crio(t, &crio_msg(t, tf, msg, id)));
        self
    }

    /// A kubelet klog call at `clock` (several entries when a value has newlines).
    pub fn klog(
        &mut self,
        clock: &str,
        sev: char,
        file_line: &str,
        msg: &str,
        pairs: &[(&str, &str)],
    ) -> &mut Self {
        self.entries
            .extend(klog_entries(at(clock), sev, file_line, msg, pairs));
        self
    }

    /// Any other entry.
    pub fn push(&mut self, e: Entry) -> &mut Self {
        self.entries.push(e);
        self
    }

    /// Builds the journal file and its registries.conf; returns the scan arguments for them.
    pub fn prepare(&self) -> Vec<String> {
        let journal = write_journal(&self.dir, "scenario", &self.entries);
        let conf = self.dir.join("registries.conf");
        std::fs::write(&conf, &self.registries_conf).unwrap();
        let dropins = self.dir.join("registries.conf.d");
        std::fs::create_dir_all(&dropins).unwrap();
        vec![
            "--journal-file".into(),
            journal.display().to_string(),
            "--registries-conf".into(),
            conf.display().to_string(),
            "--registries-conf-d".into(),
            dropins.display().to_string(),
        ]
    }

    /// `scan -o jsonl` over the scenario: the records.
    pub fn scan(&self) -> Vec<serde_json::Value> {
        let mut args = self.prepare();
        args.extend(["-o".to_owned(), "jsonl".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        scan_jsonl(&args)
    }
}
