//! The committed CRD's OpenAPI schema rejects bad input before the operator sees it. The API
//! server matches `pattern`s with RE2 semantics, which the `regex` crate shares; the e2e test
//! checks the same inputs against a real API server when one is available.

mod common;

use common::cel_rules::violations;
use serde_json::{Value, json};

const CRD_FILE: &str = "crds/providerintegrations.pim.confluent.cloud.yaml";

fn spec_schema() -> Value {
    let text = std::fs::read_to_string(CRD_FILE).unwrap();
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The property's pattern and length bounds, as the API server enforces them.
fn accepts(schema: &Value, value: &str) -> bool {
    let pattern = schema["pattern"].as_str().expect("a pattern");
    let re = regex::Regex::new(pattern).expect("an RE2-compatible pattern");
    let n = value.chars().count() as u64;
    re.is_match(value)
        && schema["minLength"].as_u64().is_none_or(|m| n >= m)
        && schema["maxLength"].as_u64().is_none_or(|m| n <= m)
}

#[test]
fn google_service_account_must_be_a_service_account_email() {
    let spec = spec_schema();
    let sa = &spec["properties"]["gcp"]["properties"]["customerGoogleServiceAccount"];
    assert_eq!(
        spec["properties"]["gcp"]["required"][0],
        "customerGoogleServiceAccount"
    );
    for good in [
        "connectors@my-project.iam.gserviceaccount.com",
        "123456789012-compute@developer.gserviceaccount.com",
        "my-app@my-project-123.iam.gserviceaccount.com",
    ] {
        assert!(accepts(sa, good), "{good} should be accepted");
    }
    for bad in [
        "alice@example.com",
        "connectors@my-project",
        "connectors",
        "@my-project.iam.gserviceaccount.com",
        "Connectors@my-project.iam.gserviceaccount.com",
        "a@b@my-project.iam.gserviceaccount.com",
        " connectors@my-project.iam.gserviceaccount.com",
        "connectors@my-project.iam.gserviceaccount.com.evil.example",
    ] {
        assert!(!accepts(sa, bad), "{bad:?} should be rejected");
    }
}

#[test]
fn azure_tenant_id_must_be_a_uuid() {
    let spec = spec_schema();
    let tenant = &spec["properties"]["azure"]["properties"]["customerAzureTenantId"];
    assert_eq!(
        spec["properties"]["azure"]["required"][0],
        "customerAzureTenantId"
    );
    for good in [
        "7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f47",
        "7F3C2A9E-1B4D-4C8E-9A6F-2D5B8E1C0F47",
    ] {
        assert!(accepts(tenant, good), "{good} should be accepted");
    }
    for bad in [
        "tenant-1",
        "7f3c2a9e1b4d4c8e9a6f2d5b8e1c0f47",
        "{7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f47}",
        "7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f4",
        "7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f47 ",
        "contoso.onmicrosoft.com",
    ] {
        assert!(!accepts(tenant, bad), "{bad:?} should be rejected");
    }
}

#[test]
fn provider_enum_and_cel_rules_tie_each_provider_to_its_block() {
    let spec = spec_schema();
    let providers: Vec<&str> = spec["properties"]["provider"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(providers, ["AWS", "GCP", "Azure"]);
    // The CEL rules, evaluated: each provider needs its block, and only it.
    let aws = json!({"environment": "env-1", "provider": "AWS",
        "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/r"}});
    let gcp = json!({"environment": "env-1", "provider": "GCP",
        "gcp": {"customerGoogleServiceAccount": "sa@p.iam.gserviceaccount.com"}});
    let azure = json!({"environment": "env-1", "provider": "Azure",
        "azure": {"customerAzureTenantId": "00000000-0000-0000-0000-000000000001"}});
    for ok in [&aws, &gcp, &azure] {
        assert_eq!(violations(ok, None), Vec::<String>::new(), "{ok}");
    }
    let mut no_block = aws.clone();
    no_block["provider"] = json!("GCP");
    assert_eq!(
        violations(&no_block, None),
        ["provider GCP requires spec.gcp.customerGoogleServiceAccount"]
    );
    let mut two_blocks = gcp.clone();
    two_blocks["azure"] = azure["azure"].clone();
    assert_eq!(
        violations(&two_blocks, None),
        ["set only the block of spec.provider (aws, gcp or azure)"]
    );
    // An observer must say what it observes (`tests/e2e.rs` has a real API server evaluate it).
    let mut blind = gcp.clone();
    blind["managementPolicy"] = json!("Observe");
    assert_eq!(violations(&blind, None).len(), 1);
    blind["displayName"] = json!("gcs");
    assert!(violations(&blind, None).is_empty());
    let mut aws_observer = aws.clone();
    aws_observer["managementPolicy"] = json!("Observe");
    assert!(
        violations(&aws_observer, None).is_empty(),
        "AWS: the role ARN is the key"
    );
    let policies: Vec<&str> = spec["properties"]["managementPolicy"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(policies, ["Manage", "Observe"]);
}

#[test]
fn outputs_configmap_name_must_be_a_dns_subdomain() {
    let spec = spec_schema();
    let name = &spec["properties"]["writeOutputsTo"]["properties"]["name"];
    for good in ["out", "s3-sink-outputs", "a.b-c"] {
        assert!(accepts(name, good), "{good}");
    }
    for bad in ["Out", "-out", "out-", "a_b", "", &"a".repeat(254)] {
        assert!(!accepts(name, bad), "{bad:?}");
    }
}

#[test]
fn existing_aws_resources_stay_valid() {
    // A spec written before GCP and Azure support: still exactly the same fields and rules.
    let spec = spec_schema();
    assert_eq!(
        spec["required"],
        serde_json::json!(["environment", "provider"])
    );
    let arn = &spec["properties"]["aws"]["properties"]["customerIamRoleArn"];
    assert!(accepts(
        arn,
        "arn:aws:iam::123456789012:role/confluent-s3-sink"
    ));
    assert_eq!(
        spec["properties"]["aws"]["required"],
        serde_json::json!(["customerIamRoleArn"])
    );
}

/// `managementPolicy`: an owner may let its integration go and observe it (`Manage` to
/// `Observe`), but an observer never becomes an owner (its deletion would then delete an
/// integration made elsewhere): the API server refuses that update.
#[test]
fn an_observer_cannot_become_an_owner() {
    let base = json!({"environment": "env-1", "provider": "AWS", "integrationId": "dlz-1",
        "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/r"}});
    let with = |policy: Option<&str>| {
        let mut s = base.clone();
        if let Some(p) = policy {
            s["managementPolicy"] = json!(p);
        }
        s
    };
    let (unset, manage, observe) = (with(None), with(Some("Manage")), with(Some("Observe")));
    let refused = |old: &Value, new: &Value| !violations(new, Some(old)).is_empty();
    for (old, new) in [(&observe, &manage), (&observe, &unset)] {
        assert!(refused(old, new), "{old} -> {new}");
        assert!(
            violations(new, Some(old))[0].starts_with("an observer stays one"),
            "{:?}",
            violations(new, Some(old))
        );
    }
    for (old, new) in [
        (&manage, &observe),
        (&unset, &observe),
        (&unset, &manage),
        (&observe, &observe),
        (&manage, &unset),
    ] {
        assert!(!refused(old, new), "{old} -> {new}");
    }
    // On a create there is no old spec: the transition rule is not evaluated.
    assert!(violations(&observe, None).is_empty());
}

/// `spec.trust`: the object must carry this provider's trust and be one of the supported kinds;
/// an IAMPolicyMember cannot be shared; adopted and observed integrations never get a trust.
#[test]
fn a_trust_target_must_fit_the_provider_and_the_integration_must_be_ours() {
    let aws = json!({"environment": "env-1", "provider": "AWS",
        "aws": {"customerIamRoleArn": "arn:aws:iam::123456789012:role/r"}});
    let gcp = json!({"environment": "env-1", "provider": "GCP",
        "gcp": {"customerGoogleServiceAccount": "sa@p.iam.gserviceaccount.com"}});
    let azure = json!({"environment": "env-1", "provider": "Azure",
        "azure": {"customerAzureTenantId": "7f3c2a9e-1b4d-4c8e-9a6f-2d5b8e1c0f47"}});
    let with = |spec: &Value, api: &str, kind: &str, mode: &str| {
        let mut s = spec.clone();
        s["trust"] =
            json!({"targetRef": {"apiVersion": api, "kind": kind, "name": "x"}, "mode": mode});
        s
    };
    let ok = [
        with(&aws, "iam.services.k8s.aws/v1alpha1", "Role", "Own"),
        with(&aws, "iam.aws.m.upbound.io/v1beta1", "Role", "Share"),
        with(&aws, "iam.aws.upbound.io/v1beta1", "Role", "Own"),
        with(
            &gcp,
            "iam.cnrm.cloud.google.com/v1beta1",
            "IAMPolicyMember",
            "Own",
        ),
        with(
            &azure,
            "serviceprincipals.azuread.m.upbound.io/v1beta1",
            "Principal",
            "Share",
        ),
        with(
            &azure,
            "serviceprincipals.azuread.upbound.io/v1beta2",
            "Principal",
            "Own",
        ),
    ];
    for s in &ok {
        assert_eq!(violations(s, None), Vec::<String>::new(), "{s}");
    }
    let refused = [
        (
            with(&aws, "iam.services.k8s.aws/v1alpha1", "Policy", "Own"),
            "supported:",
        ),
        (
            with(&aws, "iam.aws.upbound.io/v1beta2", "Role", "Own"),
            "supported:",
        ),
        (
            with(&gcp, "iam.services.k8s.aws/v1alpha1", "Role", "Own"),
            "this provider's trust",
        ),
        (
            with(
                &gcp,
                "iam.cnrm.cloud.google.com/v1beta1",
                "IAMPolicyMember",
                "Share",
            ),
            "cannot be shared",
        ),
        (
            with(
                &azure,
                "iam.cnrm.cloud.google.com/v1beta1",
                "IAMPolicyMember",
                "Own",
            ),
            "this provider's trust",
        ),
    ];
    for (s, why) in &refused {
        let v = violations(s, None);
        assert!(v.iter().any(|m| m.contains(why)), "{s}: {v:?}");
    }
    let mut adopted = with(&aws, "iam.services.k8s.aws/v1alpha1", "Role", "Own");
    adopted["integrationId"] = json!("dlz-1");
    let mut observed = with(&aws, "iam.services.k8s.aws/v1alpha1", "Role", "Own");
    observed["managementPolicy"] = json!("Observe");
    for s in [adopted, observed] {
        let v = violations(&s, None);
        assert!(
            v.iter().any(|m| m.starts_with("trust is written only")),
            "{s}: {v:?}"
        );
    }
}
