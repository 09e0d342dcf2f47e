"""The Helm chart against the real apiserver: lint, render, validate, install, upgrade, uninstall, least privilege.

No scheduler or kubelet runs on the local control plane, so nothing here waits for a Pod to start (never `--wait`);
the ReplicaSet controller does run, so a Pod object appearing proves Pod Security admission accepted the template.
What the chart's ServiceAccount may do is asked of the apiserver itself (`kubectl auth can-i` with a TokenRequest
token), and the operator is run as a local process under that identity.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from kubernetes.client import ApiClient, CoreV1Api

from tests.support.chart import CHART_DIR, NO_ADMISSION_WEBHOOK, Helm, helm_fixture, install_chart  # noqa: F401  (the `helm` fixture)
from tests.support.controlplane import KubeCluster, poll_until, temporary_namespace
from tests.support.operator import Kubectl, OperatorProcess, eventually

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
INSTANCE = "app.kubernetes.io/instance"
# Pod Security "restricted", enforced, and warned about for workload templates (Deployments are only warned about).
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}

# The rules every watched namespace gets (cluster-wide in cluster mode). Pinned here so a change to the chart's
# RBAC is a deliberate change to this list too.
WATCH_RULES = [
    {
        "apiGroups": ["stargraph.io"],
        "resources": ["crontriggers", "webhooktriggers"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["stargraph.io"],
        "resources": ["crontriggers/status", "webhooktriggers/status"],
        "verbs": ["patch"],
    },
    {"apiGroups": ["stargraph.io"], "resources": ["backfills"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["stargraph.io"], "resources": ["backfills/status"], "verbs": ["patch"]},
    {"apiGroups": ["stargraph.io"], "resources": ["runs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": ["stargraph.io"], "resources": ["runs/status"], "verbs": ["patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
]
AUTH_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]


def lease_rules(name: str) -> list[dict[str, Any]]:
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [name],
            "verbs": ["get", "update"],
        },
    ]


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def documents(stream: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def roles(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(kind, namespace, name) -> rules of every ClusterRole and Role rendered."""
    return {
        (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): doc["rules"]
        for doc in docs
        if doc["kind"] in ("ClusterRole", "Role")
    }


