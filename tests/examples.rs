//! `examples/` as a user meets it: each file is valid against the committed CRD, and
//! `run --emulator` (the README's first command, through the same wiring as the binary) makes
//! every example Ready on a clean in-memory API server, then lets each go as its policy says.

mod common;

use std::{path::PathBuf, time::Duration};

use common::{FakeKube, fake_kube};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use pio::controller::decide::trust::TrustKind;
use pio::crd::ProviderIntegration;
use serde_json::Value;

const NS: &str = "default";

/// Every document of `examples/`, with its file: the `ProviderIntegration`s, and the cloud
/// operators' objects a trust example shares (a team's Role).
fn documents() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            docs.into_iter().map(move |d| (file.clone(), d))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn examples() -> Vec<(String, Value)> {
    documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] == "ProviderIntegration")
        .collect()
}

/// The cloud operators' objects of the examples, with their trust kind.
fn cloud_objects() -> Vec<(String, TrustKind, Value)> {
    documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] != "ProviderIntegration")
        .map(|(f, d)| {
            let kind = TrustKind::of(
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            )
            .unwrap_or_else(|| panic!("{f}: not a trust kind"));
            (f, kind, d)
        })
        .collect()
}

/// The CRD's OpenAPI schema, as the API server checks a resource (structural: the
/// `x-kubernetes-*` keys are the server's own and ignored here; the CEL rules are evaluated by
/// `common::cel_rules`, and by a real server in `tests/e2e.rs`).
fn crd_schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string("crds/providerintegrations.pim.confluent.cloud.yaml").unwrap();
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    common::cloud_crds::nullable(&mut schema);
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_example_is_valid_against_the_crd() {
    let schema = crd_schema();
    let all = examples();
    assert!(all.len() >= 5, "{} examples", all.len());
    let mut seen = std::collections::BTreeSet::new();
    for (file, doc) in &all {
        assert_eq!(doc["kind"], "ProviderIntegration", "{file}");
        assert_eq!(doc["apiVersion"], "pim.confluent.cloud/v1alpha1", "{file}");
        let errors: Vec<String> = schema.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        // The CEL rules, as the API server evaluates them.
        let broken = common::cel_rules::violations(&doc["spec"], None);
        assert!(broken.is_empty(), "{file}: {broken:?}");
        let provider = doc["spec"]["provider"].as_str().unwrap();
        let blocks: Vec<&str> = ["aws", "gcp", "azure"]
            .into_iter()
            .filter(|b| doc["spec"].get(*b).is_some())
            .collect();
        assert_eq!(blocks, [provider.to_ascii_lowercase()], "{file}");
        seen.insert(provider.to_string());
        // It goes where `kubectl apply` puts it: the current namespace.
        assert!(doc["metadata"].get("namespace").is_none(), "{file}");
    }
    assert_eq!(seen.len(), 3, "an example for each cloud: {seen:?}");
    // The variants the README promises.
    let has = |f: &dyn Fn(&Value) -> bool| all.iter().any(|(_, d)| f(&d["spec"]));
    assert!(has(&|s| s.get("writeOutputsTo").is_some()));
    assert!(has(&|s| s.get("writeOutputsTo").is_none()));
    assert!(has(&|s| s["deletionPolicy"] == "Orphan"));
    assert!(has(
        &|s| s["integrationId"] == pio::emulator::EXAMPLE_EXISTING_ID
    ));
    assert!(
        all.iter()
            .all(|(_, d)| d["spec"]["environment"] == pio::emulator::EXAMPLE_ENVIRONMENT)
    );
    // A trust example for each cloud operator's kind, owned and shared.
    let trusts: Vec<(TrustKind, &str)> = all
        .iter()
        .filter_map(|(_, d)| {
            let t = d["spec"].get("trust")?;
            let r = &t["targetRef"];
            let kind = TrustKind::of(r["apiVersion"].as_str()?, r["kind"].as_str()?)?;
            Some((kind, t["mode"].as_str().unwrap_or("Own")))
        })
        .collect();
    for (kind, mode) in [
        (TrustKind::AckRole, "Own"),
        (TrustKind::CrossplaneRole, "Share"),
        (TrustKind::PolicyMember, "Own"),
        (TrustKind::CrossplanePrincipal, "Own"),
    ] {
        assert!(
            trusts.contains(&(kind, mode)),
            "{kind:?} {mode}: {trusts:?}"
        );
    }
    // The team's objects a shared example needs are valid against their published CRDs.
    for (file, kind, doc) in cloud_objects() {
        let Some(crd) = common::cloud_crds::Crd::load(common::cloud_crds::file_of(kind)) else {
            println!(
                "SKIPPED every_example_is_valid_against_the_crd ({file}): the cloud operators' CRDs are not available"
            );
            continue;
        };
        let mut doc = doc.clone();
        doc["metadata"]["namespace"] = NS.into();
        let problems = crd.problems(&doc);
        assert!(problems.is_empty(), "{file}: {problems:?}");
    }
}

