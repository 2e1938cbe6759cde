//! The agent's state file: the journal checkpoint and the unacknowledged pull records, written
//! together atomically. Taken at the same moment, they stay consistent across a kill -9: every
//! record reported before the checkpoint is in the outbox (or was acknowledged), and every later
//! one is read again from the journal after a restart.

use std::path::{Path, PathBuf};

use mirrorscope_core::journal::PullRecord;
use serde::{Deserialize, Serialize};

use crate::readfile::{read_regular, Found};
use mirrorscope_core::fsutil::write_atomic;

/// A state file holds the outbox: at most --outbox-size records of at most ~1 MiB each (fields
/// cut at 16 KiB) — far less in practice; past this it is not a state file of this agent.
const MAX_STATE_BYTES: u64 = 1024 * 1024 * 1024;
use crate::journal::cursor::Checkpoint;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub checkpoint: Checkpoint,
    #[serde(default)]
    pub outbox: Vec<PullRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("state file {path}: {message}")]
    File { path: PathBuf, message: String },
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> Self {
        StateFile {
            path: dir.join("agent-state.json"),
        }
    }

    fn err(&self, message: String) -> PersistError {
        PersistError::File {
            path: self.path.clone(),
            message,
        }
    }

    /// The saved state; a FIFO or device in its place is an error, not a read that blocks.
    pub fn load(&self) -> Result<Option<Saved>, PersistError> {
        let node = self.path.display().to_string();
        let text = match read_regular(&self.path, &node, MAX_STATE_BYTES).0 {
            Ok(Found::Bytes(t)) => t,
            Ok(Found::Missing) => return Ok(None),
            Err(e) => return Err(self.err(format!("not loaded: {e}"))),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| self.err(format!("not a mirrorscope agent state file: {e}")))
    }

    /// Atomic and durable ([`write_atomic`]): a crash leaves the old or the new file.
    pub fn save(&self, saved: &Saved) -> Result<(), PersistError> {
        let body = serde_json::to_vec(saved).map_err(|e| self.err(e.to_string()))?;
        write_atomic(&self.path, &body).map_err(|e| self.err(format!("saving: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage_is_an_error_naming_the_file() {
        let d = std::env::temp_dir().join(format!("ms-persist-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = StateFile::new(&d);
        assert_eq!(f.load().unwrap(), None);
        let s = Saved {
            checkpoint: Checkpoint {
                cursor: Some("s=1".into()),
                emitted: vec!["c".into()],
                read_to: None,
            },
            outbox: Vec::new(),
        };
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), Some(s));
        std::fs::write(d.join("agent-state.json"), "{").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("agent-state.json"), "{e}");
        // A FIFO in its place: an error at once (the read used to block forever).
        std::fs::remove_file(d.join("agent-state.json")).unwrap();
        crate::readfile::tests::mkfifo(&d.join("agent-state.json"));
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
