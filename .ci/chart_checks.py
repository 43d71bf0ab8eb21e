"""Checks of charts/provider-integration-operator and deploy/ (run by .ci/charts).

Every check is a function named check_*; each failure is an AssertionError with the reason.
Prints one line per check and a closing 'N passed, N failed' line.
"""

import json
import os
import pathlib
import subprocess
import sys
import traceback

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "provider-integration-operator"
DEPLOY = ROOT / "deploy"
CRD_FILE = "providerintegrations.pim.confluent.cloud.yaml"
K8S_VERSION = "1.33"
# The oldest Kubernetes minor a major managed service still supports (EKS extended support for
# 1.31 runs to 2026-11-26; 1.30's ended 2026-07-23). Chart.yaml, the README and the CRD agree.
K8S_FLOOR = "1.31"
# A minor whose API server rejects the CRD (CEL rules' `reason`/`fieldPath` need 1.28): the floor
# check must fail there, or it checks nothing.
K8S_TOO_OLD = "1.27"
RELEASE, NAMESPACE = "pio", "pim-system"

# Every documented option, alone and together.
TRUST_KEYS = ["ackRole", "crossplaneRole", "crossplaneClusterRole", "configConnectorPolicyMember", "crossplanePrincipal", "crossplaneClusterPrincipal"]

SCENARIOS = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "existing-secret": {"defaultCredentials": {"existingSecret": "confluent-cloud"}},
    "created-secret": {"defaultCredentials": {"create": True, "apiKey": "KEY", "apiSecret": "SECRET"}},
    "namespaced-with-secret": {
        "watchNamespaces": ["team-a"],
        "defaultCredentials": {"existingSecret": "confluent-cloud"},
    },
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "network-policy": {"networkPolicy": {"enabled": True, "metricsNamespaceSelector": {"matchLabels": {"name": "monitoring"}}}},
    "no-service": {"metrics": {"service": {"enabled": False}}, "serviceAccount": {"create": False, "name": "existing"}},
    "two-replicas": {"replicaCount": 2},
    "no-leader-election": {"leaderElection": {"enabled": False}},
    "trust-all": {"trust": {k: True for k in TRUST_KEYS}},
    "trust-some-namespaced": {"watchNamespaces": ["team-a"], "trust": {"ackRole": True, "crossplaneClusterPrincipal": True}},
    "everything": {
        "watchNamespaces": ["team-a", "pim-system"],
        "defaultCredentials": {"create": True, "apiKey": "KEY", "apiSecret": "SECRET"},
        "metrics": {"port": 9090, "serviceMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True},
        "image": {"repository": "registry.example/pio", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"a": "b"},
        "concurrency": 8,
        "resync": "10m",
        "logFormat": "text",
        "apiUrl": "http://pim-emulator:8090",
    },
}


def render(values):
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return out, docs


def rendered_manifest(values):
    """The rendered templates as one YAML stream, as deploy/ stores it."""
    out, _ = render(values)
    parts = [out[p].strip() for p in sorted(out) if not p.endswith("NOTES.txt") and out[p].strip()]
    return "# Generated from charts/provider-integration-operator with default values by `.ci/charts --write`.\n" + "\n---\n".join(parts) + "\n"


