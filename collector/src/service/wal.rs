//! The write-ahead log of pull records beside the state file (`<state-file>.wal`): with
//! `--state-file`, a report's pull records are appended and fsync'd before the push is
//! answered 200 (the agent then forgets them), replayed at start, and truncated each time the
//! state file is saved. Appends and saves are serialised by [`Wal::gate`], so a save never
//! truncates records its snapshot does not hold.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mirrorscope_core::journal::PullRecord;
use serde::{Deserialize, Serialize};

/// One line of the log: one report's pull records.
#[derive(Debug, Deserialize)]
pub struct Entry {
    pub node: String,
    pub pulls: Vec<PullRecord>,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    node: &'a str,
    pulls: &'a [PullRecord],
}

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("write-ahead log: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("write-ahead log: the writer task failed: {0}")]
    Task(String),
}

/// The open log.
pub struct Wal {
    /// Held across an append (or a save and the truncation after it).
    pub gate: tokio::sync::Mutex<()>,
    file: Arc<Mutex<std::fs::File>>,
    path: PathBuf,
}

/// `<state-file>.wal`.
pub fn path_for(state_file: &Path) -> PathBuf {
    let mut p = state_file.as_os_str().to_owned();
    p.push(".wal");
    PathBuf::from(p)
}

impl Wal {
    pub fn open(path: &Path) -> Result<Wal, WalError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| WalError::Io {
                path: path.display().to_string(),
                error,
            })?;
        Ok(Wal {
            gate: tokio::sync::Mutex::new(()),
            file: Arc::new(Mutex::new(file)),
            path: path.to_path_buf(),
        })
    }

    fn io(&self, error: std::io::Error) -> WalError {
        WalError::Io {
            path: self.path.display().to_string(),
            error,
        }
    }

    /// Appends one report's records and fsyncs; call with [`Wal::gate`] held.
    pub async fn append(&self, node: &str, pulls: &[PullRecord]) -> Result<(), WalError> {
        let mut line = serde_json::to_vec(&EntryRef { node, pulls })?;
        line.push(b'\n');
        let file = self.file.clone();
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&line)?;
            f.sync_data()
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io(e)),
            Err(e) => Err(WalError::Task(e.to_string())),
        }
    }

    /// Empties the log (its records are in the state file just saved); blocking, call with
    /// [`Wal::gate`] held.
    pub fn truncate_blocking(file: &Mutex<std::fs::File>) -> std::io::Result<()> {
        let f = file.lock().unwrap_or_else(|p| p.into_inner());
        f.set_len(0)?;
        f.sync_all()
    }

    /// The file, for [`Wal::truncate_blocking`] in the blocking pool.
    pub fn file(&self) -> Arc<Mutex<std::fs::File>> {
        self.file.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The entries of the log at `path` and how many lines could not be read (a torn last line
/// after a crash mid-append: its push was never answered, so the agent still has it).
pub fn read(path: &Path) -> Result<(Vec<Entry>, usize), WalError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(error) => {
            return Err(WalError::Io {
                path: path.display().to_string(),
                error,
            })
        }
    };
    let mut entries = Vec::new();
    let mut bad = 0;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.map_err(|error| WalError::Io {
            path: path.display().to_string(),
            error,
        })?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(e) => entries.push(e),
            Err(_) => bad += 1,
        }
    }
    Ok((entries, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_reads_back_and_truncates() {
        let dir = std::env::temp_dir().join(format!("ms-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = path_for(&dir.join("state.json"));
        let _ = std::fs::remove_file(&p);
        let wal = Wal::open(&p).unwrap();
        let rec: PullRecord = serde_json::from_value(serde_json::json!({
            "pull_id": "a", "image": "nginx", "started_at": "2026-11-21T08:00:00Z",
            "outcome": "pulled", "via_mirror": false, "fallback": false, "attempts": [],
        }))
        .unwrap();
        wal.append("n1", std::slice::from_ref(&rec)).await.unwrap();
        wal.append("n2", &[rec]).await.unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"node\":\"n3\",\"pul")
            .unwrap();
        let (entries, bad) = read(&p).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].node, "n2");
        assert_eq!(bad, 1);
        Wal::truncate_blocking(&wal.file()).unwrap();
        assert_eq!(read(&p).unwrap().0.len(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
