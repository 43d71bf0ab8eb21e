//! Reconcile requests on their way to kube's scheduler, handed over only as fast as the
//! controller starts them.
//!
//! kube's scheduler keeps every request it is given in three tables (a timer wheel, a map of
//! scheduled requests and a set of pending ones), about 700 bytes each, and never shrinks them.
//! Given 10,000 requests at once (a start-up, a resync), it holds 10,000 until they have run: the
//! largest cost after the cache itself (`benches/scale.rs`). So requests wait here, as one
//! shared `namespace/name` string each, and reconciles handed over or running stay within the
//! window: the adaptive limit of API calls in flight (`pim/adaptive.rs`, at most the
//! concurrency) and a few more. A reconcile in flight holds its resource, so the operator's
//! memory follows what the API needs, not the ceiling. A settled resource is not requeued for the resync either: every
//! resync period, `sweep` puts every cached resource back in line.
//!
//! The line is fair across namespaces: each namespace has its own, and they are served in turn,
//! one request each. A burst of a thousand in one team's namespace does not delay another
//! team's single change: it waits for at most one request per busy namespace, plus the few
//! already handed over. Within a namespace, the line keeps each resource once and in arrival
//! order: a request for a resource already waiting, or handed over and not started, is the same
//! request (its reconcile reads the latest copy). A resource that is running is handed over
//! again, so a change made meanwhile is reconciled after it.

use parking_lot::Mutex;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::Stream;
use kube::{ResourceExt, runtime::reflector::ObjectRef};
use tokio::time::Instant;

use super::cached::Cached;

/// A request handed over that has not started after this long is taken for lost (its resource
/// went while a watch was being restarted, so no delete was seen), and its place is freed.
const LOST_AFTER: Duration = Duration::from_secs(60);

/// Requests handed to kube's scheduler beyond the concurrency, so a place freed is taken at
/// once; few, since each one there is ahead of every namespace's next turn.
const SLACK: usize = 16;

/// The line of one controller (one watched scope).
pub(crate) struct Feed {
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    /// The ceiling (`--concurrency`; `usize::MAX` for none).
    ceiling: usize,
    /// The adaptive limit, read at each hand-over.
    limit: Box<dyn Fn() -> usize + Send + Sync>,
    /// Places beyond the limit (`SLACK`).
    slack: usize,
    /// How many requests the API-server gate allows handed over or running (`state/gate.rs`):
    /// all, one trial, or none.
    allowed: Box<dyn Fn() -> usize + Send + Sync>,
}

#[derive(Default)]
struct Inner {
    /// Waiting, per namespace, oldest first. A key no longer in `queued` was withdrawn and is
    /// skipped.
    waiting: HashMap<Arc<str>, VecDeque<Arc<str>>>,
    /// The namespaces with a line, in the order they are served next.
    turns: VecDeque<Arc<str>>,
    queued: HashSet<Arc<str>>,
    /// Handed to kube's scheduler, not started yet, and since when.
    handed: HashMap<Arc<str>, Instant>,
    /// Reconciles started and not finished.
    running: usize,
}

fn key(ns: &str, name: &str) -> Arc<str> {
    format!("{ns}/{name}").into()
}

fn line_key(c: &Cached) -> Arc<str> {
    key(&c.namespace().unwrap_or_default(), &c.name_any())
}

impl Feed {
    /// `concurrency` is the controller's (0: unbounded, as kube reads it); `limit` the adaptive
    /// limit of API calls in flight.
    pub fn new(concurrency: u16, limit: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        Self {
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            ceiling: match concurrency {
                0 => usize::MAX,
                n => usize::from(n),
            },
            limit: Box::new(limit),
            slack: SLACK,
            allowed: Box::new(|| usize::MAX),
        }
    }

    /// Keeps what is handed over or running within what `allowed` says (the API-server gate);
    /// `wake` when that grows.
    pub fn with_gate(mut self, allowed: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        self.allowed = Box::new(allowed);
        self
    }

    /// Looks at the line again (the gate opened).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// At most `window` requests handed over or running.
    #[cfg(test)]
    fn with_window(window: usize) -> Self {
        Self {
            slack: 0,
            ..Self::new(0, move || window)
        }
    }

