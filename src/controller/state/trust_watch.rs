//! Which cloud operators' kinds are watched, so that a trust object's own report (ACK synced,
//! Crossplane ready, Config Connector ready) brings the resources that write to it back at once.
//! A kind is watched from the first reconcile that names it (no flag to keep in step with the
//! chart; a kind nobody uses costs nothing). The watch is metadata-only and keeps no objects: an
//! event is mapped through the owner index to the resources, which read the object themselves.

use parking_lot::Mutex;
use std::collections::HashSet;

use kube::core::{ApiResource, GroupVersionKind};
use tokio::sync::mpsc;

use crate::controller::decide::trust::TrustKind;

/// The kind's place in the API, for the dynamic `Api`s that write it and the watch that follows it.
pub(crate) fn api_resource(kind: TrustKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
        kind.plural(),
    )
}

pub struct TrustWatch {
    started: Mutex<HashSet<TrustKind>>,
    tx: mpsc::UnboundedSender<TrustKind>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<TrustKind>>>,
}

impl Default for TrustWatch {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            started: Mutex::default(),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl TrustWatch {
    /// Asks for `kind` to be watched (once; later asks are free).
    pub fn want(&self, kind: TrustKind) {
        if self.started.lock().insert(kind) {
            let _ = self.tx.send(kind);
        }
    }

    /// The kinds asked for, for the wiring to watch (taken once).
    pub fn take(&self) -> Option<mpsc::UnboundedReceiver<TrustKind>> {
        self.rx.lock().take()
    }
}
