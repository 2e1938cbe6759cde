//! Kubelet klog lines about image pulls (kubelet `pkg/kubelet/images/image_manager.go`), at verbosity 2 and 3. Matching is on
//! the quoted message, never on `file.go:LINE`, which changes between releases.

use super::gostr::{read_quoted, unquote};
use std::borrow::Cow;

use super::klog::{message_offset, parse_klog, KlogLine};
use super::GrammarError;

/// A kubelet line that matters for pull records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletEvent {
    /// K1 `"PullImage from image service failed" err="rpc error: …" image="X"`: the pull of X
    /// failed; `error` is the whole `err` value.
    PullFailed { image: String, error: String },
    /// K2 `"Failed to pull image" err=… image="X"` (no rpc prefix; no-credentials path only).
    FailedToPull { image: String, error: String },
    /// K3 `"Unhandled Error" err="… start failed in pod NAME_NS(UID): ErrImagePull: MSG"`.
    StartFailed {
        pod: Option<String>,
        reason: String,
        error: String,
    },
    /// K4 `"Error syncing pod, skipping" err="failed to \"StartContainer\" for \"C\" with R: \"MSG\"" pod="ns/name"`.
    SyncFailed {
        pod: Option<String>,
        container: Option<String>,
        reason: String,
        error: String,
    },
    /// K5–K8 (v≥3) `"Event occurred" object="ns/pod" … reason=R message="…"` for pull reasons
    /// (`Pulling`, `Pulled`, `Failed`, `BackOff`); `image` is the first quoted name in the message.
    PodEvent {
        pod: Option<String>,
        reason: String,
        image: Option<String>,
        message: String,
    },
}

const MESSAGES: &[&str] = &[
    "\"PullImage from image service failed\"",
    "\"Failed to pull image\"",
    "\"Unhandled Error\"",
    "\"Error syncing pod, skipping\"",
    "\"Event occurred\"",
];

const EVENT_REASONS: &[&str] = &["Pulling\"", "Pulled\"", "Failed\"", "BackOff\""];

/// Cheap pre-check on a raw klog MESSAGE (header included): false means certainly not one of
/// ours. Bounded work, no allocation.
pub fn may_be_relevant(line: &str) -> bool {
    let Some(off) = message_offset(line) else {
        return false;
    };
    let body = &line[off..];
    let Some(which) = MESSAGES.iter().position(|m| body.starts_with(m)) else {
        return false;
    };
    match which {
        // Sync and start errors have many causes; only pull failures matter. A multi-entry
        // value only shows its cause in later entries, so those are kept.
        2 | 3 => {
            super::klog::opens_multiline(body) || PULL_REASONS.iter().any(|r| body.contains(r))
        }
        // Events are frequent at v≥3; only the pull reasons matter.
        4 => body.find(" reason=\"").is_some_and(|at| {
            let r = &body[at + 9..];
            EVENT_REASONS.iter().any(|p| r.starts_with(p))
        }),
        _ => true,
    }
}

const PULL_REASONS: &[&str] = &[
    "ErrImagePull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];

/// Parses a (re-assembled) kubelet line. `Ok(None)` for lines that are not pull-related.
pub fn parse_kubelet_line(line: &str) -> Result<Option<KubeletEvent>, GrammarError> {
    if is_json(line) {
        if !json_may_be_relevant(line) {
            return Ok(None);
        }
        let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|_| GrammarError::new("kubelet JSON line is not a JSON object"))?;
        return event_of(&klog_of_json(&fields)?);
    }
    if !may_be_relevant(line) {
        return Ok(None);
    }
    event_of(&parse_klog(line)?)
}

/// `--logging-format=json` (component-base's zap encoder): `{"ts":…,"caller":…,"msg":…,"v":N,
/// key: value…}`; the encoder always writes `ts` first.
pub fn is_json(line: &str) -> bool {
    line.starts_with("{\"ts\":")
}

