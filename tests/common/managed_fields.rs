//! Field ownership as a real API server keeps it (`metadata.managedFields`, `FieldsV1`), for the
//! in-memory API server. What matters to a controller, modelled faithfully:
//! - server-side apply sets what a manager sends and **removes what it sent before and no longer
//!   sends** (unless another manager also owns it);
//! - updates (merge/JSON patches, PUT, create) record the fields they changed under the caller's
//!   manager (`fieldManager`, else `unknown`) and take them from other managers;
//! - lists of objects with a `type` key are maps keyed by it (`k:{"type":"Ready"}`), like
//!   `status.conditions`; `metadata.finalizers` is a set (`v:"…"`); other lists are atomic.
//!
//! Apply conflicts without `force` are checked by the fake itself (`apply_conflicts`). Not
//! modelled: per-type schemas beyond the rules above.

use serde_json::{Map, Value, json};

/// A field set in `FieldsV1` form: `{"f:status": {"f:id": {}}}`.
pub type Fields = Map<String, Value>;

/// Metadata that identifies the object or is the server's own; never owned by a manager.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

fn list_key(item: &Value) -> Option<String> {
    let t = item.get("type")?.as_str()?;
    Some(format!("k:{}", json!({ "type": t })))
}

fn is_map_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| list_key(i).is_some())
}

/// The fields a value sets, below `parent` (for the special cases of metadata and sets).
fn fields_in(v: &Value, parent: &str) -> Fields {
    let mut out = Fields::new();
    let Some(o) = obj(v) else {
        return out;
    };
    for (k, child) in o {
        if parent.is_empty() && (k == "apiVersion" || k == "kind") {
            continue;
        }
        if parent == "metadata" && SERVER_METADATA.contains(&k.as_str()) {
            continue;
        }
        let sub = match child {
            Value::Object(_) => fields_in(child, k),
            Value::Array(items) if parent == "metadata" && k == "finalizers" => items
                .iter()
                .map(|i| (format!("v:{i}"), json!({})))
                .collect(),
            Value::Array(items) if is_map_list(items) => items
                .iter()
                .filter_map(|i| {
                    let mut f = fields_in(i, "");
                    f.insert(".".into(), json!({}));
                    Some((list_key(i)?, Value::Object(f)))
                })
                .collect(),
            _ => Fields::new(),
        };
        out.insert(format!("f:{k}"), Value::Object(sub));
    }
    out
}

/// The fields of a whole object.
pub fn of(v: &Value) -> Fields {
    fields_in(v, "")
}

/// The fields of `v` restricted to its status (what a status-subresource write can own).
pub fn of_status(v: &Value) -> Fields {
    let mut out = Fields::new();
    if let Some(s) = v.get("status") {
        out.insert("f:status".into(), Value::Object(fields_in(s, "status")));
    }
    out
}

/// The fields of `v` without its status (what a main-resource write of a CR can own).
pub fn without_status(v: &Value) -> Fields {
    let mut f = of(v);
    f.remove("f:status");
    f
}

/// `a ∪ b`.
pub fn union(a: &Fields, b: &Fields) -> Fields {
    let mut out = a.clone();
    for (k, bv) in b {
        let merged = match (out.get(k).and_then(Value::as_object), bv.as_object()) {
            (Some(x), Some(y)) => union(x, y),
            (None, Some(y)) => y.clone(),
            (Some(x), None) => x.clone(),
            (None, None) => Fields::new(),
        };
        out.insert(k.clone(), Value::Object(merged));
    }
    out
}

/// `a − b`: what `a` holds that `b` does not. A field owned as a whole (`{}`) covers its
/// children.
pub fn minus(a: &Fields, b: &Fields) -> Fields {
    let mut out = Fields::new();
    for (k, av) in a {
        let am = av.as_object().cloned().unwrap_or_default();
        match b.get(k).and_then(Value::as_object) {
            None => {
                out.insert(k.clone(), Value::Object(am));
            }
            Some(bm) if bm.is_empty() || am.is_empty() => {}
            Some(bm) => {
                let d = minus(&am, bm);
                if !d.is_empty() {
                    out.insert(k.clone(), Value::Object(d));
                }
            }
        }
    }
    out
}

