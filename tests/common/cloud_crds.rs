//! The published CRDs of the cloud operators teams run (`../shared/cloud-crds/`: ACK, Crossplane,
//! Config Connector), read in place, never copied: what the objects carrying a trust must be.

use std::path::PathBuf;

use serde_json::Value;

/// Where they live: `PIO_CLOUD_CRDS_DIR`, else `shared/cloud-crds` beside the checkout (as CI
/// has it). `None`, once announced on a line of its own, when neither exists outside CI; with
/// `CI=true` the absence is a failure.
pub fn dir() -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        super::contract::shared_dir(
            "PIO_CLOUD_CRDS_DIR",
            "../shared/cloud-crds",
            "ack-iam",
            "the cloud operators' CRDs",
        )
    })
    .clone()
}

/// The file (relative to `dir()`) of the published CRD of a kind the operator writes trust to.
pub fn file_of(kind: pio::controller::decide::trust::TrustKind) -> &'static str {
    use pio::controller::decide::trust::TrustKind;
    match kind {
        TrustKind::AckRole => "ack-iam/iam.services.k8s.aws_roles.yaml",
        TrustKind::CrossplaneRole => "crossplane-aws/iam.aws.m.upbound.io_roles.yaml",
        TrustKind::CrossplaneClusterRole => "crossplane-aws/iam.aws.upbound.io_roles.yaml",
        TrustKind::PolicyMember => {
            "config-connector/iampolicymembers.iam.cnrm.cloud.google.com.yaml"
        }
        TrustKind::CrossplanePrincipal => {
            "crossplane-azuread/serviceprincipals.azuread.m.upbound.io_principals.yaml"
        }
        TrustKind::CrossplaneClusterPrincipal => {
            "crossplane-azuread/serviceprincipals.azuread.upbound.io_principals.yaml"
        }
    }
}

/// A published CRD: its scope and the schema of its storage version.
pub struct Crd {
    pub api_version: String,
    pub kind: String,
    pub namespaced: bool,
    pub schema: Value,
}

impl Crd {
    /// The CRD in `file` (relative to `dir()`).
    pub fn load(file: &str) -> Option<Crd> {
        let text = std::fs::read_to_string(dir()?.join(file)).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        let spec = &crd["spec"];
        let version = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["storage"] == true)
            .expect("a storage version");
        Some(Crd {
            api_version: format!(
                "{}/{}",
                spec["group"].as_str().unwrap(),
                version["name"].as_str().unwrap()
            ),
            kind: spec["names"]["kind"].as_str().unwrap().into(),
            namespaced: spec["scope"] == "Namespaced",
            schema: version["schema"]["openAPIV3Schema"].clone(),
        })
    }

    /// What a real API server would say of `object`: schema violations, and fields it would
    /// drop (not declared, and not under `x-kubernetes-preserve-unknown-fields`). Metadata is
    /// the server's own, not the CRD's.
    pub fn problems(&self, object: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        if object["apiVersion"] != self.api_version.as_str() || object["kind"] != self.kind.as_str()
        {
            problems.push(format!(
                "{}/{} is not {} {}",
                object["apiVersion"], object["kind"], self.api_version, self.kind
            ));
        }
        if object["metadata"].get("namespace").is_some() != self.namespaced {
            problems.push(format!(
                "namespace {:?} on a {} kind",
                object["metadata"].get("namespace"),
                if self.namespaced {
                    "namespaced"
                } else {
                    "cluster-scoped"
                }
            ));
        }
        let mut schema = self.schema.clone();
        nullable(&mut schema);
        if let Some(p) = schema["properties"].as_object_mut() {
            p.remove("metadata");
        }
        let mut body = object.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("metadata");
        }
        let validator = jsonschema::validator_for(&schema).unwrap();
        problems.extend(validator.iter_errors(&body).map(|e| e.to_string()));
        undeclared(&schema, &body, "", &mut problems);
        problems
    }
}

/// OpenAPI's `nullable`, as JSON Schema says it.
pub fn nullable(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = o.get("type").cloned()
            {
                o.insert("type".into(), serde_json::json!([t, "null"]));
            }
            o.values_mut().for_each(nullable);
        }
        Value::Array(a) => a.iter_mut().for_each(nullable),
        _ => {}
    }
}

/// Fields of `value` its `schema` does not declare (a structural schema prunes them).
fn undeclared(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                match schema["properties"].get(k) {
                    Some(s) => undeclared(s, v, &format!("{at}.{k}"), out),
                    None if schema
                        .get("additionalProperties")
                        .is_some_and(Value::is_object) =>
                    {
                        undeclared(
                            &schema["additionalProperties"],
                            v,
                            &format!("{at}.{k}"),
                            out,
                        )
                    }
                    None => out.push(format!("{at}.{k} is not in the schema (pruned)")),
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                undeclared(&schema["items"], v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}
