//! The one reader of `-f` / `--desired` object paths (render, plan, wait, the collector): files
//! as given, directories expanded to their `*.yaml`/`*.yml`/`*.json` files in byte order of
//! name (no recursion), `-` for standard input. Reading only the files the caller names.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{InputSet, ParseOptions};

/// A path that could not be read, or a set of paths with nothing in them.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot list {path}: {error}")]
    List { path: String, error: std::io::Error },
    #[error("no objects found in {0}")]
    Empty(String),
}

/// The files `paths` stand for, in the order they are read.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|error| ReadError::Read {
            path: p.display().to_string(),
            error,
        })?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let list_error = |error| ReadError::List {
            path: p.display().to_string(),
            error,
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(p).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            let path = entry.path();
            let is_input = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            );
            if is_input && entry.file_type().is_ok_and(|t| !t.is_dir()) {
                found.push(path);
            }
        }
        found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        out.extend(found);
    }
    Ok(out)
}

/// Reads every object of `paths` into one [`InputSet`]; `stdin` serves `-`. Objects the API
/// server would reject are in the set's `errors`, for the caller to report as it must. Paths
/// that hold no document at all are an error: a typo must not render as "no mirrors".
pub fn read_paths(
    paths: &[PathBuf],
    opts: &ParseOptions,
    stdin: &mut dyn Read,
) -> Result<InputSet, ReadError> {
    let mut set = InputSet::default();
    let mut any_text = false;
    for file in expand(paths)? {
        let (text, origin) = if file.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|error| ReadError::Read {
                    path: "standard input".into(),
                    error,
                })?;
            (text, "<stdin>".to_string())
        } else {
            let text = read_text(&file)?;
            (text, file.display().to_string())
        };
        any_text |= has_document(&text);
        set.add_text(&text, &origin, opts);
    }
    if !any_text {
        let shown = paths
            .iter()
            .map(|p| match p.as_os_str() == "-" {
                true => "standard input".to_string(),
                false => p.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ReadError::Empty(shown));
    }
    Ok(set)
}

fn read_text(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|error| ReadError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// Anything but blank lines, comments and document markers.
fn has_document(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !(t.is_empty() || t.starts_with('#') || t == "---" || t == "...")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_an_error_naming_it() {
        let err = read_paths(
            &[PathBuf::from("-")],
            &ParseOptions::default(),
            &mut "# nothing\n---\n".as_bytes(),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no objects found in standard input"));
    }

    #[test]
    fn stdin_objects_are_read() {
        let idms = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: m\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.example.com/ns]\n";
        let set = read_paths(
            &[PathBuf::from("-")],
            &ParseOptions::default(),
            &mut idms.as_bytes(),
        )
        .map_err(|e| e.to_string());
        assert!(
            matches!(&set, Ok(s) if s.errors.is_empty() && s.skipped.is_empty()),
            "{:?}",
            set.map(|s| s.errors)
        );
    }
}