    fn window(&self) -> usize {
        (self.limit)().min(self.ceiling).saturating_add(self.slack)
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Asks for a reconcile of `c`.
    pub fn push(&self, c: &Cached) {
        self.push_key(line_key(c));
    }

    fn push_key(&self, k: Arc<str>) {
        {
            let mut i = self.lock();
            let now = Instant::now();
            // Handed over and not started: the same request, unless it was handed so long ago
            // that it is taken for lost (then it is asked for again).
            let handed_lately = i
                .handed
                .get(&k)
                .is_some_and(|t| now.duration_since(*t) < LOST_AFTER);
            if i.queued.contains(&k) || handed_lately {
                return;
            }
            i.handed.remove(&k);
            i.queued.insert(k.clone());
            let ns: Arc<str> = k.split_once('/').map_or("", |(ns, _)| ns).into();
            match i.waiting.get_mut(&ns) {
                Some(line) => line.push_back(k),
                None => {
                    i.waiting.insert(ns.clone(), VecDeque::from([k]));
                    i.turns.push_back(ns);
                }
            }
        }
        self.wake.notify_one();
    }

    /// Puts every resource of `cache` in line: the resync.
    pub fn sweep<'a>(&self, cache: impl IntoIterator<Item = &'a Arc<Cached>>) {
        for c in cache {
            self.push(c);
        }
    }

    /// `c`'s reconcile has started: it runs until the guard returned is dropped.
    pub fn started(self: &Arc<Self>, c: &Cached) -> Running {
        let mut i = self.lock();
        i.handed.remove(&line_key(c));
        i.running += 1;
        Running(self.clone())
    }

    /// kube's scheduler dropped the request for `namespace/name` without starting it (its cache
    /// did not hold the resource then: a relist had just removed it). Its place is freed, and
    /// `again` says whether the cache holds a resource of that name now (re-created meanwhile),
    /// which is then put back in line: no request handed over is lost.
    pub fn not_started(&self, namespace: &str, name: &str, again: bool) {
        let k = key(namespace, name);
        let freed = self.lock().handed.remove(&k).is_some();
        if again {
            self.push_key(k);
        } else if freed {
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
        let allowed = (self.allowed)();
        if allowed == 0 {
            return None;
        }
        let mut guard = self.lock();
        let i = &mut *guard;
        let now = Instant::now();
        let window = self.window().min(allowed);
        if i.handed.len() + i.running >= window {
            i.handed.retain(|_, t| now.duration_since(*t) < LOST_AFTER);
            if i.handed.len() + i.running >= window {
                return None;
            }
        }
        while let Some(ns) = i.turns.pop_front() {
            let Some(line) = i.waiting.get_mut(&ns) else {
                continue;
            };
            let mut next = None;
            while let Some(k) = line.pop_front() {
                if i.queued.remove(&k) {
                    next = Some(k);
                    break;
                }
            }
            // Back in turn at the end while it has more; forgotten once empty.
            if line.is_empty() {
                i.waiting.remove(&ns);
            } else {
                i.turns.push_back(ns);
            }
            let Some(k) = next else { continue };
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

    /// Requests handed over or running, for tests.
    #[cfg(test)]
    fn in_window(&self) -> usize {
        let i = self.lock();
        i.handed.len() + i.running
    }

    /// The requests, as kube's `Controller::reconcile_on` takes them.
    pub fn requests(self: Arc<Self>) -> impl Stream<Item = ObjectRef<Cached>> + Send + 'static {
        futures::stream::unfold(self, |feed| async move {
            let r = feed.next().await;
            Some((r, feed))
        })
    }
}

/// A reconcile in flight; its place in the window is given back when it ends or is dropped.
pub(crate) struct Running(Arc<Feed>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut i = self.0.lock();
        i.running = i.running.saturating_sub(1);
        drop(i);
        self.0.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};

    fn cached(name: &str) -> Arc<Cached> {
        cached_in("ns", name)
    }

    fn cached_in(ns: &str, name: &str) -> Arc<Cached> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": ns},
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
        let feed = Arc::new(Feed::with_window(2));
        let all: Vec<_> = ["a", "b", "c", "d"].map(cached).into();
        feed.sweep(&all);
        feed.push(&all[0]);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a", "b"]);
        // Asked again while handed over and not started: the same request.
        feed.push(&all[1]);
        assert_eq!(ready(&mut s), Vec::<String>::new());
        // Started, so running: it still takes its place until it ends.
        let a = feed.started(&all[0]);
        assert_eq!(ready(&mut s), Vec::<String>::new());
        drop(a);
        assert_eq!(ready(&mut s), ["c"]);
        // Running, and asked again: handed over again, after those waiting.
        let a = feed.started(&all[0]);
        feed.push(&all[0]);
        drop(a);
        drop(feed.started(&all[1]));
        drop(feed.started(&all[2]));
        assert_eq!(ready(&mut s), ["d", "a"]);
        assert_eq!(feed.in_window(), 2);
    }