/// `kubectl apply -f crds/ && cargo run --release -- run --emulator`, then `kubectl apply -f
/// examples/` and `kubectl get cpi -A`: every example Ready with its id, no Secret, no grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_emulator_makes_every_example_ready_from_a_clean_start() {
    pio::install_crypto_provider();
    let fake = FakeKube::new();
    let client = fake.client(NS);
    let args = common::run_args(&["--emulator", "--metrics-addr", "127.0.0.1:0"]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(pio::run::run_with(
        args,
        client.clone(),
        Default::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let api: Api<ProviderIntegration> = Api::namespaced(client.clone(), NS);
    // The cloud operators' CRDs, as a cluster running them has them (nothing reconciles their
    // objects here: the trust examples wait for them, and say so).
    let with_cloud_crds = common::cloud_crds::dir().is_some();
    let mut all = examples();
    if with_cloud_crds {
        use strum::IntoEnumIterator;
        let dir = common::cloud_crds::dir().unwrap();
        for kind in TrustKind::iter() {
            let text =
                std::fs::read_to_string(dir.join(common::cloud_crds::file_of(kind))).unwrap();
            fake.install_crd(&serde_saphyr::from_str(&text).unwrap());
        }
        for (file, kind, doc) in cloud_objects() {
            let ar = kube::core::ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
                kind.plural(),
            );
            let objects: Api<kube::api::DynamicObject> =
                Api::namespaced_with(client.clone(), NS, &ar);
            let obj: kube::api::DynamicObject = serde_json::from_value(doc).unwrap();
            objects
                .create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    } else {
        println!(
            "SKIPPED run_emulator_makes_every_example_ready (trust examples): the cloud operators' CRDs are not available"
        );
        all.retain(|(_, d)| d["spec"].get("trust").is_none());
    }
    for (file, doc) in &all {
        let obj = fake_kube::as_kubectl_applied(
            doc["apiVersion"].as_str().unwrap(),
            doc["kind"].as_str().unwrap(),
            NS,
            doc["metadata"]["name"].as_str().unwrap(),
            doc["spec"].clone(),
        );
        let pi: ProviderIntegration = serde_json::from_value(obj).unwrap();
        let pp = PostParams {
            field_manager: Some(fake_kube::KUBECTL_MANAGER.into()),
            ..Default::default()
        };
        api.create(&pp, &pi)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    let names: Vec<String> = all
        .iter()
        .map(|(_, d)| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let list = api.list(&Default::default()).await.unwrap();
        let ready: Vec<ProviderIntegration> =
            list.items.into_iter().filter(|p| p.is_ready()).collect();
        if ready.len() == names.len() {
            break ready;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all Ready: {:#?}",
            api.list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| (p.metadata.name.clone(), p.status.clone()))
                .collect::<Vec<_>>()
        );
        fake.wait_change(Duration::from_millis(200)).await;
    };
    println!("kubectl get cpi -A (in-memory API server, run --emulator):");
    for p in &ready {
        let s = p.status.as_ref().unwrap();
        let ready = p.condition("Ready").unwrap();
        println!(
            "{NS}  {:<20} {:<12} {:?}  Ready={}  {}",
            p.metadata.name.as_deref().unwrap_or_default(),
            s.id.as_deref().unwrap_or_default(),
            s.provider,
            ready.status,
            ready.message
        );
        assert!(
            ready.message.starts_with(pio::run::EMULATOR_NOTICE),
            "every Ready message says nothing is real: {}",
            ready.message
        );
        assert!(s.id.is_some());
    }
    let by_name = |n: &str| {
        ready
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .unwrap()
    };
    assert_eq!(
        by_name("made-in-the-console")
            .status
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some(pio::emulator::EXAMPLE_EXISTING_ID)
    );
    let aws = by_name("s3-sink").status.clone().unwrap();
    assert!(aws.external_id.is_some() && aws.iam_role_arn.is_some());
    assert!(
        by_name("gcs-sink")
            .status
            .as_ref()
            .unwrap()
            .google_service_account
            .is_some()
    );
    assert!(
        by_name("blob-sink")
            .status
            .as_ref()
            .unwrap()
            .confluent_multi_tenant_app_id
            .is_some()
    );
    for cm in ["s3-sink-outputs", "gcs-sink-outputs"] {
        assert!(fake.get("configmaps", NS, cm).is_some(), "{cm}");
    }
    // Each trust example: its object written, and the trust waiting for the cloud operator,
    // which does not run here, and nothing more.
    for (file, doc) in all.iter().filter(|(_, d)| d["spec"].get("trust").is_some()) {
        let p = by_name(doc["metadata"]["name"].as_str().unwrap());
        let t = p
            .condition(pio::crd::TRUSTED)
            .unwrap_or_else(|| panic!("{file}: no Trusted"));
        assert_eq!(
            (t.status.as_str(), t.reason.as_str()),
            ("Unknown", "AwaitingCloudOperator"),
            "{file}: {}",
            t.message
        );
        assert!(
            t.message.starts_with("waiting for"),
            "{file}: {}",
            t.message
        );
        println!("{file}: Trusted=Unknown  {}", t.message);
        let r = &doc["spec"]["trust"]["targetRef"];
        let kind = TrustKind::of(
            r["apiVersion"].as_str().unwrap(),
            r["kind"].as_str().unwrap(),
        )
        .unwrap();
        let plural = format!("{}.{}", kind.plural(), kind.group());
        assert!(
            fake.get(&plural, NS, r["name"].as_str().unwrap()).is_some(),
            "{file}: the trust object"
        );
    }

    // `kubectl delete -f examples/`: every finalizer runs (orphaned or deleted, as each says).
    for n in &names {
        api.delete(n, &DeleteParams::default()).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "not all deleted");
        fake.wait_change(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    let ended = tokio::time::timeout(Duration::from_secs(10), operator)
        .await
        .expect("the operator stops when asked")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
}
