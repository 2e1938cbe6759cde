//! Checkpoints: where to resume reading, saved atomically so a crash never leaves a torn file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::JournalError;
use crate::readfile::{read_regular, Found};
use mirrorscope_core::fsutil::write_atomic;

/// A cursor and the ids of a few open pulls: kilobytes; far past it, not a checkpoint.
const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// A resume point: reading restarts after `cursor`; records in `emitted` were already reported
/// although entries they came from lie after `cursor` (pulls still open at the checkpoint are
/// re-read from their start, and the ones that closed meanwhile must not be reported twice).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub cursor: Option<String>,
    #[serde(default)]
    pub emitted: Vec<String>,
    /// The last entry read when the checkpoint was saved, when that is after `cursor`: a partial
    /// record (its pull opened before `cursor`) that closes up to there was reported whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_to: Option<String>,
}

/// The checkpoint file.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointFile { path: path.into() }
    }

    /// The saved checkpoint, or `None` when none was saved yet.
    pub fn load(&self) -> Result<Option<Checkpoint>, JournalError> {
        let node = self.path.display().to_string();
        let text = match read_regular(&self.path, &node, MAX_CHECKPOINT_BYTES).0 {
            Ok(Found::Bytes(t)) => t,
            Ok(Found::Missing) => return Ok(None),
            Err(e) => return Err(self.err(format!("not loaded: {e}"))),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| self.err(format!("not a mirrorscope checkpoint: {e}")))
    }

    /// Replaces the checkpoint atomically and durably ([`write_atomic`]).
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), JournalError> {
        let mut body = serde_json::to_vec(checkpoint).map_err(|e| self.err(e.to_string()))?;
        body.push(b'\n');
        write_atomic(&self.path, &body).map_err(|e| self.err(format!("saving: {e}")))
    }

    fn err(&self, message: String) -> JournalError {
        JournalError::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> mirrorscope_e2e::collector::TempDir {
        mirrorscope_e2e::collector::TempDir::new(&format!("ckpt-{name}"))
    }

    #[test]
    fn missing_file_is_no_checkpoint_and_save_round_trips() {
        let d = scratch("rt");
        let f = CheckpointFile::new(d.join("cursor.json"));
        assert_eq!(f.load().unwrap(), None);
        let c = Checkpoint {
            cursor: Some("s=1;i=2".into()),
            emitted: vec!["a".into()],
            read_to: None,
        };
        f.save(&c).unwrap();
        assert_eq!(f.load().unwrap(), Some(c.clone()));
        let c2 = Checkpoint {
            cursor: Some("s=1;i=3".into()),
            emitted: vec![],
            read_to: Some("s=1;i=4".into()),
        };
        f.save(&c2).unwrap();
        assert_eq!(f.load().unwrap(), Some(c2));
        // No temp file is left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn garbage_is_a_clear_error_naming_the_file() {
        let d = scratch("bad");
        let p = d.join("cursor.json");
        fs::write(&p, "not json").unwrap();
        let e = CheckpointFile::new(&p).load().unwrap_err().to_string();
        assert!(
            e.contains("cursor.json") && e.contains("not a mirrorscope checkpoint"),
            "{e}"
        );
    }
}
