//! A node's MachineConfigNode (`machineconfiguration.openshift.io/v1` from OpenShift 4.19,
//! `v1alpha1` as a tech preview in 4.16–4.18): the MCD's own account of an update, phase by
//! phase. Where it exists it is the authority on whether the node runs its desired config.

use serde::{Deserialize, Serialize};

/// What the rollout needs of a MachineConfigNode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct McnState {
    /// `spec.configVersion.desired`.
    pub desired: Option<String>,
    /// `status.configVersion.current`.
    pub current: Option<String>,
    /// The `Updated` condition: `Some(true)` when True.
    pub updated: Option<bool>,
    /// `NodeDegraded=True`: its message.
    pub degraded: Option<String>,
    /// Where the update stands, in words (`updated`, `draining`, `rebooting`, `reloading crio`, ...).
    pub phase: String,
}

/// The update's phases in the order the MCD runs them, with how each reads while it runs.
const PHASES: [(&str, &str); 9] = [
    ("UpdatePrepared", "preparing the update"),
    ("Cordoned", "cordoning"),
    ("Drained", "draining"),
    ("AppliedFilesAndOS", "writing files"),
    ("UpdateExecuted", "applying the update"),
    ("RebootedNode", "rebooting"),
    ("UpdatePostActionComplete", "running post-update actions"),
    ("Uncordoned", "uncordoning"),
    ("Resumed", "resuming"),
];

impl McnState {
    /// Reads a MachineConfigNode in the API's shape; `None` when it is not one.
    pub fn from_object(obj: &serde_json::Value) -> Option<McnState> {
        if obj["kind"]
            .as_str()
            .is_some_and(|k| k != "MachineConfigNode")
        {
            return None;
        }
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let conditions = obj["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let condition = |t: &str| conditions.iter().find(|c| c["type"] == t);
        let is = |t: &str, s: &str| condition(t).is_some_and(|c| c["status"] == s);
        let degraded = condition("NodeDegraded")
            .filter(|c| c["status"] == "True")
            .map(|c| {
                text(&c["message"])
                    .filter(|m| !m.is_empty())
                    .or_else(|| text(&c["reason"]))
                    .unwrap_or_else(|| "no message".into())
            });
        let updated = condition("Updated").map(|c| c["status"] == "True");
        let desired = text(&obj["spec"]["configVersion"]["desired"]);
        let current = text(&obj["status"]["configVersion"]["current"]);
        let phase = if let Some(m) = &degraded {
            format!("degraded: {m}")
        } else if updated == Some(true) && current.is_some() && current == desired {
            "updated".to_string()
        } else if let Some((t, words)) = PHASES.iter().find(|(t, _)| is(t, "Unknown")) {
            // Post-update actions on a mirror change are a CRI-O reload; say so when the MCD does.
            let message = condition(t)
                .and_then(|c| text(&c["message"]))
                .unwrap_or_default();
            if *t == "UpdatePostActionComplete" && message.to_ascii_lowercase().contains("crio") {
                "reloading crio".to_string()
            } else {
                words.to_string()
            }
        } else if current != desired {
            "update pending".to_string()
        } else {
            "updating".to_string()
        };
        Some(McnState {
            desired,
            current,
            updated,
            degraded,
            phase,
        })
    }

    /// The MCD says the node runs its desired config.
    pub fn landed(&self) -> bool {
        self.degraded.is_none()
            && self.updated == Some(true)
            && self.current.is_some()
            && self.current == self.desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mcn(current: &str, desired: &str, conditions: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "machineconfiguration.openshift.io/v1", "kind": "MachineConfigNode",
               "metadata": {"name": "w1"},
               "spec": {"node": {"name": "w1"}, "pool": {"name": "worker"}, "configVersion": {"desired": desired}},
               "status": {"observedGeneration": 4, "configVersion": {"current": current, "desired": desired},
                          "conditions": conditions}})
    }

    #[test]
    fn phases() {
        let done = McnState::from_object(&mcn("r-new", "r-new", json!([
            {"type": "Updated", "status": "True", "reason": "Updated", "message": "Node worker-1 Updated"},
            {"type": "NodeDegraded", "status": "False", "reason": "", "message": ""}])))
        .unwrap();
        assert!(done.landed());
        assert_eq!(done.phase, "updated");
        let draining = McnState::from_object(&mcn("r-old", "r-new", json!([
            {"type": "Updated", "status": "False"},
            {"type": "UpdatePrepared", "status": "True"},
            {"type": "Drained", "status": "Unknown", "message": "Draining node. The drain will not be complete until desired drainer drain-worker-1 matches current drainer"}])))
        .unwrap();
        assert!(!draining.landed());
        assert_eq!(draining.phase, "draining");
        let crio = McnState::from_object(&mcn("r-old", "r-new", json!([
            {"type": "Updated", "status": "False"},
            {"type": "Drained", "status": "True", "message": "Node Drain Not required for this update."},
            {"type": "UpdatePostActionComplete", "status": "Unknown", "message": "Node has reloaded CRIO"}])))
        .unwrap();
        assert_eq!(crio.phase, "reloading crio");
        let degraded = McnState::from_object(&mcn("r-old", "r-new", json!([
            {"type": "NodeDegraded", "status": "True", "reason": "UpdateFailed", "message": "unexpected on-disk state"}])))
        .unwrap();
        assert_eq!(
            degraded.degraded.as_deref(),
            Some("unexpected on-disk state")
        );
        assert_eq!(degraded.phase, "degraded: unexpected on-disk state");
        // Updated=True for the previous config while a new one is desired is not landed.
        let lagging = McnState::from_object(&mcn(
            "r-old",
            "r-new",
            json!([{"type": "Updated", "status": "True"}]),
        ))
        .unwrap();
        assert!(!lagging.landed());
        assert_eq!(lagging.phase, "update pending");
        assert!(McnState::from_object(&json!({"kind": "Node"})).is_none());
    }
}