/// [`may_be_relevant`] for a JSON line: one of our messages, and for sync errors and events the
/// pull reasons only.
pub fn json_may_be_relevant(line: &str) -> bool {
    let Some(which) = MESSAGES.iter().position(|m| line.contains(m)) else {
        return false;
    };
    match which {
        2 | 3 => PULL_REASONS.iter().any(|r| line.contains(r)),
        4 => line.find("\"reason\":\"").is_some_and(|at| {
            let r = &line[at + 10..];
            EVENT_REASONS.iter().any(|p| r.starts_with(p))
        }),
        _ => true,
    }
}

/// A JSON line as the klog line the text format would have written: an object reference
/// (`klog.KObj`, `{"name":…,"namespace":…}`) becomes `namespace/name`, as in text.
fn klog_of_json(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<KlogLine<'_>, GrammarError> {
    use serde_json::Value;
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::String(_) => None,
            Value::Object(o) => match (o.get("namespace"), o.get("name")) {
                (Some(Value::String(ns)), Some(Value::String(n))) if !ns.is_empty() => {
                    Some(format!("{ns}/{n}"))
                }
                (_, Some(Value::String(n))) => Some(n.clone()),
                _ => Some(v.to_string()),
            },
            other => Some(other.to_string()),
        }
    };
    let Some(Value::String(msg)) = fields.get("msg") else {
        return Err(GrammarError::new("kubelet JSON line without msg"));
    };
    let pairs = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ts" | "caller" | "msg" | "v"))
        .map(|(k, v)| {
            let value = match (v, text(v)) {
                (Value::String(s), _) => Cow::Borrowed(s.as_str()),
                (_, Some(t)) => Cow::Owned(t),
                (_, None) => Cow::Borrowed(""),
            };
            (k.as_str(), value)
        })
        .collect();
    Ok(KlogLine {
        severity: if fields.contains_key("err") { 'E' } else { 'I' },
        time: "",
        pid: 0,
        source: fields.get("caller").and_then(Value::as_str).unwrap_or(""),
        msg: Cow::Borrowed(msg),
        pairs,
    })
}

