//! Confluent's published contract (`../shared/confluent-api/`, read in place): the bodies its
//! Terraform provider replays decode with our types and lead `decide` to the right action, and
//! they agree with the OpenAPI files our contract checks use. The traffic of every
//! harness-based test is checked against the same files when its harness is dropped
//! (`tests/common/contract.rs`).

mod common;

use common::contract::{self, Contract};
use pio::controller::decide::{
    self, Decision, DeleteOutcome, Desired, DesiredConfig, Observed, ReadBack,
};
use pio::crd::{CloudProvider, DeletionPolicy, ProviderIntegrationStatus, UpdatePolicy};
use pio::pim::{Integration, IntegrationList, PimError};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MOCK_ENV: &str = "env-00000";

/// The contract's directory, or `None` after saying this test was skipped (outside CI only:
/// `contract::dir` fails under `CI=true`).
fn contract_dir(test: &str) -> Option<PathBuf> {
    let dir = contract::dir();
    if dir.is_none() {
        println!("SKIPPED {test}: Confluent's published contract is not available");
    }
    dir
}

fn integration(dir: &Path, name: &str) -> Integration {
    serde_json::from_value(contract::mock(dir, name))
        .unwrap_or_else(|e| panic!("{name} does not decode as an Integration: {e}"))
}

fn desired(name: &str, config: DesiredConfig) -> Desired {
    Desired {
        environment: MOCK_ENV.into(),
        display_name: name.into(),
        display_name_explicit: true,
        validate: !matches!(config, DesiredConfig::Aws { .. }),
        config,
        deletion_policy: DeletionPolicy::Delete,
        update_policy: UpdatePolicy::Manual,
        adopt_id: None,
        observe: false,
        trust: None,
    }
}

fn tracking(i: &Integration) -> ProviderIntegrationStatus {
    ProviderIntegrationStatus {
        id: Some(i.id.clone()),
        environment: Some(i.environment.id.clone()),
        provider: CloudProvider::from_api_name(&i.provider),
        ..Default::default()
    }
}

#[test]
fn the_contract_is_complete_where_it_is_present() {
    let Some(dir) = contract_dir("the_contract_is_complete_where_it_is_present") else {
        return;
    };
    for f in [
        "pim-v1.openapi.yaml",
        "pim-v2.openapi.yaml",
        "terraform-mocks",
    ] {
        assert!(dir.join(f).exists(), "{} is missing", dir.join(f).display());
    }
    assert!(contract::mocks(&dir).len() >= 10);
}