def kinds(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def check_lint_every_scenario():
    for name, values in SCENARIOS.items():
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
        assert not bad, f"{name}: {bad}"


def check_manifests_validate_strictly():
    for name, values in SCENARIOS.items():
        _, docs = render(values)
        assert docs, name
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                assert doc["spec"]["endpoints"][0]["port"] == "http-metrics", name
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
    for f in sorted(DEPLOY.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def check_values_schema_rejects_wrong_types():
    bad = [
        {"replicaCount": "two"},
        {"replicaCount": 11},
        {"leaderElection": {"enabled": "yes"}},
        {"concurrency": 0},
        {"logFormat": "xml"},
        {"resync": "soon"},
        {"watchNamespaces": "team-a"},
        {"watchNamespaces": ["Team_A"]},
        {"image": {"pullPolicy": "Sometimes", "repository": "x"}},
        {"metrics": {"port": "http"}},
        {"unknownKey": True},
        {"defaultCredentials": {"create": "yes"}},
        {"trust": {"ackRole": "yes"}},
        {"trust": {"iamPolicy": True}},
    ]
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema({})
        for values in bad:
            try:
                chart.validate_schema(values)
            except helm.HelmValuesError:
                continue
            raise AssertionError(f"schema accepted {values}")


def check_rbac_equals_the_calls_in_the_code():
    everything = json.loads(os.environ["PIO_RBAC_RULES"])
    rules = [r for r in everything if not r.get("trust")]
    want = {(r["apiGroup"], r["resource"], v) for r in rules if not r["ownNamespace"] and not r["cluster"] for v in r["verbs"]}
    own = {(r["apiGroup"], r["resource"], v) for r in rules if r["ownNamespace"] for v in r["verbs"]}
    cluster = {(r["apiGroup"], r["resource"], v) for r in rules if r["cluster"] for v in r["verbs"]}
    assert want and own and cluster, "no rules from the binary"

    def trust(keys, cluster_scoped):
        return {(r["apiGroup"], r["resource"], v) for r in everything
                if r.get("trust") in keys and r["cluster"] == cluster_scoped for v in r["verbs"]}

    assert {r["trust"] for r in everything if r.get("trust")} == set(TRUST_KEYS)

    def granted(rules):
        return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}

    _, docs = render({})
    [cluster_role] = kinds(docs, "ClusterRole")
    assert granted(cluster_role["rules"]) == want | cluster, granted(cluster_role["rules"]) ^ (want | cluster)
    [lease_role] = kinds(docs, "Role")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert granted(lease_role["rules"]) == own, granted(lease_role["rules"]) ^ own
    _, docs = render(SCENARIOS["no-leader-election"])
    assert not kinds(docs, "Role"), "no Lease permissions without leader election"
    _, docs = render(SCENARIOS["namespaced-with-secret"])
    # Namespace-scoped: only the cluster-scoped kinds (Namespaces) in a ClusterRole.
    [namespaces_role] = kinds(docs, "ClusterRole")
    assert granted(namespaces_role["rules"]) == cluster, granted(namespaces_role["rules"]) ^ cluster
    [namespaces_binding] = kinds(docs, "ClusterRoleBinding")
    assert namespaces_binding["roleRef"]["name"] == namespaces_role["metadata"]["name"]
    assert namespaces_binding["subjects"][0]["namespace"] == NAMESPACE
    roles = {r["metadata"]["namespace"] + "/" + r["metadata"]["name"]: r for r in kinds(docs, "Role")}
    assert granted(roles[f"{NAMESPACE}/{RELEASE}-provider-integration-operator-leader-election"]["rules"]) == own
    main = roles[f"team-a/{RELEASE}-provider-integration-operator"]
    assert granted(main["rules"]) == want
    creds = roles[f"{NAMESPACE}/{RELEASE}-provider-integration-operator-credentials"]
    assert creds["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["confluent-cloud"], "verbs": ["get"]}]
    bindings = kinds(docs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", NAMESPACE}
    for b in bindings:
        assert b["subjects"][0]["namespace"] == NAMESPACE
    # Trust kinds: each one granted only when turned on, namespaced ones where resources are,
    # cluster-scoped ones cluster-wide.
    _, docs = render(SCENARIOS["trust-all"])
    [cluster_role] = kinds(docs, "ClusterRole")
    all_trust = trust(TRUST_KEYS, False) | trust(TRUST_KEYS, True)
    assert granted(cluster_role["rules"]) == want | cluster | all_trust, granted(cluster_role["rules"]) ^ (want | cluster | all_trust)
    _, docs = render(SCENARIOS["trust-some-namespaced"])
    some = ["ackRole", "crossplaneClusterPrincipal"]
    [namespaces_role] = kinds(docs, "ClusterRole")
    assert granted(namespaces_role["rules"]) == cluster | trust(some, True)
    roles = {r["metadata"]["namespace"] + "/" + r["metadata"]["name"]: r for r in kinds(docs, "Role")}
    assert granted(roles[f"team-a/{RELEASE}-provider-integration-operator"]["rules"]) == want | trust(some, False)


def check_pod_is_restricted():
    for name, values in SCENARIOS.items():
        _, docs = render(values)
        [dep] = kinds(docs, "Deployment")
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert "hostNetwork" not in pod and "hostPID" not in pod, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert sc.get("privileged") is False, name
            assert c["resources"]["requests"] and c["resources"]["limits"], name
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name


def check_values_reach_the_operator():
    _, docs = render(SCENARIOS["everything"])
    [dep] = kinds(docs, "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    for a in ["--leader-election", "--lease-name=pio-provider-integration-operator", "--namespace=team-a", "--namespace=pim-system", "--concurrency=8", "--resync=10m", "--log-format=text",
              "--metrics-addr=0.0.0.0:9090", "--api-url=http://pim-emulator:8090",
              f"--default-credentials-secret={NAMESPACE}/{RELEASE}-provider-integration-operator-credentials"]:
        assert a in args, (a, args)
    assert c["image"] == "registry.example/pio:1.2.3"
    # Every flag the chart passes is one the binary accepts.
    help_text = subprocess.run(["cargo", "run", "--locked", "--quiet", "--", "run", "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for a in args[1:]:
        flag = a.split("=")[0]
        assert flag in help_text, f"{flag} is not a flag of `run`"
    [secret] = kinds(docs, "Secret")
    assert secret["stringData"] == {"apiKey": "KEY", "apiSecret": "SECRET"}
    # Default image tag is the appVersion, which is the crate version.
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = (ROOT / "Cargo.toml").read_text()
    version = next(l.split('"')[1] for l in cargo.splitlines() if l.startswith("version = "))
    assert chart["appVersion"] == version, (chart["appVersion"], version)
    _, docs = render({})
    [dep] = kinds(docs, "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":" + version)


def check_created_secret_needs_both_values():
    with helm.Chart.load(str(CHART)) as chart:
        try:
            chart.render({"defaultCredentials": {"create": True, "apiKey": "K"}}, name=RELEASE, namespace=NAMESPACE)
        except helm.HelmRenderError as e:
            assert "apiSecret" in str(e)
            return
    raise AssertionError("rendered a Secret without apiSecret")


def crd_template():
    """templates/crd.yaml: crds/ as a template, behind crds.enabled, kept on uninstall with
    crds.keep. Helm installs a chart's crds/ folder once and never upgrades it; a template is
    applied on every install and upgrade."""
    source = (ROOT / "crds" / CRD_FILE).read_text()
    assert "{{" not in source, "the CRD holds template syntax"
    head = "metadata:\n  name: providerintegrations.pim.confluent.cloud\n"
    assert head in source, "unexpected CRD metadata"
    meta = head + (
        "  {{- if .Values.crds.keep }}\n"
        "  annotations:\n"
        "    # Uninstalling the chart must not delete every user's resources with their CRD.\n"
        "    helm.sh/resource-policy: keep\n"
        "  {{- end }}\n"
        "  labels:\n"
        "    {{- include \"pio.labels\" . | nindent 4 }}\n"
    )
    body = source.replace(head, meta, 1).removeprefix("---\n")
    return (
        "# Generated from crds/ by `.ci/charts --write`; a check fails when they differ.\n"
        "{{- if .Values.crds.enabled }}\n" + body + "{{- end }}\n"
    )


def rendered_crds(values, is_install=True):
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=is_install)
    docs = [d for path, text in out.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]
    return kinds(docs, "CustomResourceDefinition")


def check_crds_in_sync_everywhere():
    source = yaml.safe_load((ROOT / "crds" / CRD_FILE).read_text())
    assert (CHART / "templates" / "crd.yaml").read_text() == crd_template(), "templates/crd.yaml is stale: run .ci/charts --write"
    assert not (CHART / "crds").exists(), "a crds/ folder would be installed once and never upgraded"
    [crd] = rendered_crds({})
    labels = crd["metadata"].pop("labels")
    annotations = crd["metadata"].pop("annotations")
    assert labels["app.kubernetes.io/managed-by"] == "Helm", labels
    assert annotations == {"helm.sh/resource-policy": "keep"}, annotations
    assert crd == source, "the chart's CRD differs from crds/"
    deployed = [d for d in yaml.safe_load_all((DEPLOY / "operator.yaml").read_text()) if d and d["kind"] == "CustomResourceDefinition"]
    assert len(deployed) == 1 and deployed[0]["spec"] == source["spec"], "deploy/ carries another CRD"


def check_crd_is_carried_by_upgrades_and_kept_on_uninstall():
    for is_install in (True, False):
        [crd] = rendered_crds({}, is_install=is_install)
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", is_install
        [crd] = rendered_crds({"crds": {"keep": False}}, is_install=is_install)
        assert "annotations" not in crd["metadata"], is_install
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
        assert rendered_crds({"crds": {"enabled": False}}, is_install=is_install) == [], is_install


def check_crd_and_manifests_fit_the_kubernetes_floor():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={K8S_FLOOR}.0-0", chart["kubeVersion"]
    assert f"Kubernetes {K8S_FLOOR}" in (ROOT / "README.md").read_text(), "the README names another floor"
    crd = yaml.safe_load((ROOT / "crds" / CRD_FILE).read_text())
    kubernetes_validate.validate(crd, K8S_FLOOR, strict=True)
    for name, values in SCENARIOS.items():
        _, docs = render(values)
        for doc in docs:
            if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
                kubernetes_validate.validate(doc, K8S_FLOOR, strict=True)
    try:
        kubernetes_validate.validate(crd, K8S_TOO_OLD, strict=True)
    except kubernetes_validate.ValidationError:
        pass
    else:
        raise AssertionError(f"the floor check would pass on {K8S_TOO_OLD} too: it checks nothing")
    report = helm.lint(str(CHART), {}, strict=True, namespace=NAMESPACE, kube_version=f"v{K8S_FLOOR}.0")
    assert not [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", []), report


def check_deploy_matches_chart_defaults():
    assert (DEPLOY / "operator.yaml").read_text() == rendered_manifest({}), "deploy/operator.yaml is stale: run .ci/charts --write"
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds_ = sorted({d["kind"] for d in docs})
    assert kinds_ == ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment", "Namespace", "Role", "RoleBinding", "Service", "ServiceAccount"], kinds_


def write():
    DEPLOY.mkdir(exist_ok=True)
    (CHART / "templates" / "crd.yaml").write_text(crd_template())
    (DEPLOY / "operator.yaml").write_text(rendered_manifest({}))
    print("wrote the chart's templates/crd.yaml and deploy/")


def check_argocd_health_script_from_the_docs():
    """docs/operations.md's Argo CD health check, run in Lua 5.1 (Argo CD's gopher-lua dialect)."""
    import lupa.lua51 as lua51

    readme = (ROOT / "docs" / "operations.md").read_text()
    marker = "<!-- argocd-health -->\n```yaml\n"
    assert marker in readme, "docs/operations.md has no Argo CD health block"
    block = readme.split(marker, 1)[1].split("```", 1)[0]
    script = yaml.safe_load(block)["data"]["resource.customizations.health.pim.confluent.cloud_ProviderIntegration"]

    def health(obj):
        lua = lua51.LuaRuntime()
        fn = lua.eval("function(obj) " + script + " end")
        out = fn(lua.table_from(obj, recursive=True))
        return out["status"], out["message"]

    def cond(type_, status, reason, gen, message=""):
        return {"type": type_, "status": status, "reason": reason, "observedGeneration": gen, "message": message}

    def obj(gen, *conditions):
        o = {"metadata": {"name": "x", "generation": gen}}
        if conditions:
            o["status"] = {"conditions": list(conditions)}
        return o

    ready = cond("Ready", "True", "Synced", 2, "integration cspi-1 is in sync")
    cases = [
        (obj(1), "Progressing"),
        (obj(2, ready, cond("Reconciling", "False", "Synced", 2), cond("Stalled", "False", "Synced", 2),
             cond("Validated", "False", "ValidationFailed", 2, "grant it")), "Healthy"),
        (obj(3, ready), "Progressing"),
        (obj(2, cond("Ready", "False", "Creating", 2, "creating"), cond("Reconciling", "True", "Creating", 2)), "Progressing"),
        (obj(2, cond("Ready", "False", "DeletionBlocked", 2, "in use"), cond("Reconciling", "True", "DeletionBlocked", 2)), "Progressing"),
        (obj(2, cond("Ready", "False", "Forbidden", 2), cond("Stalled", "True", "Forbidden", 2, "needs EnvironmentAdmin")), "Degraded"),
        (obj(3, cond("Stalled", "True", "Forbidden", 2, "old")), "Progressing"),
    ]
    for o, want in cases:
        got, message = health(o)
        assert got == want, f"{o}: {got} ({message}), want {want}"
    _, message = health(obj(2, cond("Stalled", "True", "Forbidden", 2, "needs EnvironmentAdmin")))
    assert message == "Forbidden: needs EnvironmentAdmin", message


def main():
    if "--write" in sys.argv:
        write()
        return 0
    checks = [(n, f) for n, f in globals().items() if n.startswith("check_") and callable(f)]
    passed = failed = 0
    for name, f in checks:
        try:
            f()
            passed += 1
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"chart checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