/// The fields whose values differ between `old` and `new` (set, changed or removed), at the
/// depth where they differ.
pub fn changed(old: &Value, new: &Value, parent: &str) -> Fields {
    let mut out = Fields::new();
    let (Some(o), Some(n)) = (obj(old), obj(new)) else {
        return out;
    };
    for k in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
        if parent.is_empty() && (k == "apiVersion" || k == "kind") {
            continue;
        }
        if parent == "metadata" && SERVER_METADATA.contains(&k.as_str()) {
            continue;
        }
        let (ov, nv) = (o.get(k), n.get(k));
        if ov == nv {
            continue;
        }
        let sub = match (ov, nv) {
            (Some(a @ Value::Object(_)), Some(b @ Value::Object(_))) => changed(a, b, k),
            (_, Some(v @ Value::Object(_))) | (Some(v @ Value::Object(_)), None) => fields_in(v, k),
            (_, Some(Value::Array(items))) if parent == "metadata" && k == "finalizers" => items
                .iter()
                .map(|i| (format!("v:{i}"), json!({})))
                .collect(),
            _ => Fields::new(),
        };
        out.insert(format!("f:{k}"), Value::Object(sub));
    }
    out
}

/// Removes from `v` every field in `set` (used when a manager stops applying them).
pub fn remove(v: &mut Value, set: &Fields) {
    let Some(o) = v.as_object_mut() else {
        return;
    };
    for (k, sub) in set {
        let sub = sub.as_object().cloned().unwrap_or_default();
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        let whole = sub.is_empty();
        match o.get_mut(name) {
            None => {}
            Some(_) if whole => {
                o.remove(name);
            }
            Some(Value::Array(items)) => {
                items.retain_mut(|item| {
                    let key = format!("v:{item}");
                    if sub.contains_key(&key) {
                        return false;
                    }
                    match list_key(item).and_then(|lk| sub.get(&lk)?.as_object().cloned()) {
                        Some(s) if s.contains_key(".") => false,
                        Some(s) => {
                            remove(item, &s);
                            true
                        }
                        None => true,
                    }
                });
            }
            Some(child) => {
                remove(child, &sub);
                // A struct whose every field went is gone too, as the API server prunes it.
                if child.as_object().is_some_and(Map::is_empty) {
                    o.remove(name);
                }
            }
        }
    }
}

/// Merges an applied value into `dst`: objects field by field, keyed lists element by element,
/// anything else replaced.
pub fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                match d.get_mut(k) {
                    Some(dv) => merge(dv, sv),
                    None => {
                        d.insert(k.clone(), sv.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) if is_map_list(s) && is_map_list(d) => {
            for item in s {
                match d.iter_mut().find(|x| list_key(x) == list_key(item)) {
                    Some(x) => merge(x, item),
                    None => d.push(item.clone()),
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub manager: String,
    pub operation: &'static str,
    pub subresource: Option<&'static str>,
    pub fields: Fields,
}

pub fn read(v: &Value) -> Vec<Entry> {
    v.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some(Entry {
                        manager: e.get("manager")?.as_str()?.to_string(),
                        operation: match e.get("operation")?.as_str()? {
                            "Apply" => "Apply",
                            _ => "Update",
                        },
                        subresource: e
                            .get("subresource")
                            .and_then(Value::as_str)
                            .map(|_| "status"),
                        fields: e.get("fieldsV1")?.as_object()?.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write(v: &mut Value, entries: &[Entry], api_version: &str, time: &str) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut m = json!({
                "apiVersion": api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields,
                "manager": e.manager,
                "operation": e.operation,
                "time": time,
            });
            if let Some(s) = e.subresource {
                m["subresource"] = s.into();
            }
            m
        })
        .collect();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records that `manager` now owns `fields` by `operation`: they are taken from every other
/// manager, and an apply replaces the manager's earlier applied set.
pub fn own(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &'static str,
    subresource: Option<&'static str>,
    fields: Fields,
) {
    for e in entries.iter_mut() {
        e.fields = minus(&e.fields, &fields);
    }
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == operation && e.subresource == subresource)
    {
        Some(e) if operation == "Apply" => e.fields = fields,
        Some(e) => e.fields = union(&e.fields, &fields),
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation,
            subresource,
            fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Forgets fields no longer present in the object.
pub fn forget_removed(entries: &mut [Entry], gone: &Fields) {
    for e in entries.iter_mut() {
        e.fields = minus(&e.fields, gone);
    }
}
