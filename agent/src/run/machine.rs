//! What the Machine Config Daemon left on the node: the MachineConfig it applied last
//! (`/etc/machine-config-daemon/currentconfig`) and its force file.

use mirrorscope_core::machineconfig::parse_current_config;
use mirrorscope_core::report::MachineConfigState;

use super::hostfiles::{main_bytes, HostRoot, MAIN};
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
    match main_bytes(root) {
        Ok(on_disk) => state.registries_conf = Some(mc.compare(MAIN, on_disk.as_deref())),
        Err(e) => state.error = Some(e.to_string()),
    }
    (state, None)
}
