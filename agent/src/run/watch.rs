//! Directory watches on the node's configuration (inotify on a blocking thread).
//!
//! Directories, never file inodes: MCO and editors replace files by rename, which would leave a
//! file watch on a dead inode. A directory that does not exist yet is covered by a watch on its
//! nearest existing ancestor (below the host root); every event re-checks the watch set, so a
//! directory created, deleted or renamed later is picked up. Events only say "something
//! changed": the reader re-reads everything, which also covers events lost to a queue overflow.
//! In `/run` only the MCD's force file counts.

use std::path::{Path, PathBuf};

use inotify::{Inotify, WatchDescriptor, WatchMask};
use tokio::sync::mpsc;

use super::hostfiles::HostRoot;

/// Node directories whose entries matter.
pub const WATCHED: [&str; 6] = [
    "/etc/containers",
    "/etc/containers/registries.conf.d",
    // Signature policy files the MCO writes for ClusterImagePolicy / ImagePolicy.
    "/etc/containers/registries.d",
    "/etc/crio/policies",
    "/etc/machine-config-daemon",
    "/run",
];
/// In `/run` only this entry matters; other runtime files come and go all the time.
const RUN_ENTRY: &str = "machine-config-daemon-force";

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// Starts the watcher thread; each batch of events sends one ping (coalesced: a full channel
/// already holds a pending ping).
pub fn spawn(root: HostRoot, tx: mpsc::Sender<()>) -> std::io::Result<()> {
    let mut inotify = Inotify::init()?;
    let targets: Vec<PathBuf> = WATCHED.iter().map(|d| root.host(d)).collect();
    let run_dir = root.host("/run");
    let mut run_wd = ensure(&mut inotify, root.path(), &targets, &run_dir);
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let mut relevant = false;
                match inotify.read_events_blocking(&mut buf) {
                    Ok(events) => {
                        for e in events {
                            if e.mask.contains(inotify::EventMask::Q_OVERFLOW) {
                                tracing::warn!(
                                    "inotify queue overflow; re-reading the configuration"
                                );
                            }
                            let noise = run_wd.as_ref() == Some(&e.wd)
                                && e.name.is_some_and(|n| n != RUN_ENTRY);
                            relevant |= !noise;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!(
                            "reading inotify events: {e}; relying on periodic re-reads"
                        );
                        return;
                    }
                }
                if !relevant {
                    continue;
                }
                run_wd = ensure(&mut inotify, root.path(), &targets, &run_dir);
                match tx.try_send(()) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
                    Err(mpsc::error::TrySendError::Closed(())) => return,
                }
            }
        })?;
    Ok(())
}

/// Watches every target directory, or its nearest existing ancestor not above `root`.
/// Re-adding a watch on a watched inode is harmless (same descriptor, same mask). Returns the
/// descriptor of `run_dir` when it is watched itself.
fn ensure(
    inotify: &mut Inotify,
    root: &Path,
    targets: &[PathBuf],
    run_dir: &Path,
) -> Option<WatchDescriptor> {
    let mut run_wd = None;
    for t in targets {
        let mut dir: &Path = t;
        loop {
            match inotify.watches().add(dir, mask()) {
                Ok(wd) => {
                    if dir == run_dir {
                        run_wd = Some(wd);
                    }
                    break;
                }
                Err(e) => {
                    let missing = matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) || e.raw_os_error() == Some(libc::ENOTDIR);
                    if !missing {
                        tracing::warn!("cannot watch {}: {e}", dir.display());
                    }
                    match dir.parent() {
                        Some(p) if dir != root && p.starts_with(root) => dir = p,
                        _ => break,
                    }
                }
            }
        }
    }
    run_wd
}
