//! One kube-rs watcher per kind (list, then watch; relist on `410 Gone`; bookmarks; backoff),
//! turned into small updates for the assembler: what is kept of each object, never the object.

use futures_util::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::kinds::{keep, Kept, Kind};

/// Where a kind's watch stands (no status yet: the initial list has not completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindStatus {
    /// Listed, and watched since.
    Ready,
    /// The API server does not serve this kind (404: e.g. no ICSP on a new cluster).
    NotServed,
    /// The last attempt failed; the watcher retries with backoff.
    Failed(String),
}

/// A change to one kind, for the assembler.
#[derive(Debug)]
pub enum Update {
    /// The complete set after a (re)list.
    Reset(Kind, Vec<(String, Kept)>),
    Apply(Kind, String, Box<Kept>),
    Delete(Kind, String),
    Status(Kind, KindStatus),
}

/// Watches `kind` until `cancel` fires or the assembler goes away.
pub async fn watch_kind(
    client: kube::Client,
    kind: Kind,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &kind.resource());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<Vec<(String, Kept)>> = None;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        let update = match event {
            Ok(Event::Init) => {
                relist = Some(Vec::new());
                None
            }
            Ok(Event::InitApply(obj)) => {
                if let (Some(buf), Some((name, kept))) = (relist.as_mut(), kept(kind, &obj)) {
                    buf.push((name, kept));
                }
                None
            }
            Ok(Event::InitDone) => Some(Update::Reset(kind, relist.take().unwrap_or_default())),
            Ok(Event::Apply(obj)) => {
                kept(kind, &obj).map(|(n, k)| Update::Apply(kind, n, Box::new(k)))
            }
            Ok(Event::Delete(obj)) => key(&obj).map(|n| Update::Delete(kind, n)),
            Err(e) => Some(Update::Status(kind, failure(kind, &e))),
        };
        let ready = matches!(update, Some(Update::Reset(..)));
        if let Some(u) = update {
            if tx.send(u).await.is_err() {
                return;
            }
        }
        if ready
            && tx
                .send(Update::Status(kind, KindStatus::Ready))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// `namespace/name` for a namespaced object (names repeat across namespaces), else `name`.
fn key(obj: &DynamicObject) -> Option<String> {
    let name = obj.metadata.name.clone()?;
    Some(match &obj.metadata.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    })
}

fn kept(kind: Kind, obj: &DynamicObject) -> Option<(String, Kept)> {
    let name = key(obj)?;
    let value = serde_json::to_value(obj).ok()?;
    Some((name, keep(kind, &value)))
}

/// A watch error in words; a kind the server does not serve is not an error.
fn failure(kind: Kind, e: &watcher::Error) -> KindStatus {
    let code = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    };
    match code {
        Some(404) => KindStatus::NotServed,
        Some(403) if kind.optional() => KindStatus::NotServed,
        _ => {
            let message = format!("watching {}: {}", kind.as_str(), chain(e));
            tracing::warn!("{message}");
            KindStatus::Failed(message)
        }
    }
}

/// An error and its causes, `a: b: c` (kube-rs puts the TLS or connect reason in a source).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