def container_args(docs: list[dict[str, Any]]) -> list[str]:
    (deployment,) = by_kind(docs, "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


@pytest.fixture(scope="module")
def kubectl(control_plane: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(control_plane.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


@contextlib.contextmanager
def namespaces(api: ApiClient, hint: str, count: int, labels: dict[str, str] | None = None) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        names = [stack.enter_context(temporary_namespace(api, hint=f"{hint}-{i}")) for i in range(count)]
        for name in names:
            if labels:
                CoreV1Api(api).patch_namespace(name, {"metadata": {"labels": labels}})
        yield names


# A subset of the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor schema: the fields the chart sets,
# typed as upstream types them. kubectl's strict field validation rejects any other field, so a misspelt field in
# the template fails the dry-run as it would against the real CRD.
SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [selector]
            properties:
              endpoints:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: string}
                    path: {type: string}
                    interval: {type: string, pattern: DURATION}
                    scrapeTimeout: {type: string, pattern: DURATION}
              namespaceSelector:
                type: object
                properties:
                  any: {type: boolean}
                  matchNames: {type: array, items: {type: string}}
              selector:
                type: object
                x-kubernetes-map-type: atomic
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
                  matchExpressions:
                    type: array
                    items:
                      type: object
                      required: [key, operator]
                      properties:
                        key: {type: string}
                        operator: {type: string}
                        values: {type: array, items: {type: string}}
""".replace("DURATION", "'^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'")


@pytest.fixture(scope="module")
def service_monitor_crd(kubectl: Kubectl) -> Iterator[None]:
    """The ServiceMonitor kind, which the local control plane lacks (no Prometheus Operator); removed afterwards."""
    kubectl.ok("apply", "-f", "-", stdin=SERVICE_MONITOR_CRD)
    kubectl.ok("wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com")
    yield
    kubectl.run("delete", "crd", "servicemonitors.monitoring.coreos.com", "--wait=false")


# ---------------------------------------------------------------------------------------------------------- lint


def test_helm_lint_passes_strict(helm: Helm) -> None:
    result = helm.lint()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replica": 2}, "additional properties 'replica' not allowed"),
        ({"watch": {"mode": "cluster", "namespace": ["a"]}}, "additional properties 'namespace' not allowed"),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "additional properties 'enable' not allowed"),
        ({"watch": {"mode": "namespace"}}, "/watch/mode"),
        ({"watch": {"mode": "namespaces"}}, "minItems"),
    ],
    ids=["typo-top-level", "typo-nested", "typo-deep", "bad-enum", "namespaces-without-list"],
)
def test_helm_lint_rejects_bad_values_with_a_schema_error(helm: Helm, values: dict[str, Any], message: str) -> None:
    result = helm.lint(values)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"watch": {"mode": "cluster", "namespaces": ["a"]}}, "watch.namespaces is set but watch.mode is"),
        ({"terminationGracePeriodSeconds": 20}, "must be larger than operator.drainSeconds"),
    ],
    ids=["namespaces-listed-in-cluster-mode", "grace-period-shorter-than-drain"],
)
def test_rendering_refuses_inconsistent_values(helm: Helm, values: dict[str, Any], message: str) -> None:
    # Checked by the templates as well, so they hold even with --skip-schema-validation.
    values_file = helm.values_file(values)
    result = helm.run("template", "r", str(CHART_DIR), "--skip-schema-validation", "-f", str(values_file), check=False)
    assert result.returncode != 0
    assert message in result.stderr


# ------------------------------------------------------------------------------------ render + server validation


HOST_NETWORK_ENV = [
    {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
    {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
]
Combination = Callable[[list[str]], dict[str, Any]]
COMBINATIONS: dict[str, Combination] = {
    "cluster": lambda ns: {},
    "namespaces": lambda ns: {"watch": {"mode": "namespaces", "namespaces": ns}},
    "release": lambda ns: {"watch": {"mode": "release"}},
    "replicas-2": lambda ns: {"replicas": 2},
    "ingress-servicemonitor": lambda ns: {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "hooks.example.com",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "tls": [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}],
        },
        "metrics": {"serviceMonitor": {"enabled": True, "scrapeTimeout": "10s", "labels": {"release": "prom"}}},
    },
    # What a cluster whose Pod network cannot reach the apiserver needs (item 5 of the install path).
    "host-network": lambda ns: {
        "hostNetwork": True,
        "operator": {"port": 18080},
        "extraEnv": HOST_NETWORK_ENV,
    },
    "everything-else": lambda ns: {
        "replicas": 3,
        "image": {"digest": "sha256:" + "0" * 64},
        "imagePullSecrets": [{"name": "registry"}],
        "leaderElection": {"enabled": True, "leaseName": "custom-lease"},
        "operator": {"drainSeconds": 5, "logLevel": "DEBUG", "logFormat": "console"},
        "terminationGracePeriodSeconds": 60,
        "serviceAccount": {"annotations": {"iam.example.com/role": "stargraph"}},
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "platform"},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "stargraph"}},
            }
        ],
        "service": {"type": "NodePort", "port": 8443, "annotations": {"a": "b"}},
        "metrics": {"service": {"port": 9090, "annotations": {"prometheus.io/scrape": "true"}}},
        "podDisruptionBudget": {"maxUnavailable": "50%"},
    },
}


@pytest.mark.parametrize("combination", list(COMBINATIONS))
def test_rendered_manifests_are_accepted_by_the_apiserver(
    helm: Helm, kubectl: Kubectl, kube_api: ApiClient, service_monitor_crd: None, combination: str
) -> None:
    with namespaces(kube_api, f"chart-{combination}", 3, labels=RESTRICTED) as (release_ns, *watched):
        values = COMBINATIONS[combination](watched)
        stream = helm.template(unique("dry"), namespace=release_ns, values=values)
        docs = documents(stream)
        result = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=stream)
        assert result.returncode == 0, result.stderr
        # The namespace warns on templates that would violate "restricted": only host networking does (the node's
        # network namespace is a host namespace, which "restricted" and "baseline" forbid).
        assert ("PodSecurity" in result.stderr) == (combination == "host-network"), result.stderr
        assert len(result.stdout.strip().splitlines()) == len(docs), result.stdout

    kinds = {doc["kind"] for doc in docs}
    assert ("PodDisruptionBudget" in kinds) == (values.get("replicas", 1) > 1)
    assert ("Ingress" in kinds) == ("ServiceMonitor" in kinds) == (combination == "ingress-servicemonitor")
    if combination == "ingress-servicemonitor":
        (ingress,) = by_kind(docs, "Ingress")
        paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
        assert [(p["path"], p["pathType"]) for p in paths] == [("/v1/hooks/", "Prefix")]


def test_pod_template_is_pod_security_restricted_and_probed(helm: Helm) -> None:
    docs = documents(helm.template("r", namespace="ops", values={"replicas": 2}))
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    drain = int(next(a for a in container["args"] if a.startswith("--drain-seconds=")).split("=")[1])
    assert pod["terminationGracePeriodSeconds"] > drain
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in container["env"]
    assert "--leader-elect" in container["args"]
    assert "--leader-election-namespace=ops" in container["args"]


# ------------------------------------------------------------------------------------------- admission webhook


def webhook_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (configuration,) = by_kind(docs, "ValidatingWebhookConfiguration")
    (webhook,) = configuration["webhooks"]
    return dict(webhook)


def test_the_webhook_with_a_helm_generated_certificate(helm: Helm) -> None:
    docs = documents(helm.template("r", namespace="ops"))
    webhook = webhook_of(docs)
    assert webhook["name"] == "triggers.stargraph.io"
    assert webhook["sideEffects"] == "None" and webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["failurePolicy"] == "Ignore" and webhook["timeoutSeconds"] == 5
    assert webhook["rules"] == [
        {
            "apiGroups": ["stargraph.io"],
            "apiVersions": ["*"],
            "resources": ["crontriggers", "webhooktriggers", "backfills"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert "namespaceSelector" not in webhook  # cluster mode: every namespace
    service = webhook["clientConfig"]["service"]
    assert service == {"name": "r-stargraph", "namespace": "ops", "path": "/validate", "port": 443}

    # The Secret's certificate is signed by the CA the apiserver is given, for the Service's DNS name.
    (secret,) = [doc for doc in by_kind(docs, "Secret") if doc["metadata"]["name"] == "r-stargraph-webhook-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["data"]["ca.crt"] == webhook["clientConfig"]["caBundle"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(webhook["clientConfig"]["caBundle"]))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "r-stargraph.ops.svc" in names

    (svc,) = [doc for doc in by_kind(docs, "Service") if doc["metadata"]["name"] == "r-stargraph"]
    assert {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"} in svc["spec"]["ports"]
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {"--admission-port=9443", "--tls-cert-dir=/etc/stargraph/webhook-tls"} <= set(container["args"])
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    mount = {"name": "webhook-tls", "mountPath": "/etc/stargraph/webhook-tls", "readOnly": True}
    assert mount in container["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-tls"]
    assert volume["secret"]["secretName"] == "r-stargraph-webhook-tls"


def test_the_webhook_with_a_cert_manager_certificate(helm: Helm) -> None:
    values = {"admissionWebhook": {"failurePolicy": "Fail", "certificate": {"source": "certManager"}}}
    docs = documents(helm.template("r", namespace="ops", values=values))
    (configuration,) = by_kind(docs, "ValidatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "ops/r-stargraph-webhook"}
    webhook = webhook_of(docs)
    assert webhook["failurePolicy"] == "Fail"
    assert "caBundle" not in webhook["clientConfig"]  # cert-manager's CA injector fills it
    assert not [doc for doc in by_kind(docs, "Secret") if doc["metadata"]["name"] == "r-stargraph-webhook-tls"]
    (issuer,) = by_kind(docs, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    (certificate,) = by_kind(docs, "Certificate")
    assert certificate["metadata"]["name"] == "r-stargraph-webhook"
    assert certificate["spec"]["secretName"] == "r-stargraph-webhook-tls"
    assert "r-stargraph.ops.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": "r-stargraph-webhook", "kind": "Issuer"}

    own = {"name": "corp-ca", "kind": "ClusterIssuer"}
    values["admissionWebhook"]["certificate"]["certManager"] = {"issuerRef": own}
    docs = documents(helm.template("r", namespace="ops", values=values))
    assert not by_kind(docs, "Issuer")
    assert by_kind(docs, "Certificate")[0]["spec"]["issuerRef"] == own


def test_the_webhook_follows_the_watched_namespaces_and_can_be_left_out(helm: Helm) -> None:
    values = {"watch": {"mode": "namespaces", "namespaces": ["team-a", "team-b"]}}
    selector = webhook_of(documents(helm.template("r", namespace="ops", values=values)))["namespaceSelector"]
    expression = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
    assert selector == {"matchExpressions": [expression]}

    docs = documents(helm.template("r", namespace="ops", values={"admissionWebhook": {"enabled": False}}))
    assert not by_kind(docs, "ValidatingWebhookConfiguration")
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert not [arg for arg in container["args"] if arg.startswith(("--admission-port", "--tls-cert"))]
    assert [port["name"] for port in container["ports"]] == ["http"]


def pod_template(helm: Helm, values: dict[str, Any]) -> dict[str, Any]:
    """The Pod spec of the Deployment the chart renders with ``values``."""
    (deployment,) = by_kind(documents(helm.template("r", namespace="ops", values=values)), "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_host_network_port_and_extra_env_reach_the_pod_template(helm: Helm) -> None:
    default = pod_template(helm, {})
    assert "hostNetwork" not in default and "dnsPolicy" not in default
    (container,) = default["containers"]
    assert "--port=8080" in container["args"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
    ]
    own_env = container["env"]

    values = {
        "hostNetwork": True,
        "operator": {"port": 18080},
        "admissionWebhook": {"port": 18443},
        "extraEnv": HOST_NETWORK_ENV,
    }
    pod = pod_template(helm, values)
    assert (pod["hostNetwork"], pod["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    (container,) = pod["containers"]
    assert {"--port=18080", "--admission-port=18443"} <= set(container["args"])
    assert container["ports"] == [
        {"name": "http", "containerPort": 18080, "protocol": "TCP"},
        {"name": "webhook", "containerPort": 18443, "protocol": "TCP"},
    ]
    # The probes follow the named port.
    assert {container[probe]["httpGet"]["port"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")} == {
        "http"
    }
    # Appended after the chart's own, so a user's entry of the same name is the one the kubelet keeps.
    assert container["env"] == [*own_env, *HOST_NETWORK_ENV]


def test_a_host_network_pod_is_probed_on_loopback(helm: Helm) -> None:
    """Its IP is the node's address; the kubelet, in the node's network too, reaches the operator on 127.0.0.1."""
    probes = ("startupProbe", "livenessProbe", "readinessProbe")
    for values, host in (({}, None), ({"hostNetwork": True}, "127.0.0.1")):
        (container,) = pod_template(helm, values)["containers"]
        assert [container[probe]["httpGet"].get("host") for probe in probes] == [host] * len(probes), values
        # The operator listens on every address, loopback included.
        assert "--host=0.0.0.0" in container["args"]


# ----------------------------------------------------------------------------------------------- least privilege


@pytest.mark.parametrize("mode", ["cluster", "namespaces", "release"])
def test_rendered_rbac_is_exactly_the_operators_calls(helm: Helm, mode: str) -> None:
    watched = ["team-a", "team-b"] if mode == "namespaces" else []
    values = {"watch": {"mode": mode, "namespaces": watched}, "replicas": 2}
    docs = documents(helm.template("r", namespace="ops", values=values))
    rendered = roles(docs)

    for (kind, _, name), rules in rendered.items():
        for rule in rules:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), f"wildcard in {kind} {name}: {rule}"
    expected: dict[tuple[str, str, str], list[dict[str, Any]]] = {
        ("ClusterRole", "", "r-stargraph-auth"): AUTH_RULES,
        ("Role", "ops", "r-stargraph-leader-election"): lease_rules("r-stargraph"),
    }
    if mode == "cluster":
        expected[("ClusterRole", "", "r-stargraph")] = WATCH_RULES
    else:
        for namespace in watched or ["ops"]:
            expected[("Role", namespace, "r-stargraph")] = WATCH_RULES
        # Secrets only in watched namespaces: no cluster-wide rule mentions them.
        cluster_wide = [rule for (kind, _, _), rules in rendered.items() if kind == "ClusterRole" for rule in rules]
        assert not [rule for rule in cluster_wide if "secrets" in rule["resources"]]
    assert rendered == expected

    bindings = {
        (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): (doc["roleRef"], doc["subjects"])
        for doc in docs
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")
    }
    subject = [{"kind": "ServiceAccount", "name": "r-stargraph", "namespace": "ops"}]
    assert {key: refs[1] for key, refs in bindings.items()} == {
        (kind + "Binding", namespace, name): subject for kind, namespace, name in expected
    }
    assert all(ref["name"] == key[2] for key, (ref, _) in bindings.items())
    watch_args = sorted(a for a in container_args(docs) if a.startswith("--watch-namespace="))
    assert watch_args == [f"--watch-namespace={ns}" for ns in (watched or ([] if mode == "cluster" else ["ops"]))]


def can_i(kubectl: Kubectl, *args: str) -> bool:
    result = kubectl.run("auth", "can-i", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_the_chart_identity_has_exactly_the_operators_permissions(
    control_plane: KubeCluster, helm: Helm, kube_api: ApiClient, tmp_path: Path
) -> None:
    release = unique("id")
    with (
        namespaces(kube_api, "chart-identity", 3) as (release_ns, team_a, team_b),
        install_chart(
            control_plane,
            release=release,
            namespace=release_ns,
            values={"leaderElection": {"enabled": True}, **NO_ADMISSION_WEBHOOK},
            helm=helm,
        ) as chart,
    ):
        sa = Kubectl(chart.service_account_kubeconfig(), tmp_path / "cache-cluster")
        lease = f"{release}-stargraph"
        allowed = [
            *[(verb, "crontriggers.stargraph.io", "-A") for verb in ("get", "list", "watch")],
            *[(verb, "webhooktriggers.stargraph.io", "-A") for verb in ("get", "list", "watch")],
            ("patch", "crontriggers.stargraph.io", "--subresource=status", "-n", team_a),
            ("patch", "webhooktriggers.stargraph.io", "--subresource=status", "-n", team_b),
            *[(verb, "backfills.stargraph.io", "-A") for verb in ("get", "list", "watch")],
            ("patch", "backfills.stargraph.io", "--subresource=status", "-n", team_a),
            *[(verb, "runs.stargraph.io", "-A") for verb in ("get", "list", "watch", "create", "delete")],
            *[(verb, "secrets", "-A") for verb in ("get", "list", "watch")],
            ("create", "events.events.k8s.io", "-n", team_a),
            ("create", "tokenreviews.authentication.k8s.io"),
            ("create", "subjectaccessreviews.authorization.k8s.io"),
            ("create", "leases.coordination.k8s.io", "-n", release_ns),
            ("get", f"leases.coordination.k8s.io/{lease}", "-n", release_ns),
            ("update", f"leases.coordination.k8s.io/{lease}", "-n", release_ns),
        ]
        refused = [
            *[(verb, "crontriggers.stargraph.io", "-n", team_a) for verb in ("create", "update", "patch", "delete")],
            ("delete", "webhooktriggers.stargraph.io", "-n", team_a),
            *[(verb, "backfills.stargraph.io", "-n", team_a) for verb in ("create", "update", "patch", "delete")],
            ("update", "crontriggers.stargraph.io", "--subresource=status", "-n", team_a),
            *[(verb, "runs.stargraph.io", "-n", team_a) for verb in ("update", "patch", "deletecollection")],
            *[(verb, "secrets", "-n", team_a) for verb in ("create", "update", "patch", "delete", "deletecollection")],
            ("create", "pods", "-n", team_a),
            ("get", "pods", "-n", release_ns),
            ("get", "configmaps", "-n", team_a),
            ("list", "namespaces"),
            ("list", "customresourcedefinitions.apiextensions.k8s.io"),
            ("get", "leases.coordination.k8s.io/another-lease", "-n", release_ns),
            ("update", "leases.coordination.k8s.io/another-lease", "-n", release_ns),
            ("delete", f"leases.coordination.k8s.io/{lease}", "-n", release_ns),
            ("create", "leases.coordination.k8s.io", "-n", team_a),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
            ("impersonate", "serviceaccounts", "-n", release_ns),
            ("create", "serviceaccounts", "--subresource=token", "-n", release_ns),
            ("*", "*"),
        ]
        assert [a for a in allowed if not can_i(sa, *a)] == [], "refused but needed"
        assert [r for r in refused if can_i(sa, *r)] == [], "granted but not needed"

        # Namespaces mode: the same identity, now confined to team-a (Secrets: get, and the metadata-only list+watch).
        chart.upgrade({"watch": {"mode": "namespaces", "namespaces": [team_a]}})
        assert all(can_i(sa, verb, "secrets", "-n", team_a) for verb in ("get", "list", "watch"))
        assert not any(can_i(sa, verb, "secrets", "-n", team_a) for verb in ("create", "update", "patch", "delete"))
        assert can_i(sa, "create", "runs.stargraph.io", "-n", team_a)
        assert can_i(sa, "create", "tokenreviews.authentication.k8s.io")
        for refused_ns in [
            ("get", "secrets", "-n", team_b),
            ("list", "secrets", "-A"),
            ("get", "secrets", "-n", release_ns),
            ("list", "crontriggers.stargraph.io", "-A"),
            ("list", "backfills.stargraph.io", "-A"),
            ("create", "runs.stargraph.io", "-n", team_b),
            ("create", "events.events.k8s.io", "-n", team_b),
            ("create", "leases.coordination.k8s.io", "-n", release_ns),  # leader election is off again
        ]:
            assert not can_i(sa, *refused_ns), refused_ns

        # Release mode: confined to the release namespace.
        chart.upgrade({"watch": {"mode": "release"}})
        assert all(can_i(sa, verb, "secrets", "-n", release_ns) for verb in ("get", "list", "watch"))
        for refused_release in [
            *[(verb, "secrets", "-n", team_a) for verb in ("get", "list", "watch")],
            ("list", "secrets", "-A"),
            ("delete", "secrets", "-n", release_ns),
        ]:
            assert not can_i(sa, *refused_release), refused_release


# -------------------------------------------------------------------------------- install / upgrade / uninstall


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl.ok("get", *args, "-o", "json"))
    return out


def exists(kubectl: Kubectl, *args: str) -> bool:
    result = kubectl.run("get", *args, "-o", "name")
    if result.returncode != 0 and "NotFound" in result.stderr:
        return False
    assert result.returncode == 0, result.stderr
    return bool(result.stdout.strip())


def labelled(kubectl: Kubectl, release: str, namespace: str) -> list[str]:
    """Every namespaced object in ``namespace`` that carries the release's instance label."""
    types = kubectl.ok("api-resources", "--verbs=list", "--namespaced", "-o", "name").split()
    listed = kubectl.ok("get", ",".join(types), "-n", namespace, "-l", f"{INSTANCE}={release}", "-o", "name")
    return listed.split()


def test_install_upgrade_uninstall(
    control_plane: KubeCluster, helm: Helm, kubectl: Kubectl, kube_api: ApiClient
) -> None:
    release = unique("life")
    full = f"{release}-stargraph"
    with namespaces(kube_api, "chart-life", 3, labels=RESTRICTED) as (release_ns, team_a, team_b):
        started = time.monotonic()
        chart = install_chart(control_plane, release=release, namespace=release_ns, helm=helm)
        installed_in = time.monotonic() - started
        try:
            # Cluster mode, one replica.
            assert installed_in < 30
            assert exists(kubectl, "clusterrole", full) and exists(kubectl, "clusterrolebinding", full)
            assert exists(kubectl, "clusterrole", f"{full}-auth")
            assert not exists(kubectl, "role,rolebinding", "-A", "-l", f"{INSTANCE}={release}")
            assert not exists(kubectl, "pdb", "-n", release_ns)
            for crd in ("crontriggers", "webhooktriggers", "runs"):
                assert exists(kubectl, "crd", f"{crd}.stargraph.io")
            args = get_json(kubectl, "deployment", full, "-n", release_ns)["spec"]["template"]["spec"]
            assert "--leader-elect" not in args["containers"][0]["args"]

            # The ReplicaSet controller creates the Pod in a namespace enforcing "restricted": admission accepted it.
            def pod_created() -> bool:
                return exists(kubectl, "pods", "-n", release_ns, "-l", f"{INSTANCE}={release}")

            poll_until(pod_created, timeout=30, interval=0.2, what="the operator Pod to be created (admitted)")

            # The webhook's certificate: made at install, trusted by the webhook configuration.
            secret = get_json(kubectl, "secret", f"{full}-webhook-tls", "-n", release_ns)["data"]
            webhook = get_json(kubectl, "validatingwebhookconfiguration", full)["webhooks"][0]
            assert webhook["clientConfig"]["caBundle"] == secret["ca.crt"]

            # Upgrade: two watched namespaces and two replicas.
            chart.upgrade({"replicas": 2, "watch": {"mode": "namespaces", "namespaces": [team_a, team_b]}})
            assert not exists(kubectl, "clusterrole", full) and not exists(kubectl, "clusterrolebinding", full)
            assert exists(kubectl, "clusterrole", f"{full}-auth")
            for namespace in (team_a, team_b):
                role = get_json(kubectl, "role", full, "-n", namespace)
                assert role["rules"] == WATCH_RULES
                assert get_json(kubectl, "rolebinding", full, "-n", namespace)["subjects"][0]["name"] == full
            lease_role = get_json(kubectl, "role", f"{full}-leader-election", "-n", release_ns)
            assert lease_role["rules"] == lease_rules(full)
            assert get_json(kubectl, "pdb", full, "-n", release_ns)["spec"]["maxUnavailable"] == 1
            deployment = get_json(kubectl, "deployment", full, "-n", release_ns)
            assert deployment["spec"]["replicas"] == 2
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            assert {f"--watch-namespace={team_a}", f"--watch-namespace={team_b}", "--leader-elect"} <= set(args)
            # An upgrade keeps the certificate (looked up, not generated again), and the CA the apiserver trusts.
            assert get_json(kubectl, "secret", f"{full}-webhook-tls", "-n", release_ns)["data"] == secret
            webhook = get_json(kubectl, "validatingwebhookconfiguration", full)["webhooks"][0]
            assert webhook["clientConfig"]["caBundle"] == secret["ca.crt"]
            assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == [team_a, team_b]

            # Upgrade: back to one replica, watching only the release namespace.
            chart.upgrade({"watch": {"mode": "release"}})
            assert not exists(kubectl, "role", full, "-n", team_a)
            assert not exists(kubectl, "role", full, "-n", team_b)
            assert get_json(kubectl, "role", full, "-n", release_ns)["rules"] == WATCH_RULES
            assert not exists(kubectl, "role", f"{full}-leader-election", "-n", release_ns)
            assert not exists(kubectl, "pdb", full, "-n", release_ns)
        finally:
            chart.uninstall()

        # Nothing of the release is left, in any namespace it touched nor cluster-wide. Pods and ReplicaSets go by
        # garbage collection after the Deployment, hence the wait.
        def leftovers() -> list[str]:
            return [obj for ns in (release_ns, team_a, team_b) for obj in labelled(kubectl, release, ns)] + kubectl.ok(
                "get",
                "clusterrole,clusterrolebinding,validatingwebhookconfiguration",
                "-l",
                f"{INSTANCE}={release}",
                "-o",
                "name",
            ).split()

        with contextlib.suppress(TimeoutError):
            poll_until(lambda: not leftovers(), timeout=30, interval=0.5, what="the release's objects to be deleted")
        assert leftovers() == []
        assert not exists(kubectl, "secrets", "-n", release_ns, "-l", f"owner=helm,name={release}")
        # CRDs outlive the release on purpose (deleting them would delete every trigger and Run): see the README.
        assert exists(kubectl, "crd", "crontriggers.stargraph.io")


# ------------------------------------------------------------------------------- the operator, as the chart's SA


def apply_cron_trigger(kubectl: Kubectl, namespace: str, name: str) -> None:
    manifest = {
        "apiVersion": "stargraph.io/v1alpha1",
        "kind": "CronTrigger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "* * * * * *", "runTemplate": {"graph": "chart-check"}},
    }
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def token_of(kubeconfig: Path) -> str:
    token: str = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    return token


def test_the_operator_runs_with_the_charts_identity(
    control_plane: KubeCluster, helm: Helm, kubectl: Kubectl, kube_api: ApiClient, tmp_path: Path
) -> None:
    """Cron fires, status, Events, and POST /v1/runs (TokenReview + SubjectAccessReview) work as the chart's SA."""
    release = unique("op")
    with (
        namespaces(kube_api, "chart-operator", 2) as (release_ns, team),
        install_chart(
            control_plane, release=release, namespace=release_ns, values=NO_ADMISSION_WEBHOOK, helm=helm
        ) as chart,
    ):
        # Two callers of POST /v1/runs: one may create Runs in the team's namespace, the other may not.
        kubectl.ok("create", "role", "run-creator", "--verb=create", "--resource=runs.stargraph.io", "-n", team)
        kubectl.ok(
            "create", "rolebinding", "run-creator", "--role=run-creator", f"--serviceaccount={team}:allowed", "-n", team
        )
        tokens = {
            caller: token_of(
                control_plane.service_account_kubeconfig(
                    namespace=team, name=caller, path=tmp_path / f"{caller}.kubeconfig"
                )
            )
            for caller in ("allowed", "refused")
        }
        apply_cron_trigger(kubectl, team, "every-second")

        with OperatorProcess(chart.service_account_kubeconfig(), tmp_path, name="chart-sa") as operator:
            runs = eventually(
                lambda: json.loads(kubectl.ok("get", "runs.stargraph.io", "-n", team, "-o", "json"))["items"],
                timeout=10,
                what="a Run created under the chart's identity",
            )
            assert runs[0]["spec"]["triggerRef"]["name"] == "every-second"
            eventually(
                lambda: (
                    get_json(kubectl, "crontrigger", "every-second", "-n", team).get("status", {}).get("conditions")
                ),
                timeout=10,
                what="trigger status patched",
            )
            eventually(
                lambda: "Fired" in kubectl.ok("get", "events.events.k8s.io", "-n", team, "-o", "jsonpath={..reason}"),
                timeout=10,
                what="an Event for the fire",
            )

            def post_run(caller: str) -> httpx.Response:
                return httpx.post(
                    f"{operator.url}/v1/runs",
                    headers={"Authorization": f"Bearer {tokens[caller]}", "Idempotency-Key": str(uuid.uuid4())},
                    json={"triggerRef": {"kind": "CronTrigger", "name": "every-second", "namespace": team}},
                    timeout=30,
                )

            allowed, refused_caller = post_run("allowed"), post_run("refused")
            assert allowed.status_code == 201, allowed.text
            assert refused_caller.status_code == 403, refused_caller.text
            log = operator.log_file.read_text()

        refused = set(re.findall(r"cannot (\w+) resource \\?\"([\w.]+)\\?\" in API group \\?\"([\w.]*)\\?\"", log))
        assert not refused, refused


def test_the_operator_in_namespaces_mode_makes_no_refused_call(
    control_plane: KubeCluster, helm: Helm, kubectl: Kubectl, kube_api: ApiClient, tmp_path: Path
) -> None:
    release = unique("opns")
    with (
        namespaces(kube_api, "chart-opns", 2) as (release_ns, team),
        install_chart(
            control_plane,
            release=release,
            namespace=release_ns,
            values={"watch": {"mode": "namespaces", "namespaces": [team]}, **NO_ADMISSION_WEBHOOK},
            helm=helm,
        ) as chart,
    ):
        apply_cron_trigger(kubectl, team, "every-second")
        with OperatorProcess(
            chart.service_account_kubeconfig(), tmp_path, name="chart-sa-ns", extra_args=["--watch-namespace", team]
        ) as operator:
            eventually(
                lambda: exists(kubectl, "runs.stargraph.io", "-n", team),
                timeout=10,
                what="a Run within 10 s of start-up",
            )
            log = operator.log_file.read_text()
        assert "forbidden" not in log.lower(), operator.log_tail()
