//! Who holds which integration, indexed from the same watch events that fill the controller's
//! cache (no LIST per reconcile). One integration has one owner:
//! - the resource whose status records its id owns it; if two ever record one id (a double
//!   record left by an older operator, or written by hand), the older resource keeps it;
//! - before any id is recorded, a key (`environment` + role ARN for AWS, `environment` +
//!   provider + display name for GCP and Azure) belongs to the oldest live resource asking for it,
//!   by its recorded intent, or by its spec unless it is stalled for want of credentials (a
//!   resource that may not act cannot squat a key). Age is `creationTimestamp`, then the order
//!   the watch first delivered them in (the API server's commit order), then namespace/name, so
//!   two resources racing for one key cannot both win (see `Member` for the one window where
//!   replicas may disagree).

use parking_lot::Mutex;
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::watcher};

use crate::controller::decide::Holder;
use crate::controller::decide::desired::Desired;
use crate::controller::decide::reasons::Reason;
use crate::controller::decide::trust::TrustKind;
use crate::crd::{CloudProvider, PendingCreate, ProviderIntegration, STALLED};

/// A key as the index compares it: what the API (or, for `pim/v2`, the operator) keeps unique.
pub fn natural_key(p: &PendingCreate) -> String {
    match &p.customer_iam_role_arn {
        Some(arn) => format!("{}|AWS|{arn}", p.environment),
        None => format!(
            "{}|{}|{}",
            p.environment,
            p.provider.unwrap_or(CloudProvider::Aws).as_str(),
            p.display_name
        ),
    }
}

/// One resource as the index orders it: `creationTimestamp`, then the order the watch first
/// delivered it in, then namespace/name, then uid, so older sorts first. Shared by every set the
/// resource is in: the index holds one per resource.
///
/// `creationTimestamp` has whole seconds: two resources created in the same second would be
/// ordered by name, and the one created second (and so delivered second) could be taken for the
/// older one after the other had already decided to create. The watch delivers creations in
/// commit order, so the order first seen breaks that tie the way the API server ordered them
/// (after a restart, a relist sees them in name order: only resources created within the same
/// second and still without a recorded id are affected, for that short window).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    created: Option<Timestamp>,
    seen: u64,
    name: Box<str>,
    uid: Arc<str>,
}

impl Member {
    fn namespace(&self) -> &str {
        self.name.split_once('/').map_or("", |(ns, _)| ns)
    }
}

/// Who asks for one id or key. Almost always one resource, so a plain vector (a `BTreeSet`
/// allocates a node of eleven members for one); the oldest is found by a scan.
type Members = Vec<Arc<Member>>;

#[derive(Debug)]
struct Entry {
    member: Arc<Member>,
    id: Option<Arc<str>>,
    keys: Vec<Arc<str>>,
    /// The trust object it names (`spec.trust`), as `trust_key` makes it.
    trust: Option<Arc<str>>,
}

/// A trust object as the index keys it: kind, namespace (empty for cluster-scoped) and name.
pub fn trust_key(kind: TrustKind, namespace: &str, name: &str) -> String {
    let ns = if kind.namespaced() { namespace } else { "" };
    format!("{}|{}|{ns}|{name}", kind.api_version(), kind.kind())
}

fn trust_of(pi: &ProviderIntegration) -> Option<String> {
    let t = pi.spec.trust.as_ref()?;
    let kind = TrustKind::of(&t.target_ref.api_version, &t.target_ref.kind)?;
    Some(trust_key(
        kind,
        &pi.namespace().unwrap_or_default(),
        &t.target_ref.name,
    ))
}

#[derive(Default)]
struct Inner {
    by_uid: HashMap<Arc<str>, Entry>,
    by_id: HashMap<Arc<str>, Members>,
    by_key: HashMap<Arc<str>, Members>,
    /// Who writes to which trust object (`trust_key`).
    by_trust: HashMap<Arc<str>, Members>,
    /// How many resources the index has seen first, for `Member::seen`.
    seen: u64,
    /// Per watched scope (a namespace, or `None` for all), the uids seen since the last `Init`
    /// of its relist, to drop the ones of that scope that went meanwhile.
    relisting: HashMap<Option<Box<str>>, HashSet<Arc<str>>>,
}

/// The index; cheap to share.
#[derive(Default)]
pub struct Owners(Mutex<Inner>);

/// May this resource ask for a key by its spec? Not while it is stalled for want of
/// credentials: a resource that may not act cannot squat a key.
fn may_act(pi: &ProviderIntegration) -> bool {
    !pi.condition(STALLED).is_some_and(|c| {
        c.status == "True"
            && [
                Reason::CredentialsNotAllowed,
                Reason::NoCredentials,
                Reason::CredentialsNotFound,
            ]
            .iter()
            .any(|r| r.as_str() == c.reason)
    })
}

fn keys_of(pi: &ProviderIntegration) -> Vec<String> {
    let mut keys: Vec<String> = Desired::from_resource(pi)
        .ok()
        .filter(|_| may_act(pi))
        .map(|d| natural_key(&d.intent()))
        .into_iter()
        .chain(pi.recorded_intent().as_ref().map(natural_key))
        .collect();
    keys.dedup();
    keys
}

