"""The generated CRDs against a real apiserver: accepted, validating, defaulting, and useful with `kubectl get`.

Uses kubectl, as users do, so the messages checked here are the ones a user sees. The CRDs are applied once per
module and left installed: they are the project's own, and every test that needs them applies them the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi

from stargraph.api import crdgen, kube_openapi
from stargraph.api.v1alpha1 import GROUP, VERSION, CronTriggerSpec, WebhookTriggerSpec
from tests.support.controlplane import KubeCluster, poll_until

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
SAMPLES = sorted((CRDS / "samples").glob("*.yaml"))
API_VERSION = f"{GROUP}/{VERSION}"


class Kubectl:
    """`kubectl --kubeconfig <admin>` with a private discovery cache (the apiserver is new each session)."""

    def __init__(self, cluster: KubeCluster, cache_dir: Path) -> None:
        self._base = ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cache_dir)]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._base, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def fails(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded:\n{result.stdout}"
        return result.stderr


@pytest.fixture(scope="module")
def kubectl(control_plane: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl, after `kubectl apply -f crds/` and the CRDs being Established."""
    k = Kubectl(control_plane, tmp_path_factory.mktemp("kubectl-cache"))
    k.ok("apply", "-f", str(CRDS))
    names = [f"crd/{crd['metadata']['name']}" for crd in crdgen.generate_crds()]
    k.ok("wait", "--for=condition=Established", "--timeout=30s", *names)
    return k


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec})


def cron(name: str, **spec: Any) -> str:
    return manifest("CronTrigger", name, {"schedule": "*/10 * * * * *", **spec})


def run_spec(**overrides: Any) -> dict[str, Any]:
    return {
        "triggerRef": {"kind": "CronTrigger", "name": "every-ten-seconds"},
        "source": "cron",
        "graph": "hello-world",
        "params": {"greeting": "hello", "nested": {"list": [1, 2]}},
        "scheduledFire": "2026-01-01T09:00:10Z",
        **overrides,
    }


def backfill_spec(**overrides: Any) -> dict[str, Any]:
    range_ = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
    return {"triggerRef": {"name": "every-ten-seconds"}, **range_, **overrides}


def create(api: ApiClient, namespace: str, text: str) -> dict[str, Any]:
    """Create the object in YAML `text` through the API (no kubectl)."""
    body = yaml.safe_load(text)
    plural = f"{body['kind'].lower()}s"
    created = CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    return cast(dict[str, Any], created)


