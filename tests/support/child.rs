//! A spawned process that cannot outlive its test: dropped (the test ended, or panicked), it is
//! asked to stop with SIGTERM (run-local and the agent stop their own children on it), then
//! killed if it has not exited within 5 s.

use std::process::Child;
use std::time::{Duration, Instant};

pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// The child, no longer guarded (for `wait_with_output`, which consumes it).
    pub fn into_inner(mut self) -> Child {
        self.0
            .take()
            .expect("a guard holds its child until into_inner")
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0
            .as_ref()
            .expect("a guard holds its child until into_inner")
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("a guard holds its child until into_inner")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(child) = self.0.as_mut() else {
            return;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        // Not `journal::signal`: it asserts, and a panic while unwinding aborts the test binary.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
