//! `docs/reference.md` is generated from the CRD (`src/crd.rs`) and the reasons
//! (`src/controller/decide/reasons.rs`): this test builds it and fails when the committed file
//! differs, so a field, a rule or a reason added without its documentation cannot land.
//! `PIO_WRITE_DOCS=1 cargo test --test docs` writes it.

use std::fmt::Write;

use pio::controller::reasons::Reason;
use serde_json::Value;
use strum::IntoEnumIterator;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");

/// One line of a table cell: no line breaks, no unescaped pipes.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The type of a schema, with what constrains it.
fn type_of(s: &Value) -> String {
    let mut t = match (s["type"].as_str(), s.get("items")) {
        (Some("array"), Some(items)) => format!("[]{}", items["type"].as_str().unwrap_or("object")),
        (Some(t), _) => t.to_string(),
        (None, _) if s.get("x-kubernetes-int-or-string").is_some() => "int or string".into(),
        _ => "object".into(),
    };
    if let Some(e) = s["enum"].as_array() {
        let values: Vec<String> = e
            .iter()
            .filter_map(Value::as_str)
            .map(|v| format!("`{v}`"))
            .collect();
        write!(t, ": {}", values.join(", ")).unwrap();
    }
    if let Some(d) = s.get("default") {
        write!(
            t,
            "; default `{}`",
            d.as_str().map_or(d.to_string(), String::from)
        )
        .unwrap();
    }
    if let Some(p) = s["pattern"].as_str() {
        write!(t, "; pattern `{p}`").unwrap();
    }
    match (s["minLength"].as_u64(), s["maxLength"].as_u64()) {
        (Some(a), Some(b)) => write!(t, "; {a}..{b} characters").unwrap(),
        (None, Some(b)) => write!(t, "; at most {b} characters").unwrap(),
        _ => {}
    }
    t
}

/// Every field under `schema`, depth first, as `path | type | required | description`.
fn fields(schema: &Value, at: &str, out: &mut String) {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (name, s) in props {
        let path = format!("{at}.{name}");
        let description = s["description"].as_str().unwrap_or_default();
        writeln!(
            out,
            "| `{path}` | {} | {} | {} |",
            cell(&type_of(s)),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            cell(description)
        )
        .unwrap();
        if path.ends_with(".conditions") {
            continue; // the standard Condition type, described below
        }
        fields(s, &path, out);
        if s["type"] == "array" {
            fields(&s["items"], &format!("{path}[]"), out);
        }
    }
}

/// Every CEL rule under `schema`, with where it applies.
fn rules(schema: &Value, at: &str, out: &mut String) {
    for r in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let kind = if r["rule"].as_str().unwrap_or_default().contains("oldSelf") {
            "on update"
        } else {
            "always"
        };
        writeln!(
            out,
            "| `{}` | {kind} | {} |",
            if at.is_empty() { "spec" } else { at },
            cell(r["message"].as_str().unwrap_or_default())
        )
        .unwrap();
    }
    for (name, s) in schema["properties"].as_object().into_iter().flatten() {
        let path = if at.is_empty() {
            format!("spec.{name}")
        } else {
            format!("{at}.{name}")
        };
        rules(s, &path, out);
    }
}

const CONDITIONS: &[(&str, &str)] = &[
    (
        "Ready",
        "True once the integration exists and matches the spec, with its values in the status (kstatus; `observedGeneration` says for which generation). Does not wait for the cloud side.",
    ),
    (
        "Reconciling",
        "True while work is under way (creating, configuring, recreating, deleting, retrying a transient error).",
    ),
    (
        "Stalled",
        "True when a human must act; the reason and message say what. Looked at again with backoff (30 s doubling to the resync period), and at once on any change to the resource.",
    ),
    (
        "Trusted",
        "With `spec.trust`: whether the trust object is in place, as its own cloud operator reports.",
    ),
    (
        "Validated",
        "Whether Confluent can use the identity (GCP, Azure; AWS with `aws.validate` or `spec.trust`). Re-checked at every resync.",
    ),
    (
        "Paused",
        "Present while `pim.confluent.cloud/paused` stops all work on the resource.",
    ),
];

