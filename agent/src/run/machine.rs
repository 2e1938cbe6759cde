//! What the Machine Config Daemon left on the node: the MachineConfig it applied last
//! (`/etc/machine-config-daemon/currentconfig`) and its force file.

use mirrorscope_core::machineconfig::{parse_current_config, CurrentConfig};
use mirrorscope_core::report::{MachineConfigState, PathMatch};

use super::hostfiles::{node_bytes, HostRoot, MAIN};
use crate::readfile::{read_regular, Found, ReadError};

pub const CURRENT_CONFIG: &str = "/etc/machine-config-daemon/currentconfig";
pub const FORCE_FILE: &str = "/run/machine-config-daemon-force";
/// A rendered MachineConfig carries every file of the node's configuration: a few MiB at most.
const MAX_CURRENT_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The MachineConfig state, and the file that could not be read, if any (for counting).
pub fn read_machine_config(root: &HostRoot) -> (MachineConfigState, Option<ReadError>) {
    let force_file = root.host(FORCE_FILE).exists();
    let mut state = MachineConfigState {
        current_config: None,
        registries_conf: None,
        signature_files: Vec::new(),
        force_file,
        error: None,
    };
    let bytes = match read_regular(
        &root.host(CURRENT_CONFIG),
        CURRENT_CONFIG,
        MAX_CURRENT_CONFIG_BYTES,
    )
    .0
    {
        // Not an OpenShift node (or the MCD never finished an update): nothing to compare.
        Ok(Found::Missing) => return (state, None),
        Ok(Found::Bytes(b)) => b,
        Err(e) => {
            state.error = Some(e.to_string());
            return (state, Some(e));
        }
    };
    let mc = match parse_current_config(&bytes) {
        Ok(mc) => mc,
        Err(e) => {
            state.error = Some(format!("{CURRENT_CONFIG}: {e}"));
            return (state, None);
        }
    };
    state.current_config = Some(mc.name.clone());
    match node_bytes(root, MAIN) {
        Ok(on_disk) => state.registries_conf = Some(mc.compare(MAIN, on_disk.as_deref())),
        Err(e) => state.error = Some(e.to_string()),
    }
    let (signature_files, failed) = compare_signature_files(root, &mc);
    state.signature_files = signature_files;
    if let Some(e) = &failed {
        state.error.get_or_insert_with(|| e.to_string());
    }
    (state, failed)
}

/// The MachineConfig's signature policy files compared with the node's, and the first that
/// could not be read (left out; it becomes the state's error, which holds the node back).
fn compare_signature_files(
    root: &HostRoot,
    mc: &CurrentConfig,
) -> (Vec<PathMatch>, Option<ReadError>) {
    let mut out = Vec::new();
    let mut failed = None;
    for path in mc.signature_policy_paths() {
        let on_disk = match node_bytes(root, path) {
            Ok(b) => b,
            Err(e) => {
                failed.get_or_insert(e);
                continue;
            }
        };
        out.push(PathMatch {
            path: path.to_owned(),
            result: mc.compare(path, on_disk.as_deref()),
        });
    }
    (out, failed)
}