/// The shared copy of `s` when the map already holds it, so one id or key is stored once.
fn interned<V>(map: &HashMap<Arc<str>, V>, s: &str) -> Arc<str> {
    map.get_key_value(s)
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| Arc::from(s))
}

/// Adds `member` to the set of `k` (stored once, `interned`) and returns the stored key. A set
/// grows one slot at a time: almost all have one member, and a first `push` would make room
/// for four.
fn add_member(map: &mut HashMap<Arc<str>, Members>, k: &str, member: &Arc<Member>) -> Arc<str> {
    let k = interned(map, k);
    let set = map.entry(k.clone()).or_default();
    set.reserve_exact(1);
    set.push(member.clone());
    k
}

fn drop_member(map: &mut HashMap<Arc<str>, Members>, k: &str, uid: &str) {
    if let Some(set) = map.get_mut(k) {
        set.retain(|m| &*m.uid != uid);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

impl Inner {
    fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        if let Some(id) = &old.id {
            drop_member(&mut self.by_id, id, uid);
        }
        for k in &old.keys {
            drop_member(&mut self.by_key, k, uid);
        }
        if let Some(t) = &old.trust {
            drop_member(&mut self.by_trust, t, uid);
        }
    }

    fn upsert(&mut self, pi: &ProviderIntegration) {
        let uid_s = pi.uid().unwrap_or_default();
        let uid = interned(&self.by_uid, &uid_s);
        let seen = match self.by_uid.get(&uid) {
            Some(e) => e.member.seen,
            None => {
                self.seen += 1;
                self.seen
            }
        };
        self.remove(&uid);
        let member = Arc::new(Member {
            created: pi.metadata.creation_timestamp.as_ref().map(|t| t.0),
            seen,
            name: format!("{}/{}", pi.namespace().unwrap_or_default(), pi.name_any()).into(),
            uid: uid.clone(),
        });
        // Observers are not owners: they hold neither the id they mirror nor its key.
        let owner = !pi.spec.observes();
        let id = pi
            .status
            .as_ref()
            .and_then(|s| s.id.as_deref())
            .filter(|_| owner)
            .map(|id| add_member(&mut self.by_id, id, &member));
        let keys = if owner {
            keys_of(pi)
                .iter()
                .map(|k| add_member(&mut self.by_key, k, &member))
                .collect()
        } else {
            Default::default()
        };
        let ns = pi.namespace().unwrap_or_default();
        for (scope, seen) in &mut self.relisting {
            if scope.as_deref().is_none_or(|s| s == ns) {
                seen.insert(uid.clone());
            }
        }
        let trust = trust_of(pi).map(|t| add_member(&mut self.by_trust, &t, &member));
        self.by_uid.insert(
            uid,
            Entry {
                member,
                id,
                keys,
                trust,
            },
        );
    }

    /// The oldest resource other than `uid` in `set`, and whether it is older than `uid`.
    fn other(&self, set: Option<&Members>, uid: &str) -> Option<(Holder, bool)> {
        let other = set?.iter().filter(|m| &*m.uid != uid).min()?;
        let older = self.by_uid.get(uid).is_none_or(|e| other < &e.member);
        Some((
            Holder {
                name: other.name.to_string(),
            },
            older,
        ))
    }
}

impl Owners {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.0.lock()
    }

    /// Follows the watch stream that fills the controller's cache; `scope` is the namespace that
    /// watch covers (`None`: all), so its relist drops only what went from that namespace.
    pub fn apply(&self, scope: Option<&str>, event: &watcher::Event<ProviderIntegration>) {
        let mut inner = self.lock();
        match event {
            watcher::Event::Apply(pi) | watcher::Event::InitApply(pi) => inner.upsert(pi),
            watcher::Event::Delete(pi) => inner.remove(&pi.uid().unwrap_or_default()),
            watcher::Event::Init => {
                inner
                    .relisting
                    .insert(scope.map(Into::into), HashSet::new());
            }
            watcher::Event::InitDone => {
                if let Some(seen) = inner.relisting.remove(&scope.map(Into::into)) {
                    let gone: Vec<Arc<str>> = inner
                        .by_uid
                        .iter()
                        .filter(|(u, e)| {
                            !seen.contains(*u) && scope.is_none_or(|s| e.member.namespace() == s)
                        })
                        .map(|(u, _)| u.clone())
                        .collect();
                    for u in gone {
                        inner.remove(&u);
                    }
                }
            }
        }
    }

    /// Another resource recording integration `id`, and whether it is older than `uid`.
    pub fn id_holder(&self, id: &str, uid: &str) -> Option<(Holder, bool)> {
        let inner = self.lock();
        inner.other(inner.by_id.get(id), uid)
    }

    /// An older resource asking for the same key as `key`.
    pub fn older_key_holder(&self, key: &PendingCreate, uid: &str) -> Option<Holder> {
        let inner = self.lock();
        inner
            .other(inner.by_key.get(natural_key(key).as_str()), uid)
            .filter(|(_, older)| *older)
            .map(|(h, _)| h)
    }

    /// The resources (`namespace/name`) that write to the trust object `key` (`trust_key`).
    pub fn trusting(&self, key: &str) -> Vec<String> {
        self.lock()
            .by_trust
            .get(key)
            .into_iter()
            .flatten()
            .map(|m| m.name.to_string())
            .collect()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock().by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pi(
        name: &str,
        uid: &str,
        created: &str,
        id: Option<&str>,
        role: &str,
    ) -> ProviderIntegration {
        let mut v = json!({
            "apiVersion": "pim.confluent.cloud/v1alpha1", "kind": "ProviderIntegration",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "creationTimestamp": created},
            "spec": {"environment": "env-1", "provider": "AWS",
                "aws": {"customerIamRoleArn": format!("arn:aws:iam::123456789012:role/{role}")}},
        });
        if let Some(id) = id {
            v["status"] = json!({"id": id});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ids_and_keys_have_one_owner_the_oldest() {
        let o = Owners::default();
        let a = pi("a", "u-a", "2026-01-01T00:00:00Z", Some("dlz-1"), "r");
        let b = pi("b", "u-b", "2026-01-02T00:00:00Z", None, "r");
        o.apply(None, &watcher::Event::Apply(a.clone()));
        o.apply(None, &watcher::Event::Apply(b.clone()));
        let (h, older) = o.id_holder("dlz-1", "u-b").unwrap();
        assert_eq!((h.name.as_str(), older), ("ns/a", true));
        assert!(
            o.id_holder("dlz-1", "u-a").is_none(),
            "a does not compete with itself"
        );
        let key = Desired::from_resource(&b).unwrap().intent();
        assert_eq!(o.older_key_holder(&key, "u-b").unwrap().name, "ns/a");
        assert!(o.older_key_holder(&key, "u-a").is_none(), "the oldest wins");
        // b records the id too (double ownership from an older release): a is older and keeps it.
        let b2 = pi("b", "u-b", "2026-01-02T00:00:00Z", Some("dlz-1"), "r");
        o.apply(None, &watcher::Event::Apply(b2));
        assert!(o.id_holder("dlz-1", "u-a").is_some_and(|(_, older)| !older));
        // a goes: b is alone.
        o.apply(None, &watcher::Event::Delete(a));
        assert!(o.id_holder("dlz-1", "u-b").is_none());
        assert!(o.older_key_holder(&key, "u-b").is_none());
        // A resource stalled for want of credentials cannot squat a key by its spec.
        let mut squatter = pi("c", "u-c", "2025-01-01T00:00:00Z", None, "q");
        squatter.status = serde_json::from_value(json!({"conditions": [{"type": "Stalled",
            "status": "True", "reason": "CredentialsNotAllowed", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
        .unwrap();
        o.apply(None, &watcher::Event::Apply(squatter));
        let q = pi("d", "u-d", "2026-01-03T00:00:00Z", None, "q");
        o.apply(None, &watcher::Event::Apply(q.clone()));
        let qkey = Desired::from_resource(&q).unwrap().intent();
        assert!(o.older_key_holder(&qkey, "u-d").is_none());
        // A relist drops what went meanwhile.
        o.apply(None, &watcher::Event::Init);
        o.apply(None, &watcher::Event::InitDone);
        assert!(o.is_empty());
    }

    /// With one watch per namespace, a relist of one (or the two `Init`s at start) keeps the
    /// owners of the other until that one's own relist says they went.
    #[test]
    fn a_relist_drops_owners_only_in_its_own_namespace() {
        let in_ns = |ns: &str, uid: &str, id: &str| {
            let mut p = pi(uid, uid, "2026-01-01T00:00:00Z", Some(id), uid);
            p.metadata.namespace = Some(ns.into());
            p
        };
        let o = Owners::default();
        let a = in_ns("a", "u-a", "dlz-a");
        let b = in_ns("b", "u-b", "dlz-b");
        o.apply(Some("a"), &watcher::Event::Apply(a.clone()));
        o.apply(Some("b"), &watcher::Event::Apply(b.clone()));
        // Both watches restart; a's relist ends first.
        o.apply(Some("a"), &watcher::Event::Init);
        o.apply(Some("b"), &watcher::Event::Init);
        o.apply(Some("a"), &watcher::Event::InitApply(a.clone()));
        o.apply(Some("a"), &watcher::Event::InitDone);
        assert!(o.id_holder("dlz-b", "u-x").is_some(), "b's owner kept");
        assert!(o.id_holder("dlz-a", "u-x").is_some(), "a's owner relisted");
        // b's relist does not list b: it went meanwhile.
        o.apply(Some("b"), &watcher::Event::InitDone);
        assert!(o.id_holder("dlz-b", "u-x").is_none());
        assert!(o.id_holder("dlz-a", "u-x").is_some());
    }
}