def read_spec(api: ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    body = CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    return cast(dict[str, Any], body["spec"])  # type: ignore[index]


def parse_tables(out: str) -> dict[str, list[dict[str, str]]]:
    """`kubectl get` output of several kinds: rows as {column: cell}, by resource (`run.stargraph.io`).

    Cells are cut at the header's column offsets, since cells may be empty or hold spaces ("0 3 * * *").
    """
    tables: dict[str, list[dict[str, str]]] = {}
    for block in out.strip().split("\n\n"):
        header, *lines = block.splitlines()
        # Columns are separated by at least two spaces; "LAST DELIVERY" is one column.
        starts = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
        rows = []
        for line in lines:
            bounds = [*[start for start, _ in starts[1:]], None]
            rows.append({name: line[start:end].strip() for (start, name), end in zip(starts, bounds, strict=True)})
        tables[rows[0]["NAME"].split("/")[0]] = rows
    return tables


def test_crds_are_established_with_names_and_columns(kubectl: Kubectl, kube_api: ApiClient) -> None:
    extensions = ApiextensionsV1Api(kube_api)
    for crd in crdgen.generate_crds():
        live = extensions.read_custom_resource_definition(crd["metadata"]["name"])
        assert live.status is not None and live.status.accepted_names is not None
        conditions = {c.type: c.status for c in live.status.conditions or []}
        assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True", conditions
        assert live.status.accepted_names.categories == ["stargraph"]
    resources = kubectl.ok("api-resources", "--categories=stargraph", "-o", "name").split()
    assert sorted(resources) == [
        "backfills.stargraph.io",
        "crontriggers.stargraph.io",
        "runs.stargraph.io",
        "webhooktriggers.stargraph.io",
    ]


def test_kubectl_explain_shows_the_model_descriptions(kubectl: Kubectl) -> None:
    # The apiserver publishes a CRD's OpenAPI a moment after it is established.
    def explained() -> str | None:
        result = kubectl.run("explain", "crontriggers.spec.schedule")
        return result.stdout if result.returncode == 0 else None

    out = poll_until(explained, timeout=20, interval=0.5, what="kubectl explain crontriggers.spec.schedule")
    description = CronTriggerSpec.model_fields["schedule"].description
    assert description and description in " ".join(out.split()), out


def test_applying_the_crds_again_changes_nothing(kubectl: Kubectl) -> None:
    out = kubectl.ok("apply", "-f", str(CRDS))
    assert out.count("unchanged") == len(crdgen.generate_crds()), out


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_passes_server_side_dry_run(kubectl: Kubectl, namespace: str, sample: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(sample.read_text()) if doc]
    for doc in docs:  # the samples name `default`; kubectl refuses -n with a different namespace in the file
        doc["metadata"]["namespace"] = namespace
    out = kubectl.ok("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    assert out.count("created (server dry run)") == len(docs), out


@pytest.mark.parametrize(
    ("kind", "spec", "expected"),
    [
        pytest.param(
            "CronTrigger",
            {"schedule": "*/10 * *"},
            ["spec.schedule", "*/10 * *", "schedule must have 5 space-separated fields"],
            id="schedule-with-3-fields",
        ),
        pytest.param(
            "CronTrigger",
            {"schedule": "0 0 1 1 1 1 2030"},
            ["spec.schedule", "schedule must have 5 space-separated fields"],
            id="schedule-with-7-fields",
        ),
        pytest.param(
            "CronTrigger",
            {"schedule": "* * * * *", "concurrencyPolicy": "Sometimes"},
            ["spec.concurrencyPolicy", 'Unsupported value: "Sometimes"', '"Allow", "Forbid", "Replace"'],
            id="unknown-concurrency-policy",
        ),
        pytest.param("CronTrigger", {"timeZone": "UTC"}, ["spec.schedule: Required value"], id="missing-schedule"),
        pytest.param(
            "CronTrigger",
            {"schedule": "TZ=Europe/Berlin 0 9 * * *"},
            ["spec.schedule", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"],
            id="cel-tz-prefix",
        ),
        pytest.param(
            "CronTrigger", {"schedule": "@every 1h"}, ["spec.schedule", "@every is not supported"], id="cel-every"
        ),
        pytest.param(
            "WebhookTrigger",
            {"secretRef": {"name": "s"}, "signature": {"scheme": "github", "header": "X-Sig"}},
            ["spec.signature.header", "only the hmac-sha256 scheme reads a signature header"],
            id="cel-header-without-hmac",
        ),
        pytest.param(
            "CronTrigger",
            {"schedule": "* * * * *", "catchUpLimit": 0},
            ["spec.catchUpLimit", "should be greater than or equal to 1"],
            id="catch-up-limit-below-minimum",
        ),
        pytest.param(
            "WebhookTrigger",
            {"secretRef": {"name": "s", "keys": ["old", "new", "old"]}},
            ["spec.secretRef.keys", "secretRef.keys must be unique"],
            id="duplicate-secret-keys",
        ),
        pytest.param(
            "WebhookTrigger",
            {"secretRef": {"name": "Not_A_Name"}},
            ["spec.secretRef.name", "should match"],
            id="secret-name-not-dns",
        ),
        pytest.param(
            "WebhookTrigger",
            {"secretRef": {"name": "s"}, "signature": {"scheme": "md5"}},
            ["spec.signature.scheme", 'Unsupported value: "md5"'],
            id="unknown-signature-scheme",
        ),
        pytest.param("Run", run_spec(source="Cron Job"), ["spec.source", "should match"], id="run-source"),
        pytest.param(
            "Run", run_spec(scheduledFire="tomorrow"), ["spec.scheduledFire", "date-time"], id="run-fire-not-a-time"
        ),
        pytest.param(
            "Backfill",
            backfill_spec(**{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T23:59:59Z"}),
            ["spec.to: Invalid value", "spec.to must not be before spec.from"],
            id="backfill-to-before-from",
        ),
        pytest.param(
            "Backfill",
            backfill_spec(maxRuns=10_001),
            ["spec.maxRuns", "should be less than or equal to 10000"],
            id="backfill-max-runs-above-maximum",
        ),
        pytest.param("Backfill", backfill_spec(to="yesterday"), ["spec.to", "date-time"], id="backfill-to-not-a-time"),
    ],
)
def test_invalid_object_is_rejected_naming_the_field(
    kubectl: Kubectl, namespace: str, kind: str, spec: dict[str, Any], expected: list[str]
) -> None:
    err = kubectl.fails("create", "-n", namespace, "-f", "-", stdin=manifest(kind, "invalid", spec))
    for fragment in expected:
        assert fragment in err, err


def test_backfill_spec_is_immutable_and_a_range_of_one_instant_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    instant = backfill_spec(**{"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    kubectl.ok("create", "-n", namespace, "-f", "-", stdin=manifest("Backfill", "b1", instant))
    err = kubectl.fails("patch", "backfill", "b1", "-n", namespace, "--type=merge", "-p", '{"spec":{"maxRuns":7}}')
    assert "spec: Invalid value" in err and "Backfill spec is immutable" in err, err


def test_run_spec_is_immutable_but_metadata_and_status_are_not(kubectl: Kubectl, namespace: str) -> None:
    kubectl.ok("create", "-n", namespace, "-f", "-", stdin=manifest("Run", "r1", run_spec()))
    for patch in ('{"spec":{"params":{"greeting":"bye"}}}', '{"spec":{"graph":"other"}}'):
        err = kubectl.fails("patch", "run.stargraph.io", "r1", "-n", namespace, "--type=merge", "-p", patch)
        assert "spec: Invalid value" in err and "Run spec is immutable" in err, err
    # Applying the same spec again is no change, so it is allowed.
    kubectl.ok("apply", "-n", namespace, "-f", "-", stdin=manifest("Run", "r1", run_spec()))
    kubectl.ok("label", "run.stargraph.io", "r1", "-n", namespace, "reviewed=yes")
    status = '{"status":{"phase":"Running","startTime":"2026-01-01T09:00:11Z"}}'
    kubectl.ok("patch", "run.stargraph.io", "r1", "-n", namespace, "--subresource=status", "--type=merge", "-p", status)
    run = yaml.safe_load(kubectl.ok("get", "run.stargraph.io", "r1", "-n", namespace, "-o", "yaml"))
    assert run["spec"] == run_spec() and run["status"]["phase"] == "Running"


@pytest.mark.usefixtures("kubectl")
def test_apiserver_applies_the_model_defaults(kube_api: ApiClient, namespace: str) -> None:
    minimal_cron = {"schedule": "*/10 * * * * *"}
    created = create(kube_api, namespace, manifest("CronTrigger", "minimal", minimal_cron))
    spec = read_spec(kube_api, namespace, "crontriggers", "minimal")
    assert spec == created["spec"]
    assert spec["timeZone"] == "UTC"
    assert spec["catchUp"] == "Latest"
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert spec["runTemplate"] == {}
    assert (spec["successfulRunsHistoryLimit"], spec["failedRunsHistoryLimit"]) == (3, 1)
    assert "startingDeadlineSeconds" not in spec  # None is "unset", not a default
    assert CronTriggerSpec.model_validate(spec) == CronTriggerSpec.model_validate(minimal_cron)

    minimal_webhook = {"secretRef": {"name": "hook-secret"}}
    create(kube_api, namespace, manifest("WebhookTrigger", "hook", minimal_webhook))
    spec = read_spec(kube_api, namespace, "webhooktriggers", "hook")
    assert spec["secretRef"] == {"name": "hook-secret", "keys": ["secret"]}
    assert spec["signature"] == {"scheme": "hmac-sha256", "toleranceSeconds": 300}
    assert spec["maxBodyBytes"] == 1 << 20 and spec["contentTypes"] == ["application/json"]
    assert WebhookTriggerSpec.model_validate(spec) == WebhookTriggerSpec.model_validate(minimal_webhook)


@pytest.mark.usefixtures("kubectl")
def test_unknown_fields_are_pruned_not_stored(kube_api: ApiClient, namespace: str) -> None:
    # kubectl asks for strict field validation and would be refused; without it the apiserver prunes (and warns).
    create(kube_api, namespace, cron("pruned", bogus=1, runTemplate={"params": {"free": {"form": True}}, "junk": 2}))
    spec = read_spec(kube_api, namespace, "crontriggers", "pruned")
    assert "bogus" not in spec and "junk" not in spec["runTemplate"]
    assert spec["runTemplate"]["params"] == {"free": {"form": True}}  # free-form params are preserved


def test_kubectl_get_stargraph_lists_all_kinds_with_columns(kubectl: Kubectl, namespace: str) -> None:
    objects = [
        cron("nightly", schedule="0 3 * * *", timeZone="Europe/Berlin"),
        manifest("WebhookTrigger", "push", {"secretRef": {"name": "push-secret"}, "signature": {"scheme": "github"}}),
        manifest("Run", "nightly-0001", run_spec(triggerRef={"kind": "CronTrigger", "name": "nightly"})),
    ]
    kubectl.ok("create", "-n", namespace, "-f", "-", stdin="---\n".join(objects))
    statuses = {
        ("crontrigger", "nightly"): {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled"}],
            "nextScheduleTime": "2099-01-01T02:00:00Z",
        },
        ("webhooktrigger", "push"): {"path": f"/v1/hooks/{namespace}/push"},
        ("run.stargraph.io", "nightly-0001"): {"phase": "Succeeded", "duration": "1m5s"},
    }
    for (resource, name), status in statuses.items():
        patch = json.dumps({"status": status})
        kubectl.ok("patch", resource, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)

    tables = parse_tables(kubectl.ok("get", "stargraph", "-n", namespace))
    assert set(tables) == {"crontrigger.stargraph.io", "webhooktrigger.stargraph.io", "run.stargraph.io"}, tables

    (row,) = tables["crontrigger.stargraph.io"]
    assert list(row) == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "LAST", "NEXT", "READY", "AGE"]
    assert row["NAME"] == "crontrigger.stargraph.io/nightly"
    assert (row["SCHEDULE"], row["TIMEZONE"], row["SUSPENDED"]) == ("0 3 * * *", "Europe/Berlin", "false")
    assert row["LAST"] == "" and row["NEXT"] != "" and row["READY"] == "True" and row["AGE"] != ""

    (row,) = tables["webhooktrigger.stargraph.io"]
    assert list(row) == ["NAME", "SCHEME", "PATH", "LAST DELIVERY", "READY", "AGE"]
    assert (row["NAME"], row["SCHEME"]) == ("webhooktrigger.stargraph.io/push", "github")
    assert row["PATH"] == f"/v1/hooks/{namespace}/push"

    (row,) = tables["run.stargraph.io"]
    assert list(row) == ["NAME", "TRIGGER", "SOURCE", "PHASE", "DURATION", "SCHEDULED", "AGE"]
    assert (row["NAME"], row["TRIGGER"], row["SOURCE"]) == ("run.stargraph.io/nightly-0001", "nightly", "cron")
    assert (row["PHASE"], row["DURATION"]) == ("Succeeded", "1m5s") and row["SCHEDULED"] != ""

    # Short names resolve to our kinds.
    for short, name in (("ct", "nightly"), ("wt", "push"), ("sgrun", "nightly-0001")):
        assert kubectl.ok("get", short, "-n", namespace, "-o", "name").strip().endswith(f"/{name}")


def test_the_embedded_job_template_schema_is_what_this_apiserver_publishes(control_plane: KubeCluster) -> None:
    """The committed schema of runTemplate.jobTemplate matches the Kubernetes version the project pins (regenerate
    it as `stargraph.api.kube_openapi` says when moving to another)."""
    raw = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "get", "--raw", kube_openapi.SOURCE],
        capture_output=True,
        check=True,
    ).stdout
    document = json.loads(raw)
    published = kube_openapi.structural_schema(document, kube_openapi.JOB_TEMPLATE)
    assert published == kube_openapi.load_schema(kube_openapi.JOB_TEMPLATE)
    # It is the real type: the fields a Job's Pod template has, with their types.
    pod = published["properties"]["spec"]["properties"]["template"]["properties"]["spec"]
    assert pod["properties"]["containers"]["items"]["properties"]["image"] == {"type": "string"}
    assert pod["required"] == ["containers"]
