//! Confluent's published Provider Integration API contract, read in place from
//! `../shared/confluent-api/` (the SDK's OpenAPI files and the bodies Confluent's Terraform
//! provider replays), or from `PIO_CONTRACT_DIR`. The contract is an extra layer: where the
//! files are absent, its checks print one line saying so and every other test runs; under
//! `CI=true` their absence fails, so CI always holds every exchange to the contract.
//!
//! The OpenAPI 3.0 schemas are checked with a maintained JSON Schema validator (`jsonschema`),
//! after the two OpenAPI-only constructs are translated: `nullable` becomes a `null` type, and a
//! `oneOf` with a `discriminator` becomes "if `kind` is K then the mapped schema" (the config
//! subschemas all require only `kind`, so a plain `oneOf` would match every one of them).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use pio::emulator::Exchange;
use serde_json::{Map, Value, json};

/// Where the contract lives: `PIO_CONTRACT_DIR`, else `shared/` beside the checkout (as CI has
/// it). `None`, once announced on a line of its own, when neither exists outside CI; with
/// `CI=true` the absence is a failure.
pub fn dir() -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        shared_dir(
            "PIO_CONTRACT_DIR",
            "../shared/confluent-api",
            "pim-v1.openapi.yaml",
            "Confluent's published contract",
        )
    })
    .clone()
}

/// A folder of `shared/` beside the checkout (as CI has it), or where the environment variable
/// `env` says: `None`, said once on a line of its own, when it is not there (`marker` inside it
/// says it is) outside CI; with `CI=true` its absence is a failure.
pub fn shared_dir(env: &str, beside: &str, marker: &str, what: &str) -> Option<std::path::PathBuf> {
    let (dir, named) = match std::env::var_os(env) {
        Some(d) => (std::path::PathBuf::from(d), env.to_string()),
        None => (
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(beside),
            "the directory beside the checkout".to_string(),
        ),
    };
    if dir.join(marker).exists() {
        return Some(dir);
    }
    let why = format!(
        "{what}: not at {} ({named}); set {env} to a copy of {} to run them",
        dir.display(),
        beside.trim_start_matches("../")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {why}"
    );
    println!("checks SKIPPED: {why}");
    None
}

/// The contract, loaded once per test binary; `None` where it is absent (see `dir`).
pub fn shared() -> Option<&'static Contract> {
    static C: std::sync::OnceLock<Option<Contract>> = std::sync::OnceLock::new();
    C.get_or_init(|| dir().map(|d| Contract::load_from(&d)))
        .as_ref()
}

/// A Terraform mock body, by file name.
pub fn mock(dir: &Path, name: &str) -> Value {
    let path = dir.join("terraform-mocks").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every Terraform mock, as (file name, body).
pub fn mocks(dir: &Path) -> Vec<(String, Value)> {
    let d = dir.join("terraform-mocks");
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), mock(dir, &n)))
        .collect()
}

fn load(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    to_json_schema(&mut doc);
    doc
}

/// The document as a request sees it: OpenAPI applies `required` on a read-only property to
/// responses only.
fn request_view(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let read_only: Vec<String> = o
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .filter(|(_, p)| p.get("readOnly") == Some(&Value::Bool(true)))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Array(req)) = o.get_mut("required") {
                req.retain(|r| !r.as_str().is_some_and(|r| read_only.iter().any(|x| x == r)));
            }
            for child in o.values_mut() {
                request_view(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(request_view),
        _ => {}
    }
}

