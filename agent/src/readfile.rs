//! Reading a node file without letting the node's file system stall the agent.
//!
//! A FIFO, socket or device where a configuration file should be would block `open()` or
//! `read()` forever (a FIFO without a writer) or stream without end (a character device). So
//! only regular files are read: `stat` first (which never blocks on those), then `open` with
//! `O_NONBLOCK` (a FIFO swapped in between opens at once instead of waiting for a writer) and
//! `fstat` on the open file to be sure it is still the regular file checked. Reads are capped.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// `open`, `stat` or `read` failed; Go-like `op PATH: reason`.
    #[error("{op} {node}: {reason}")]
    Io {
        op: &'static str,
        node: String,
        reason: String,
    },
    /// A FIFO, socket, device (anything but a regular file or a directory).
    #[error("open {node}: not a regular file ({kind}); not read")]
    NotRegular { node: String, kind: &'static str },
    #[error("read {node}: file is larger than {max} bytes; not read")]
    TooLarge { node: String, max: u64 },
}

impl ReadError {
    /// The `error_type` label this failure is counted under.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadError::Io { .. } => "io",
            ReadError::NotRegular { .. } => "not_regular_file",
            ReadError::TooLarge { .. } => "file_too_large",
        }
    }
}

/// What a read found.
#[derive(Debug)]
pub enum Found {
    Missing,
    Bytes(Vec<u8>),
}

fn kind_of(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Go's wording for the common errno values, so messages read as containers/image prints them.
pub fn go_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => {
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_lowercase()
        }
    }
}

fn io_err(op: &'static str, node: &str, e: &io::Error) -> ReadError {
    ReadError::Io {
        op,
        node: node.to_owned(),
        reason: go_reason(e),
    }
}

/// Reads the regular file `host` (named `node` in messages), at most `max` bytes. The metadata
/// is the file's (size, mtime) whenever it exists, even when it was not read.
pub fn read_regular(
    host: &Path,
    node: &str,
    max: u64,
) -> (Result<Found, ReadError>, Option<Metadata>) {
    let meta = match std::fs::metadata(host) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (Ok(Found::Missing), None),
        // Open anyway below: it gives the same error containers/image reports.
        Err(_) => return (open_and_read(host, node, max), None),
    };
    if !meta.is_file() && !meta.is_dir() {
        let kind = kind_of(&meta);
        return (
            Err(ReadError::NotRegular {
                node: node.to_owned(),
                kind,
            }),
            Some(meta),
        );
    }
    (open_and_read(host, node, max), Some(meta))
}

fn open_and_read(host: &Path, node: &str, max: u64) -> Result<Found, ReadError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(host)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io_err("open", node, &e)),
    };
    let meta = file.metadata().map_err(|e| io_err("stat", node, &e))?;
    if meta.is_dir() {
        // What read(2) says on a directory; containers/image reports that.
        return Err(io_err(
            "read",
            node,
            &io::Error::from_raw_os_error(libc::EISDIR),
        ));
    }
    if !meta.is_file() {
        // Replaced between the stat and the open.
        return Err(ReadError::NotRegular {
            node: node.to_owned(),
            kind: kind_of(&meta),
        });
    }
    read_capped(file, node, max)
}

fn read_capped(file: File, node: &str, max: u64) -> Result<Found, ReadError> {
    let mut buf = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io_err("read", node, &e))?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            node: node.to_owned(),
            max,
        });
    }
    Ok(Found::Bytes(buf))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ms-readfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub(crate) fn mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success(), "mkfifo {}", p.display());
    }

    /// Without the checks this test hangs in open() (a FIFO without a writer).
    #[test]
    fn fifos_sockets_and_devices_are_refused_without_opening_them() {
        let d = scratch("special");
        let fifo = d.join("registries.conf");
        mkfifo(&fifo);
        let (r, meta) = read_regular(&fifo, "/etc/containers/registries.conf", 10);
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "open /etc/containers/registries.conf: not a regular file (fifo); not read"
        );
        assert_eq!(e.kind(), "not_regular_file");
        assert!(meta.is_some());
        let sock = d.join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(
            read_regular(&sock, "/s", 10).0,
            Err(ReadError::NotRegular { kind: "socket", .. })
        ));
        // /dev/zero would stream forever.
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), "/z", 10).0,
            Err(ReadError::NotRegular {
                kind: "character device",
                ..
            })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn regular_files_missing_files_directories_and_the_cap() {
        let d = scratch("regular");
        let f = d.join("f");
        std::fs::write(&f, b"abc").unwrap();
        assert!(matches!(read_regular(&f, "/f", 3).0, Ok(Found::Bytes(b)) if b == b"abc"));
        assert_eq!(
            read_regular(&f, "/f", 2).0.unwrap_err().to_string(),
            "read /f: file is larger than 2 bytes; not read"
        );
        assert!(matches!(
            read_regular(&d.join("nope"), "/n", 2).0,
            Ok(Found::Missing)
        ));
        assert_eq!(
            read_regular(&d, "/d", 2).0.unwrap_err().to_string(),
            "read /d: is a directory"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