const ANNOTATIONS: &[(&str, &str, &str)] = &[
    (
        "pim.confluent.cloud/paused",
        "a ProviderIntegration or its Namespace",
        "`\"true\"` stops all work on the resource (condition `Paused`), until removed.",
    ),
    (
        "pim.confluent.cloud/default-credentials",
        "a Namespace",
        "The environments (comma-separated, or `*`) in which the namespace's resources may use the operator's default credentials (`defaultCredentials.scope: annotated`).",
    ),
    (
        "pim.confluent.cloud/cluster-trust",
        "a Namespace",
        "The cluster-scoped trust objects its resources may write to: `Kind/name`, `Kind/*` or `*`, comma-separated.",
    ),
    (
        "pim.confluent.cloud/pending-create",
        "a ProviderIntegration (written by the operator)",
        "The intent of its first create, recorded before the API call so a crash never makes two integrations; ignored once an id is recorded.",
    ),
    (
        "trust.pim.confluent.cloud/<id>",
        "a shared Principal (written by the operator)",
        "Integration `<id>` (of the resource named in the value) relies on this service principal.",
    ),
    (
        "pim.confluent.cloud/owner",
        "a cluster-scoped trust object (written by the operator)",
        "The `namespace/name` of the ProviderIntegration that created it, with the label `pim.confluent.cloud/owner-uid` (its uid).",
    ),
];

fn reference() -> String {
    let crd = serde_json::to_value(pio::crd::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"]["properties"];
    let mut out = String::new();
    out.push_str("# Reference\n\n");
    out.push_str("Generated from the CRD (`src/crd.rs`) and the reasons (`src/controller/decide/reasons.rs`, their texts in `reason_help.rs`) by\n`tests/docs.rs`, which fails when this file differs from them. Do not edit by hand: run\n`PIO_WRITE_DOCS=1 cargo test --test docs`.\n\n");
    writeln!(
        out,
        "`{}/{}`, kind `{}` (namespaced), short name `{}`, category `{}`. The API version policy is in\n[operations.md](operations.md#the-api-version-v1alpha1).\n",
        crd["spec"]["group"].as_str().unwrap(),
        version["name"].as_str().unwrap(),
        crd["spec"]["names"]["kind"].as_str().unwrap(),
        crd["spec"]["names"]["shortNames"][0].as_str().unwrap(),
        crd["spec"]["names"]["categories"][0].as_str().unwrap(),
    )
    .unwrap();
    out.push_str("## spec\n\n| field | type | required | description |\n|---|---|---|---|\n");
    fields(&schema["spec"], "spec", &mut out);
    out.push_str("\n## Rules the API server enforces\n\nBesides the types and patterns above, these CEL rules; a resource that breaks one is refused\nwith its message.\n\n| at | when | message |\n|---|---|---|\n");
    rules(&schema["spec"], "", &mut out);
    out.push_str("\n## status\n\n| field | type | required | description |\n|---|---|---|---|\n");
    fields(&schema["status"], "status", &mut out);
    out.push_str("\n## Conditions\n\nEach carries `observedGeneration`, `reason`, `message` and `lastTransitionTime`.\n\n| type | meaning |\n|---|---|\n");
    for (t, m) in CONDITIONS {
        writeln!(out, "| `{t}` | {m} |").unwrap();
    }
    out.push_str("\n## Reasons\n\nThe reasons of conditions and events. They are API: never respelled, only added.\n\n| reason | where | meaning, and what to do |\n|---|---|---|\n");
    for r in Reason::iter() {
        let (at, meaning) = r.help();
        writeln!(
            out,
            "| `{}` | {} | {} |",
            r.as_str(),
            cell(at),
            cell(meaning)
        )
        .unwrap();
    }
    out.push_str("\n## Annotations\n\n| annotation | on | meaning |\n|---|---|---|\n");
    for (a, on, m) in ANNOTATIONS {
        writeln!(out, "| `{a}` | {on} | {m} |").unwrap();
    }
    out
}

#[test]
fn the_reference_is_generated_from_the_crd_and_the_reasons() {
    let want = reference();
    if std::env::var_os("PIO_WRITE_DOCS").is_some() {
        std::fs::write(PATH, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        have == want,
        "docs/reference.md differs from the CRD and the reasons; run `PIO_WRITE_DOCS=1 cargo test --test docs` and commit it. First difference at line {}",
        have.lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or(have.lines().count().min(want.lines().count()) + 1, |i| i
                + 1)
    );
}

/// The generator sees what it documents: every spec field with a description, every reason.
#[test]
fn the_reference_names_every_field_and_reason() {
    let r = reference();
    for field in [
        "spec.trust.targetRef.apiVersion",
        "spec.aws.customerIamRoleArn",
        "status.trust.writtenAt",
        "status.externalId",
    ] {
        assert!(r.contains(&format!("| `{field}` |")), "{field}");
    }
    for reason in Reason::iter() {
        assert!(
            r.contains(&format!("| `{}` |", reason.as_str())),
            "{reason}"
        );
    }
    assert!(!r.contains("|  |\n"), "a field without a description");
}