#[test]
fn every_mock_body_agrees_with_the_openapi_files() {
    let Some(dir) = contract_dir("every_mock_body_agrees_with_the_openapi_files") else {
        return;
    };
    let c = Contract::load_from(&dir);
    for (name, body) in contract::mocks(&dir) {
        let v2 = body["api_version"] == "pim/v2";
        let schema = match body["kind"].as_str() {
            Some("Integration") if v2 => "/components/schemas/pim.v2.Integration",
            Some("Integration") => "/components/schemas/pim.v1.Integration",
            Some("IntegrationList") => "/components/schemas/pim.v1.IntegrationList",
            // The legacy error shape is not in the OpenAPI files; its own test is below.
            _ => continue,
        };
        c.validate(v2, false, schema, &body)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_v2_draft_is_not_configured_yet_and_the_flow_resumes_with_the_patch() {
    let Some(dir) =
        contract_dir("a_v2_draft_is_not_configured_yet_and_the_flow_resumes_with_the_patch")
    else {
        return;
    };
    for (mock, config) in [
        (
            "provider_integration_setup__create_gcp_provider_integration_setup.json",
            DesiredConfig::Gcp {
                customer_google_service_account: "test-sa@test-project.iam.gserviceaccount.com"
                    .into(),
            },
        ),
        (
            "provider_integration_setup__create_azure_provider_integration_setup.json",
            DesiredConfig::Azure {
                customer_azure_tenant_id: "12345678-1234-1234-1234-123456789abc".into(),
            },
        ),
    ] {
        let draft = integration(&dir, mock);
        assert!(draft.is_draft(), "{mock}");
        assert!(
            draft.config.is_some(),
            "{mock}: the DRAFT carries Confluent's identity"
        );
        let d = desired(&draft.display_name, config);
        // Not "configured differently": not configured yet.
        assert_eq!(d.config.matches(&draft), None, "{mock}");
        assert!(
            decide::changed_fields(&d, &draft, false).is_empty(),
            "{mock}"
        );
        // Tracked by id (recorded before the PATCH): in sync, and the apply path configures it.
        match decide::decide(&d, &tracking(&draft), Observed::Found(draft.clone())) {
            Decision::InSync(i) => assert!(i.is_draft()),
            other => panic!("{mock}: {other:?}"),
        }
        // Found by its intent after a crash: claimed, never stalled or recreated.
        let mut s = ProviderIntegrationStatus {
            pending_create: Some(d.intent()),
            ..Default::default()
        };
        assert!(matches!(
            decide::decide(&d, &s, Observed::ByKey(vec![draft.clone()])),
            Decision::Claim(_)
        ));
        // With Recreate it is still not deleted.
        s = tracking(&draft);
        let recreate = Desired {
            update_policy: UpdatePolicy::Recreate,
            ..d.clone()
        };
        assert!(matches!(
            decide::decide(&recreate, &s, Observed::Found(draft.clone())),
            Decision::InSync(_)
        ));
        // Adoption of a DRAFT is not a mismatch either.
        let adopt = Desired {
            adopt_id: Some(draft.id.clone()),
            ..d.clone()
        };
        assert!(matches!(
            decide::decide(
                &adopt,
                &ProviderIntegrationStatus::default(),
                Observed::Found(draft)
            ),
            Decision::Adopt(_)
        ));
    }
}

#[test]
fn a_configured_v2_integration_is_in_sync_or_a_real_change() {
    let Some(dir) = contract_dir("a_configured_v2_integration_is_in_sync_or_a_real_change") else {
        return;
    };
    let gcp = integration(
        &dir,
        "provider_integration_authorization__update_gcp_provider_integration_authorization.json",
    );
    assert!(!gcp.is_draft());
    assert_eq!(
        CloudProvider::from_api_name(&gcp.provider),
        Some(CloudProvider::Gcp)
    );
    assert_eq!(
        gcp.gcp().unwrap().google_service_account.as_deref(),
        Some("cspi-def456@cflt-cspi-prod-1.iam.gserviceaccount.com")
    );
    let same = desired(
        "gcp-test-integration",
        DesiredConfig::Gcp {
            customer_google_service_account: "test-sa@test-project.iam.gserviceaccount.com".into(),
        },
    );
    assert!(matches!(
        decide::decide(&same, &tracking(&gcp), Observed::Found(gcp.clone())),
        Decision::InSync(_)
    ));
    let other = desired(
        "gcp-test-integration",
        DesiredConfig::Gcp {
            customer_google_service_account: "other@test-project.iam.gserviceaccount.com".into(),
        },
    );
    assert!(matches!(
        decide::decide(&other, &tracking(&gcp), Observed::Found(gcp)),
        Decision::Stall { .. }
    ));
    let azure = integration(
        &dir,
        "provider_integration_setup__read_created_azure_provider_integration_setup.json",
    );
    assert_eq!(
        CloudProvider::from_api_name(&azure.provider),
        Some(CloudProvider::Azure)
    );
    let d = desired(
        "azure-test-integration",
        DesiredConfig::Azure {
            customer_azure_tenant_id: "12345678-1234-1234-1234-123456789ABC".into(),
        },
    );
    assert!(matches!(
        decide::decide(&d, &tracking(&azure), Observed::Found(azure)),
        Decision::InSync(_)
    ));
}

#[test]
fn aws_mocks_decode_and_usages_block_deletion() {
    let Some(dir) = contract_dir("aws_mocks_decode_and_usages_block_deletion") else {
        return;
    };
    let created = integration(
        &dir,
        "provider_integration__create_aws_provider_integration.json",
    );
    let d = desired(
        "s3_provider_integration",
        DesiredConfig::Aws {
            customer_iam_role_arn: "arn:aws:iam::000000000000:role/my-test-aws-role".into(),
        },
    );
    assert!(matches!(
        decide::decide(&d, &tracking(&created), Observed::Found(created.clone())),
        Decision::InSync(_)
    ));
    assert_eq!(
        created.aws().unwrap().external_id.as_deref(),
        Some("95c35493-41aa-44f8-9154-5a25cbbc1865")
    );
    let in_use = integration(
        &dir,
        "provider_integration__read_created_aws_provider_integration.json",
    );
    assert!(matches!(
        decide::delete_outcome("refused", ReadBack::Found(&in_use)),
        DeleteOutcome::InUse(u) if u.len() == 1
    ));
    let list: IntegrationList = serde_json::from_value(contract::mock(
        &dir,
        "provider_integration__read_aws_provider_integrations.json",
    ))
    .expect("a list whose metadata is {} decodes");
    assert_eq!(list.data.len(), 1);
    assert!(list.metadata.next.is_none());
}

#[test]
fn the_legacy_404_shape_reads_as_not_found_with_its_message() {
    let Some(dir) = contract_dir("the_legacy_404_shape_reads_as_not_found_with_its_message") else {
        return;
    };
    let body: Value = contract::mock(
        &dir,
        "provider_integration__read_deleted_aws_provider_integration.json",
    );
    let e = PimError::from_response(404, None, &body.to_string());
    assert!(
        matches!(&e, PimError::NotFound { detail } if detail == "Provider Integration dlz-f3a90de not found"),
        "{e:?}"
    );
    // And the spec's 404 example, with a title only.
    let e = PimError::from_response(
        404,
        None,
        r#"{"errors":[{"id":"x","status":"404","title":"Not Found"}]}"#,
    );
    assert!(
        matches!(&e, PimError::NotFound { detail } if detail == "Not Found"),
        "{e:?}"
    );
}
