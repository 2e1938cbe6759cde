//! A look at journal file headers before sd-journal opens them: sd-journal silently skips
//! files it cannot use (not a journal, cut short before its header ends), so a scan of such a
//! file would print nothing and succeed.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The first bytes of every journal file.
const SIGNATURE: &[u8; 8] = b"LPKSHHRH";
/// Offsets of `header_size` and `arena_size` (little-endian u64) in the file header.
const HEADER_SIZE_AT: usize = 88;
const HEADER_READ: usize = 104;

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Why sd-journal would skip this file, or `None` when it looks like a whole journal file
/// (sd-journal refuses a file shorter than its header and arena sizes say, too).
pub fn check_file(path: &Path) -> Option<String> {
    let name = path.display();
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(format!("{name}: {e}")),
    };
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Some(format!("{name}: not a regular file")),
        Err(e) => return Some(format!("{name}: {e}")),
    };
    let mut head = Vec::with_capacity(HEADER_READ);
    if let Err(e) = (&mut f).take(HEADER_READ as u64).read_to_end(&mut head) {
        return Some(format!("{name}: {e}"));
    }
    if head.len() < SIGNATURE.len() || &head[..SIGNATURE.len()] != SIGNATURE {
        return Some(format!(
            "{name}: not a journal file (no journal file signature)"
        ));
    }
    if head.len() < HEADER_READ {
        return Some(format!(
            "{name}: journal file cut short inside its header ({len} bytes)"
        ));
    }
    let header = le64(&head, HEADER_SIZE_AT);
    let arena = le64(&head, HEADER_SIZE_AT + 8);
    if len < header {
        return Some(format!(
            "{name}: journal file cut short inside its header ({len} of {header} bytes)"
        ));
    }
    let whole = header.saturating_add(arena);
    if len < whole {
        return Some(format!(
            "{name}: journal file truncated ({len} of {whole} bytes)"
        ));
    }
    None
}

/// The journal files directly in `dir` and in its machine-id subdirectories, as sd-journal
/// reads them.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && depth == 0 {
                dirs.push((p, 1));
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".journal") || n.ends_with(".journal~"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_short_files_are_unreadable() {
        let d = std::env::temp_dir().join(format!("ms-check-{}", std::process::id()));
        std::fs::create_dir_all(d.join("m")).unwrap();
        let garbage = d.join("m/system.journal");
        std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
        assert!(matches!(check_file(&garbage), Some(m) if m.contains("not a journal file")));
        let short = d.join("short.journal");
        std::fs::write(&short, b"LPKSHHRH\0\0").unwrap();
        assert!(matches!(check_file(&short), Some(m) if m.contains("cut short")));
        assert_eq!(files_in(&d), [d.join("m/system.journal"), short]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
