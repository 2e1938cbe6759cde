//! What the Machine Config Daemon left on the node: the MachineConfig it applied last
//! (`/etc/machine-config-daemon/currentconfig`) and its force file.

use std::io::Read;

use mirrorscope_core::machineconfig::parse_current_config;
use mirrorscope_core::report::MachineConfigState;

use super::hostfiles::{main_bytes, HostRoot, MAIN};

pub const CURRENT_CONFIG: &str = "/etc/machine-config-daemon/currentconfig";
pub const FORCE_FILE: &str = "/run/machine-config-daemon-force";
/// A rendered MachineConfig carries every file of the node's configuration: a few MiB at most.
const MAX_CURRENT_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

pub fn read_machine_config(root: &HostRoot) -> MachineConfigState {
    let force_file = root.host(FORCE_FILE).exists();
    let mut state = MachineConfigState {
        current_config: None,
        registries_conf: None,
        force_file,
        error: None,
    };
    let bytes = match std::fs::File::open(root.host(CURRENT_CONFIG)) {
        // Not an OpenShift node (or the MCD never finished an update): nothing to compare.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return state,
        Err(e) => {
            state.error = Some(format!("open {CURRENT_CONFIG}: {e}"));
            return state;
        }
        Ok(f) => {
            let mut buf = Vec::new();
            match f.take(MAX_CURRENT_CONFIG_BYTES + 1).read_to_end(&mut buf) {
                Ok(_) if buf.len() as u64 > MAX_CURRENT_CONFIG_BYTES => {
                    state.error = Some(format!(
                        "read {CURRENT_CONFIG}: file is larger than {MAX_CURRENT_CONFIG_BYTES} bytes; not read"
                    ));
                    return state;
                }
                Ok(_) => buf,
                Err(e) => {
                    state.error = Some(format!("read {CURRENT_CONFIG}: {e}"));
                    return state;
                }
            }
        }
    };
    let mc = match parse_current_config(&bytes) {
        Ok(mc) => mc,
        Err(e) => {
            state.error = Some(format!("{CURRENT_CONFIG}: {e}"));
            return state;
        }
    };
    state.current_config = Some(mc.name.clone());
    match main_bytes(root) {
        Ok(on_disk) => state.registries_conf = Some(mc.compare(MAIN, on_disk.as_deref())),
        Err(e) => state.error = Some(e),
    }
    state
}
