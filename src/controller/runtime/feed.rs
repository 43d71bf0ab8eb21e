//! Reconcile requests on their way to kube's scheduler, handed over only as fast as the
//! controller starts them.
//!
//! kube's scheduler keeps every request it is given in three tables (a timer wheel, a map of
//! scheduled requests and a set of pending ones), about 700 bytes each, and never shrinks them.
//! Given 10,000 requests at once (a start-up, a resync), it holds 10,000 until they have run: the
//! largest cost after the cache itself (`benches/scale.rs`). So requests wait here, as one
//! shared `namespace/name` string each, and at most `window` (twice the concurrency) wait in
//! kube's scheduler. A settled resource is not requeued for the resync either: every resync
//! period, `sweep` puts every cached resource back in line.
//!
//! The line keeps each resource once and in arrival order: a request for a resource already
//! waiting, or handed over and not started, is the same request (its reconcile reads the latest
//! copy). A resource that is running is handed over again, so a change made meanwhile is
//! reconciled after it.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::Stream;
use kube::{ResourceExt, runtime::reflector::ObjectRef};
use tokio::time::Instant;

use super::cached::Cached;

/// A request handed over that has not started after this long is taken for lost (its resource
/// went while a watch was being restarted, so no delete was seen), and its place is freed.
const LOST_AFTER: Duration = Duration::from_secs(60);

/// The line of one controller (one watched scope).
pub(crate) struct Feed {
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    window: usize,
}

#[derive(Default)]
struct Inner {
    /// Waiting, oldest first. A key no longer in `queued` was withdrawn and is skipped.
    waiting: VecDeque<Arc<str>>,
    queued: HashSet<Arc<str>>,
    /// Handed to kube's scheduler, not started yet, and since when.
    handed: HashMap<Arc<str>, Instant>,
}

fn key(ns: &str, name: &str) -> Arc<str> {
    format!("{ns}/{name}").into()
}

fn line_key(c: &Cached) -> Arc<str> {
    key(&c.namespace().unwrap_or_default(), &c.name_any())
}

impl Feed {
    /// `concurrency` is the controller's (0: unbounded, as kube reads it).
    pub fn new(concurrency: u16) -> Self {
        let window = match concurrency {
            0 => usize::MAX,
            n => 2 * usize::from(n),
        };
        Self {
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a reconcile of `c`.
    pub fn push(&self, c: &Cached) {
        self.push_key(line_key(c));
    }

    fn push_key(&self, k: Arc<str>) {
        {
            let mut i = self.lock();
            if i.queued.contains(&k) || i.handed.contains_key(&k) {
                return;
            }
            i.queued.insert(k.clone());
            i.waiting.push_back(k);
        }
        self.wake.notify_one();
    }

    /// Puts every resource of `cache` in line: the resync.
    pub fn sweep<'a>(&self, cache: impl IntoIterator<Item = &'a Arc<Cached>>) {
        for c in cache {
            self.push(c);
        }
    }

    /// `c`'s reconcile has started: its place in kube's scheduler is free.
    pub fn started(&self, c: &Cached) {
        let removed = self.lock().handed.remove(&line_key(c)).is_some();
        if removed {
            self.wake.notify_one();
        }
    }

    /// `c` was deleted: no reconcile of it will start (kube skips what its cache no longer has).
    pub fn gone(&self, c: &Cached) {
        let k = line_key(c);
        let mut i = self.lock();
        i.queued.remove(&k);
        if i.handed.remove(&k).is_some() {
            drop(i);
            self.wake.notify_one();
        }
    }

    /// The next request to hand over, if there is room for one.
    fn take(&self) -> Option<ObjectRef<Cached>> {
        let mut i = self.lock();
        let now = Instant::now();
        if i.handed.len() >= self.window {
            i.handed.retain(|_, t| now.duration_since(*t) < LOST_AFTER);
            if i.handed.len() >= self.window {
                return None;
            }
        }
        while let Some(k) = i.waiting.pop_front() {
            if !i.queued.remove(&k) {
                continue;
            }
            let (ns, name) = k.split_once('/').unwrap_or(("", &k));
            let r = ObjectRef::new(name).within(ns);
            i.handed.insert(k, now);
            return Some(r);
        }
        None
    }

    async fn next(&self) -> ObjectRef<Cached> {
        loop {
            if let Some(r) = self.take() {
                return r;
            }
            // A wake-up given before this wait is kept (`notify_one` stores one), so none is
            // lost between `take` and here. The timer frees places taken by lost requests.
            let _ = tokio::time::timeout(LOST_AFTER, self.wake.notified()).await;
        }
    }

    /// The requests, as kube's `Controller::reconcile_on` takes them.
    pub fn requests(self: Arc<Self>) -> impl Stream<Item = ObjectRef<Cached>> + Send + 'static {
        futures::stream::unfold(self, |feed| async move {
            let r = feed.next().await;
            Some((r, feed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};

    fn cached(name: &str) -> Arc<Cached> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"environment": "env-1", "provider": "AWS",
                    "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/x"}},
            }))
            .unwrap(),
        )
    }

    fn ready(s: &mut (impl Stream<Item = ObjectRef<Cached>> + Unpin)) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Some(r)) = s.next().now_or_never() {
            out.push(r.name);
        }
        out
    }

    #[tokio::test]
    async fn hands_over_at_most_the_window_in_order_each_resource_once() {
        let feed = Arc::new(Feed::new(1));
        let all: Vec<_> = ["a", "b", "c", "d"].map(cached).into();
        feed.sweep(&all);
        feed.push(&all[0]);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a", "b"]);
        // Asked again while handed over and not started: the same request.
        feed.push(&all[1]);
        assert_eq!(ready(&mut s), Vec::<String>::new());
        feed.started(&all[0]);
        assert_eq!(ready(&mut s), ["c"]);
        // Running, and asked again: handed over again, after those waiting.
        feed.push(&all[0]);
        feed.started(&all[1]);
        feed.started(&all[2]);
        assert_eq!(ready(&mut s), ["d", "a"]);
    }

    #[tokio::test]
    async fn a_deleted_resource_frees_its_place_and_leaves_the_line() {
        let feed = Arc::new(Feed::new(1));
        let all: Vec<_> = ["a", "b", "c", "d"].map(cached).into();
        feed.sweep(&all);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a", "b"]);
        feed.gone(&all[0]);
        feed.gone(&all[2]);
        assert_eq!(ready(&mut s), ["d"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_place_taken_by_a_lost_request_is_freed() {
        let feed = Arc::new(Feed::new(1));
        let all: Vec<_> = ["a", "b", "c"].map(cached).into();
        feed.sweep(&all);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a", "b"]);
        // Neither starts nor is seen deleted: after `LOST_AFTER`, the line moves on.
        let next = tokio::time::timeout(LOST_AFTER * 2, s.next()).await;
        assert_eq!(next.unwrap().unwrap().name, "c");
    }
}