fn event_of(k: &KlogLine<'_>) -> Result<Option<KubeletEvent>, GrammarError> {
    let owned = |key: &str| k.value(key).map(str::to_owned);
    let ev = match k.msg.as_ref() {
        "PullImage from image service failed" | "Failed to pull image" => {
            let (Some(image), Some(error)) = (owned("image"), owned("err")) else {
                return Err(GrammarError::new(
                    "pull failure line without image= or err=",
                ));
            };
            if k.msg == "Failed to pull image" {
                KubeletEvent::FailedToPull { image, error }
            } else {
                KubeletEvent::PullFailed { image, error }
            }
        }
        "Unhandled Error" => {
            let Some(err) = k.value("err") else {
                return Ok(None);
            };
            let Some((_, tail)) = err.split_once(" start failed in pod ") else {
                return Ok(None);
            };
            let Some((pod_part, after)) = tail.split_once("): ") else {
                return Ok(None);
            };
            let pod = pod_part
                .split_once('(')
                .map(|(n, _)| n)
                .and_then(|n| n.rsplit_once('_'))
                .map(|(name, ns)| format!("{ns}/{name}"));
            let (reason, error) = after.split_once(": ").unwrap_or((after, ""));
            if !is_pull_reason(reason) {
                return Ok(None);
            }
            KubeletEvent::StartFailed {
                pod,
                reason: reason.to_owned(),
                error: error.to_owned(),
            }
        }
        "Error syncing pod, skipping" => {
            let Some(err) = k.value("err") else {
                return Ok(None);
            };
            let container = err
                .split_once(" for \"")
                .and_then(|(_, r)| r.split_once("\" with "))
                .map(|(c, _)| c.to_owned());
            let Some((_, with)) = err.split_once("\" with ") else {
                return Ok(None);
            };
            let (reason, msg) = with.split_once(": ").unwrap_or((with, ""));
            if !is_pull_reason(reason) {
                return Ok(None);
            }
            let error = unquote(msg)
                .map(|c| c.into_owned())
                .unwrap_or_else(|_| msg.to_owned());
            KubeletEvent::SyncFailed {
                pod: owned("pod"),
                container,
                reason: reason.to_owned(),
                error,
            }
        }
        "Event occurred" => {
            let (Some(reason), Some(message)) = (owned("reason"), owned("message")) else {
                return Ok(None);
            };
            let image = message
                .find('"')
                .and_then(|at| read_quoted(&message[at..]).ok())
                .map(|(v, _)| v.into_owned());
            KubeletEvent::PodEvent {
                pod: owned("object"),
                reason,
                image,
                message,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(ev))
}

fn is_pull_reason(reason: &str) -> bool {
    PULL_REASONS.contains(&reason)
}

/// What a `Successfully pulled image "X" in D (W including waiting). Image size: N bytes.`
/// event message (K6) tells; older kubelets omit the waiting time and the size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledEvent {
    pub image: String,
    /// Go `time.Duration` text, e.g. `1.841s`, `412ms`, `1m3.25s`.
    pub duration: String,
    pub size_bytes: Option<u64>,
}

/// Parses the message of a kubelet `Pulled` event; `None` for other messages (e.g. `Container
/// image "X" already present on machine`).
pub fn parse_pulled_message(message: &str) -> Option<PulledEvent> {
    let rest = message.strip_prefix("Successfully pulled image ")?;
    let (image, used) = read_quoted(rest).ok()?;
    let after = rest.get(used..)?.strip_prefix(" in ")?;
    // Up to the first space; the oldest form ends the message with the duration and a period.
    let duration = after.split(' ').next()?.trim_end_matches('.').to_owned();
    if duration.is_empty() {
        return None;
    }
    let size_bytes = after
        .split_once("Image size: ")
        .and_then(|(_, s)| s.split(' ').next())
        .and_then(|n| n.parse().ok());
    Some(PulledEvent {
        image: image.into_owned(),
        duration,
        size_bytes,
    })
}

/// The CRI-O error inside a kubelet error text: strips `rpc error: code = X desc = `.
pub fn strip_rpc_prefix(error: &str) -> &str {
    match error.strip_prefix("rpc error: code = ") {
        Some(rest) => rest.split_once(" desc = ").map_or(rest, |(_, d)| d),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Option<KubeletEvent> {
        parse_kubelet_line(line).unwrap()
    }

    #[test]
    fn pull_failed_v2() {
        assert_eq!(
            ev(r#"E1121 07:05:01.000100    2213 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = reading manifest 1 in q.io/a: manifest unknown" image="q.io/a:1""#),
            Some(KubeletEvent::PullFailed {
                image: "q.io/a:1".into(),
                error: "rpc error: code = Unknown desc = reading manifest 1 in q.io/a: manifest unknown".into()
            })
        );
        assert!(matches!(
            ev(
                r#"E1121 07:05:01.000100    2213 kuberuntime_image.go:43] "Failed to pull image" err="x" image="q.io/a:1""#
            ),
            Some(KubeletEvent::FailedToPull { .. })
        ));
    }

    #[test]
    fn unhandled_and_sync_errors() {
        assert_eq!(
            ev(
                r#"E1121 07:05:01.000200    2213 kuberuntime_manager.go:1449] "Unhandled Error" err="container web start failed in pod web-7d9_shop(0c1f-22): ErrImagePull: boom: x" logger="UnhandledError""#
            ),
            Some(KubeletEvent::StartFailed {
                pod: Some("shop/web-7d9".into()),
                reason: "ErrImagePull".into(),
                error: "boom: x".into()
            })
        );
        assert_eq!(
            ev(
                r#"E1121 07:05:01.000300    2213 pod_workers.go:1324] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"web\" with ErrImagePull: \"boom \\\"q\\\"\"" pod="shop/web-7d9" podUID="0c1f-22""#
            ),
            Some(KubeletEvent::SyncFailed {
                pod: Some("shop/web-7d9".into()),
                container: Some("web".into()),
                reason: "ErrImagePull".into(),
                error: "boom \"q\"".into()
            })
        );
        assert_eq!(
            ev(
                r#"E1121 07:05:01.000300    2213 pod_workers.go:1324] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"web\" with ImagePullBackOff: \"Back-off\"" pod="shop/web-7d9" podUID=0c1f"#
            ),
            None
        );
    }

    #[test]
    fn events_v3() {
        assert_eq!(
            ev(
                r#"I1121 07:05:00.900000    2213 event.go:389] "Event occurred" object="shop/web-7d9" fieldPath="spec.containers{web}" kind="Pod" apiVersion="v1" type="Normal" reason="Pulling" message="Pulling image \"q.io/a:1\"""#
            ),
            Some(KubeletEvent::PodEvent {
                pod: Some("shop/web-7d9".into()),
                reason: "Pulling".into(),
                image: Some("q.io/a:1".into()),
                message: "Pulling image \"q.io/a:1\"".into()
            })
        );
        assert_eq!(
            ev(
                r#"I1121 07:05:00.900000    2213 event.go:389] "Event occurred" object="shop/web-7d9" kind="Pod" reason="Started" message="Started container web""#
            ),
            None
        );
    }

    #[test]
    fn pulled_messages() {
        assert_eq!(
            parse_pulled_message(
                "Successfully pulled image \"q.io/a:1\" in 1.841s (2.5s including waiting). Image size: 12345 bytes."
            ),
            Some(PulledEvent {
                image: "q.io/a:1".into(),
                duration: "1.841s".into(),
                size_bytes: Some(12345)
            })
        );
        assert_eq!(
            parse_pulled_message("Successfully pulled image \"q.io/a:1\" in 412ms"),
            Some(PulledEvent {
                image: "q.io/a:1".into(),
                duration: "412ms".into(),
                size_bytes: None
            })
        );
        assert_eq!(
            parse_pulled_message("Container image \"q.io/a:1\" already present on machine"),
            None
        );
        assert_eq!(parse_pulled_message("Successfully pulled image \"x"), None);
    }

    #[test]
    fn rpc_prefix() {
        assert_eq!(
            strip_rpc_prefix("rpc error: code = Unknown desc = a: b"),
            "a: b"
        );
        assert_eq!(strip_rpc_prefix("a: b"), "a: b");
    }

    #[test]
    fn json_lines_are_filtered_and_bad_ones_are_errors_not_panics() {
        let scheduled = r#"{"ts":1.5,"caller":"record/event.go:389","msg":"Event occurred","v":3,"object":{"name":"p","namespace":"n"},"reason":"Scheduled","message":"x"}"#;
        assert!(is_json(scheduled) && !json_may_be_relevant(scheduled));
        assert_eq!(parse_kubelet_line(scheduled), Ok(None));
        let failed = r#"{"ts":1.5,"caller":"log/log.go:32","msg":"PullImage from image service failed","image":"a/b:1","err":"rpc error: code = Unknown desc = boom"}"#;
        assert_eq!(
            parse_kubelet_line(failed),
            Ok(Some(KubeletEvent::PullFailed {
                image: "a/b:1".into(),
                error: "rpc error: code = Unknown desc = boom".into()
            }))
        );
        let cut = &failed[..failed.len() - 10];
        assert!(parse_kubelet_line(cut).is_err());
        let nested = format!(
            r#"{{"ts":1,"msg":"PullImage from image service failed","x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse_kubelet_line(&nested).is_err());
    }
}
