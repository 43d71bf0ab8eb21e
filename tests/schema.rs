//! The committed CRD's OpenAPI schema rejects bad input before the operator sees it. The API
//! server matches `pattern`s with RE2 semantics, which the `regex` crate shares; the e2e test
//! checks the same inputs against a real API server when one is available.

use serde_json::Value;

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
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    for rule in [
        "self.provider != 'AWS' || has(self.aws)",
        "self.provider != 'GCP' || has(self.gcp)",
        "self.provider != 'Azure' || has(self.azure)",
    ] {
        assert!(rules.contains(&rule), "missing CEL rule {rule}: {rules:?}");
    }
    assert!(
        rules.iter().any(|r| r.contains("<= 1")),
        "at most one provider block: {rules:?}"
    );
    // An observer must say what it observes (`tests/e2e.rs` has a real API server evaluate it).
    assert!(
        rules.contains(
            &"!has(self.managementPolicy) || self.managementPolicy != 'Observe' || has(self.integrationId) || self.provider == 'AWS' || has(self.displayName)"
        ),
        "{rules:?}"
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