    #[tokio::test]
    async fn the_window_follows_the_adaptive_limit() {
        let limit = Arc::new(std::sync::atomic::AtomicUsize::new(4));
        let l = limit.clone();
        let feed = Arc::new(Feed::new(512, move || {
            l.load(std::sync::atomic::Ordering::Relaxed)
        }));
        let all: Vec<_> = (0..100).map(|i| cached(&format!("r{i}"))).collect();
        feed.sweep(&all);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s).len(), 4 + SLACK);
        limit.store(40, std::sync::atomic::Ordering::Relaxed);
        // Read at the next hand-over: a reconcile ending wakes the line.
        drop(feed.started(&all[0]));
        assert_eq!(ready(&mut s).len(), 36 + 1);
        assert_eq!(feed.in_window(), 40 + SLACK);
        // The ceiling bounds it whatever the limit says.
        let feed = Arc::new(Feed::new(8, || 1000));
        feed.sweep(&all);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s).len(), 8 + SLACK);
    }

    #[tokio::test]
    async fn namespaces_are_served_in_turn() {
        let feed = Arc::new(Feed::with_window(usize::MAX));
        let a: Vec<_> = (0..100).map(|i| cached_in("a", &format!("a{i}"))).collect();
        feed.sweep(&a);
        let mut s = Box::pin(feed.clone().requests());
        // Two of A's burst are out; then B's one change and C's arrive.
        assert_eq!(s.next().await.unwrap().name, "a0");
        assert_eq!(s.next().await.unwrap().name, "a1");
        feed.push(&cached_in("b", "b0"));
        feed.push(&cached_in("c", "c0"));
        feed.push(&cached_in("c", "c1"));
        let mut next = Vec::new();
        for _ in 0..6 {
            next.push(s.next().await.unwrap().name);
        }
        assert_eq!(next, ["a2", "b0", "c0", "a3", "c1", "a4"]);
        // Every request is handed over once, in the end.
        assert_eq!(ready(&mut s).len(), 100 - 5);
        assert!(feed.lock().waiting.is_empty() && feed.lock().turns.is_empty());
    }

    #[tokio::test]
    async fn a_deleted_resource_frees_its_place_and_leaves_the_line() {
        let feed = Arc::new(Feed::with_window(2));
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
        let feed = Arc::new(Feed::with_window(2));
        let all: Vec<_> = ["a", "b", "c"].map(cached).into();
        feed.sweep(&all);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a", "b"]);
        // Neither starts nor is seen deleted: after `LOST_AFTER`, the line moves on.
        let next = tokio::time::timeout(LOST_AFTER * 2, s.next()).await;
        assert_eq!(next.unwrap().unwrap().name, "c");
    }

    /// A request kube dropped without starting it frees its place, and the resource, re-created
    /// under the same name, is reconciled (it used to stay "handed over" for good, and every
    /// later request for it was taken for the same one).
    #[tokio::test]
    async fn a_request_dropped_unstarted_is_not_lost() {
        let feed = Arc::new(Feed::with_window(2));
        let all: Vec<_> = ["a", "b", "c"].map(cached).into();
        feed.sweep(&all);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a", "b"]);
        // "a" went in a relist (no delete event); kube drops its request: c takes the place.
        feed.not_started("ns", "a", false);
        assert_eq!(ready(&mut s), ["c"]);
        // "b" too, but it is back already (re-created under the same name): asked for again.
        feed.not_started("ns", "b", true);
        drop(feed.started(&all[2]));
        assert_eq!(ready(&mut s), ["b"]);
        // And a later change of "a" (re-created after) is a new request.
        drop(feed.started(&all[1]));
        feed.push(&all[0]);
        assert_eq!(ready(&mut s), ["a"]);
    }

    /// A request handed over long ago and never started is taken for lost when asked again.
    #[tokio::test(start_paused = true)]
    async fn a_request_handed_long_ago_is_asked_for_again() {
        let feed = Arc::new(Feed::with_window(10));
        let a = cached("a");
        feed.push(&a);
        let mut s = Box::pin(feed.clone().requests());
        assert_eq!(ready(&mut s), ["a"]);
        feed.push(&a);
        assert_eq!(ready(&mut s), Vec::<String>::new(), "the same request");
        tokio::time::advance(LOST_AFTER).await;
        feed.push(&a);
        assert_eq!(ready(&mut s), ["a"]);
    }
}
