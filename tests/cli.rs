//! The binary's subcommands, run as a user would, and the generated files kept in sync.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_provider-integration-operator");
const CRD_FILE: &str = "crds/providerintegrations.pim.confluent.cloud.yaml";

#[test]
fn crd_subcommand_matches_the_committed_crd() {
    let out = Command::new(BIN).arg("crd").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(CRD_FILE).unwrap();
    assert_eq!(
        printed, committed,
        "{CRD_FILE} is stale: run `cargo run -- crd > {CRD_FILE}`"
    );
    assert_eq!(printed, pio::crd::crd_yaml().unwrap());
}

#[test]
fn chart_crd_template_carries_the_committed_crd() {
    // The chart templates the CRD (so upgrades carry it); its schema is the committed one.
    let template =
        std::fs::read_to_string("charts/provider-integration-operator/templates/crd.yaml").unwrap();
    let committed = std::fs::read_to_string(CRD_FILE).unwrap();
    let spec = &committed[committed.find("\nspec:\n").unwrap()..];
    assert!(
        template.contains(spec),
        "templates/crd.yaml is stale: run .ci/charts --write"
    );
    assert!(template.contains("helm.sh/resource-policy: keep"));
    assert!(
        !std::path::Path::new("charts/provider-integration-operator/crds").exists(),
        "a chart crds/ folder is installed once and never upgraded"
    );
}

#[test]
fn crd_has_descriptions_everywhere_and_kstatus_columns() {
    let crd: serde_json::Value = serde_json::to_value(pio::crd::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(&here, p, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk("spec", schema, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without description (kubectl explain): {missing:?}"
    );
    let cols: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in ["ID", "Provider", "External ID", "Ready", "Age"] {
        assert!(cols.contains(&c), "{c}");
    }
    assert_eq!(
        crd["spec"]["versions"][0]["subresources"]["status"],
        serde_json::json!({})
    );
}

#[test]
fn emulator_help_documents_the_flags() {
    let out = Command::new(BIN)
        .args(["emulator", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--credential",
        "--read-only-credential",
        "--org-quota",
        "--env-quota",
        "--state",
        "--latency-ms",
        "--jitter-ms",
        "--error-rate-429",
        "--error-rate-500",
        "--error-rate-503",
        "--lost-response-rate",
        "--rate-limit",
        "--retry-after-secs",
        "--oversized-body-bytes",
        "--trickle-ms",
        "--looping-next",
    ] {
        assert!(help.contains(flag), "{flag} missing from emulator --help");
    }
}

#[test]
fn run_help_documents_the_flags() {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--context",
        "--namespace",
        "--api-url",
        "--default-credentials-secret",
        "--concurrency",
        "--resync",
        "--log-format",
        "--metrics-addr",
    ] {
        assert!(help.contains(flag), "{flag} missing from run --help");
    }
}

#[test]
fn emulator_subcommand_serves_with_the_demo_key_and_port_zero() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args(["emulator", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{first}"
    );
    assert!(
        second.contains(pio::emulator::DEMO_API_KEY)
            && second.contains(pio::emulator::DEMO_API_SECRET),
        "{second}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        pio::install_crypto_provider();
        reqwest::Client::new()
            .get(format!("{url}/pim/v1/integrations?environment=env-1"))
            .basic_auth(
                pio::emulator::DEMO_API_KEY,
                Some(pio::emulator::DEMO_API_SECRET),
            )
            .send()
            .await
            .unwrap()
            .status()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
}

#[test]
fn bad_flags_fail_early_with_a_message() {
    let out = Command::new(BIN)
        .args([
            "emulator",
            "--error-rate-500",
            "0.8",
            "--error-rate-429",
            "0.5",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 1"));
    let out = Command::new(BIN)
        .args([
            "emulator",
            "--lost-response-rate",
            "2",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lost_response_rate must be between 0 and 1")
    );
    let out = Command::new(BIN)
        .args(["run", "--resync", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));
}

#[test]
fn text_logs_written_to_a_pipe_carry_no_escape_codes() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args([
            "--log-format",
            "text",
            "--log-level",
            "debug",
            "emulator",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    // A request makes the emulator log a line (at debug).
    let _ = std::net::TcpStream::connect(url.trim_start_matches("http://")).map(|mut s| {
        use std::io::Write;
        let _ = s.write_all(
            b"GET /pim/v1/integrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    });
    let mut logged = Vec::new();
    for l in lines.map_while(Result::ok) {
        let done = l.contains("emulator request");
        logged.push(l);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("emulator request") && l.contains("DEBUG")),
        "the request was logged: {logged:?}"
    );
    for l in &logged {
        assert!(!l.contains('\u{1b}'), "escape code in {l:?}");
    }
}

#[test]
fn run_emulator_is_refused_with_api_url_and_says_when_there_is_no_cluster() {
    let out = Command::new(BIN)
        .args([
            "run",
            "--emulator",
            "--api-url",
            "https://api.confluent.cloud",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");

    // A kubeconfig whose cluster does not answer: one line, pointing at the emulator-only demo.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n\
         current-context: x\n",
    )
    .unwrap();
    let start = std::time::Instant::now();
    let out = Command::new(BIN)
        .args(["run", "--emulator", "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("not reachable")
            && lines[0].contains("provider-integration-operator emulator"),
        "{err}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(15));
}