/// Translates the OpenAPI-only constructs of a document, in place.
fn to_json_schema(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = o.get("type").cloned()
            {
                o.insert("type".into(), json!([t, "null"]));
            }
            let mapping = o
                .get("discriminator")
                .and_then(|d| d.get("mapping"))
                .and_then(Value::as_object)
                .cloned();
            if let (Some(mapping), Some(prop)) = (
                mapping,
                o.get("discriminator")
                    .and_then(|d| d.get("propertyName"))
                    .and_then(Value::as_str)
                    .map(String::from),
            ) && o.contains_key("oneOf")
            {
                o.remove("oneOf");
                o.remove("discriminator");
                let conditions: Vec<Value> = mapping
                    .iter()
                    .map(|(k, r)| {
                        json!({
                            "if": {"properties": {prop.clone(): {"const": k}}, "required": [prop]},
                            "then": {"$ref": r},
                        })
                    })
                    .collect();
                o.insert("allOf".into(), Value::Array(conditions));
            }
            for child in o.values_mut() {
                to_json_schema(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The two OpenAPI documents (as responses and as requests see them) and compiled validators.
pub struct Contract {
    v1: Value,
    v2: Value,
    v1_requests: Value,
    v2_requests: Value,
    validators: Mutex<HashMap<(bool, bool, String), Arc<jsonschema::Validator>>>,
}

impl Contract {
    pub fn load_from(dir: &Path) -> Self {
        let (v1, v2) = (
            load(dir, "pim-v1.openapi.yaml"),
            load(dir, "pim-v2.openapi.yaml"),
        );
        let (mut v1_requests, mut v2_requests) = (v1.clone(), v2.clone());
        request_view(&mut v1_requests);
        request_view(&mut v2_requests);
        Self {
            v1,
            v2,
            v1_requests,
            v2_requests,
            validators: Mutex::default(),
        }
    }

    fn doc(&self, v2: bool) -> &Value {
        if v2 { &self.v2 } else { &self.v1 }
    }

    /// Follows a `$ref` to a component (responses, parameters, request bodies).
    fn deref<'a>(&'a self, v2: bool, mut v: &'a Value, mut pointer: String) -> (&'a Value, String) {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let p = r.trim_start_matches('#').to_string();
            match self.doc(v2).pointer(&p) {
                Some(target) => {
                    v = target;
                    pointer = p;
                }
                None => break,
            }
        }
        (v, pointer)
    }

    /// Validates `instance` against the schema at `pointer` in the document, as a response
    /// (or, with `request`, as a request) body.
    pub fn validate(
        &self,
        v2: bool,
        request: bool,
        pointer: &str,
        instance: &Value,
    ) -> Result<(), String> {
        let validator = {
            let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry((v2, request, pointer.to_string()))
                .or_insert_with(|| {
                    let mut root = match (v2, request) {
                        (false, false) => self.v1.clone(),
                        (true, false) => self.v2.clone(),
                        (false, true) => self.v1_requests.clone(),
                        (true, true) => self.v2_requests.clone(),
                    };
                    // A JSON pointer in a URI fragment: `{id}` must be percent-encoded.
                    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
                    root["$ref"] = format!("#{fragment}").into();
                    Arc::new(
                        jsonschema::options()
                            .with_draft(jsonschema::Draft::Draft202012)
                            .build(&root)
                            .unwrap_or_else(|e| panic!("schema at {pointer}: {e}")),
                    )
                })
                .clone()
        };
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The operation a request names: (is v2, pointer to the operation object).
    fn operation(&self, method: &str, path: &str) -> Option<(bool, String)> {
        let v2 = path.starts_with("/pim/v2/");
        let paths = self.doc(v2).get("paths")?.as_object()?;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let template = paths.keys().find(|t| {
            let ts: Vec<&str> = t.trim_matches('/').split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s)
        })?;
        let m = method.to_ascii_lowercase();
        paths.get(template)?.get(&m)?;
        Some((v2, format!("/paths/{}/{m}", escape(template))))
    }

    /// The answer the emulator gave matches the operation's documented response: the schema of
    /// its status (else `default`), an error in the published `Failure` shape, or the legacy
    /// `{"error_code","message"}` shape Confluent's Terraform provider replays.
    pub fn check_response(&self, ex: &Exchange) -> Result<(), String> {
        let Some((v2, op)) = self.operation(&ex.method, &ex.path) else {
            return Err(format!("{} {}: no such operation", ex.method, ex.path));
        };
        let body: Option<Value> = if ex.response.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&ex.response).map_err(|e| format!("not JSON: {e}"))?)
        };
        let doc = self.doc(v2);
        let status = ex.status.to_string();
        let documented = doc
            .pointer(&format!("{op}/responses/{status}"))
            .map(|r| (r, format!("{op}/responses/{status}")))
            .or_else(|| {
                doc.pointer(&format!("{op}/responses/default"))
                    .map(|r| (r, format!("{op}/responses/default")))
            });
        let legacy = |b: &Value| {
            b.get("error_code").and_then(Value::as_u64) == Some(u64::from(ex.status))
                && b.get("message").is_some_and(Value::is_string)
        };
        match (documented, body) {
            // 204, and 429 whose documented answer has no body; a redirect is not the API's
            // answer (a proxy's, a moved host's), and has none.
            (_, None)
                if ex.status == 204 || ex.status == 429 || (300..400).contains(&ex.status) =>
            {
                Ok(())
            }
            (_, Some(b)) if ex.status >= 400 && legacy(&b) => Ok(()),
            (Some((r, pointer)), Some(b)) => {
                let (r, pointer) = self.deref(v2, r, pointer);
                if r.pointer("/content/application~1json/schema").is_some() {
                    self.validate(
                        v2,
                        false,
                        &format!("{pointer}/content/application~1json/schema"),
                        &b,
                    )
                } else {
                    Err(format!(
                        "status {status} is documented without a body, got {b}"
                    ))
                }
            }
            (None, Some(b)) if ex.status >= 400 => {
                self.validate(v2, false, "/components/schemas/Failure", &b)
            }
            (d, b) => Err(format!(
                "status {status} (documented: {}) with body {b:?}",
                d.is_some()
            )),
        }
    }

    /// The request the client sent matches the operation: declared query parameters only,
    /// required ones present, values within their schemas, and a body that validates against
    /// the request schema without read-only fields.
    pub fn check_request(&self, ex: &Exchange) -> Result<(), String> {
        let Some((v2, op)) = self.operation(&ex.method, &ex.path) else {
            return Err(format!("{} {}: no such operation", ex.method, ex.path));
        };
        let doc = self.doc(v2);
        let mut declared: Map<String, Value> = Map::new();
        let path_pointer = op
            .rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        for list in [
            doc.pointer(&format!("{path_pointer}/parameters")),
            doc.pointer(&format!("{op}/parameters")),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        {
            for p in list {
                let (p, _) = self.deref(v2, p, String::new());
                if p.get("in").and_then(Value::as_str) == Some("query")
                    && let Some(name) = p.get("name").and_then(Value::as_str)
                {
                    declared.insert(name.to_string(), p.clone());
                }
            }
        }
        let sent: Vec<(String, String)> = ex
            .query
            .as_deref()
            .map(|q| {
                reqwest::Url::parse(&format!("http://x/?{q}"))
                    .map(|u| u.query_pairs().into_owned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let mut problems = Vec::new();
        for (name, value) in &sent {
            match declared.get(name) {
                None => problems.push(format!("query parameter {name} is not declared")),
                Some(p) => {
                    let schema = p.get("schema").cloned().unwrap_or(Value::Null);
                    let (schema, _) = self.deref(v2, &schema, String::new());
                    let typed = match schema.get("type").and_then(Value::as_str) {
                        Some("integer") => value
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::from(value.as_str())),
                        _ => Value::from(value.as_str()),
                    };
                    if let Ok(v) = jsonschema::validator_for(schema)
                        && let Err(e) = v.validate(&typed)
                    {
                        problems.push(format!("query parameter {name}={value}: {e}"));
                    }
                }
            }
        }
        for (name, p) in &declared {
            if p.get("required") == Some(&Value::Bool(true)) && !sent.iter().any(|(n, _)| n == name)
            {
                problems.push(format!("required query parameter {name} is missing"));
            }
        }
        let body_pointer = doc
            .pointer(&format!("{op}/requestBody"))
            .map(|b| self.deref(v2, b, format!("{op}/requestBody")).1)
            .map(|p| format!("{p}/content/application~1json/schema"));
        match (body_pointer, ex.request.trim().is_empty()) {
            (None, true) => {}
            (None, false) => {
                problems.push(format!("a body where none is declared: {}", ex.request))
            }
            (Some(p), true) => {
                if doc.pointer(&format!("{op}/requestBody/required")) == Some(&Value::Bool(true)) {
                    problems.push(format!("the required body is missing ({p})"));
                }
            }
            (Some(p), false) => match serde_json::from_str::<Value>(&ex.request) {
                Err(e) => problems.push(format!("body is not JSON: {e}")),
                Ok(b) => {
                    if let Err(e) = self.validate(v2, true, &p, &b) {
                        problems.push(e);
                    }
                    let schema = doc.pointer(&p).cloned().unwrap_or(Value::Null);
                    self.read_only(v2, &schema, &b, "", &mut problems);
                }
            },
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Properties a client sent that the schema marks read-only.
    fn read_only(&self, v2: bool, schema: &Value, body: &Value, at: &str, out: &mut Vec<String>) {
        let (schema, _) = self.deref(v2, schema, String::new());
        let Some(obj) = body.as_object() else {
            return;
        };
        // The subschemas that apply: allOf parts, and the `then` of a matching discriminator.
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(cond) = part.get("if") {
                let matches = jsonschema::validator_for(cond)
                    .map(|v| v.is_valid(body))
                    .unwrap_or(false);
                if matches && let Some(then) = part.get("then") {
                    self.read_only(v2, then, body, at, out);
                }
            } else {
                self.read_only(v2, part, body, at, out);
            }
        }
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (k, v) in obj {
            if let Some(p) = props.get(k) {
                let (p, _) = self.deref(v2, p, String::new());
                if p.get("readOnly") == Some(&Value::Bool(true)) {
                    out.push(format!("read-only field {at}/{k} was sent"));
                }
                self.read_only(v2, p, v, &format!("{at}/{k}"), out);
            }
        }
    }

    /// Fails the test with the first violations, if any.
    pub fn assert_kept(&self, exchanges: &[Exchange], requests: bool) {
        let v = self.violations(exchanges, requests);
        assert!(
            v.is_empty(),
            "{} of {} API exchanges break the published contract:\n{}",
            v.len(),
            exchanges.len(),
            v.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        );
    }

    /// Every violation in `exchanges`; requests are checked when `requests` (the operator's
    /// own traffic; the emulator's tests send invalid requests on purpose).
    pub fn violations(&self, exchanges: &[Exchange], requests: bool) -> Vec<String> {
        let mut out = Vec::new();
        for ex in exchanges.iter().filter(|e| !e.injected_body) {
            let what = format!(
                "{} {}{} → {}",
                ex.method,
                ex.path,
                ex.query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default(),
                ex.status
            );
            if let Err(e) = self.check_response(ex) {
                out.push(format!("response to {what}: {e}\n  body: {}", ex.response));
            }
            if requests && let Err(e) = self.check_request(ex) {
                out.push(format!("request {what}: {e}\n  body: {}", ex.request));
            }
        }
        out
    }
}
