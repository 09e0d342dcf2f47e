"""stargraph.k8s against a real apiserver: credentials, CRUD, errors, watches, reviews and Events.

Set-up that is not under test (namespaces, RBAC objects, a CRD) uses the sync ``kubernetes`` client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api

from stargraph.k8s import (
    ApiError,
    ApiUnavailable,
    ConfigError,
    Conflict,
    Credentials,
    KubeClient,
    NotFound,
    ObjectRef,
    WatchEvent,
    WatchExpired,
    in_cluster_credentials,
    load_credentials,
    may,
    path,
    record_event,
    review_token,
)
from tests.support.controlplane import KubeCluster, kubeconfig_context, poll_until
from tests.support.rbac import grant

pytestmark = pytest.mark.cluster

PROBES = {"group": "k8stest.stargraph.io", "version": "v1", "plural": "probes"}


def configmaps(namespace: str, name: str | None = None) -> str:
    return path(group="", version="v1", plural="configmaps", namespace=namespace, name=name)


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def whoami(api: KubeClient) -> str:
    review = await api.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    username: str = review["status"]["userInfo"]["username"]
    return username


@pytest.fixture
def admin(control_plane: KubeCluster) -> Credentials:
    return load_credentials(kubeconfig=str(control_plane.kubeconfig))


@pytest.fixture
async def api(admin: Credentials) -> AsyncIterator[KubeClient]:
    async with KubeClient(admin) as client:
        yield client


@pytest.fixture(scope="module")
def probe_crd(control_plane: KubeCluster) -> Iterator[None]:
    """A CRD created mid-session, so its watch cache starts at a high resourceVersion (see the 410 test)."""
    name = f"{PROBES['plural']}.{PROBES['group']}"
    # Any: the sync client accepts plain dicts, but its type hints only name its model classes.
    crd: Any = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": PROBES["group"],
            "scope": "Namespaced",
            "names": {"plural": PROBES["plural"], "kind": "Probe"},
            "versions": [
                {
                    "name": PROBES["version"],
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    with control_plane.api_client() as client:
        extensions = ApiextensionsV1Api(client)
        extensions.create_custom_resource_definition(crd)

        def established() -> bool:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        poll_until(established, timeout=10, what=f"CRD {name} to be established")
        yield
        extensions.delete_custom_resource_definition(name)


# --- credentials -----------------------------------------------------------------------------------------------


async def test_admin_kubeconfig_authenticates_with_a_client_certificate(admin: Credentials, api: KubeClient) -> None:
    assert admin.cert_file and admin.key_file and admin.token is None
    assert admin.server.startswith("https://127.0.0.1:")
    assert await whoami(api) == "stargraph-admin"


async def test_service_account_kubeconfig_authenticates_with_a_token(
    control_plane: KubeCluster, namespace: str
) -> None:
    kubeconfig = control_plane.service_account_kubeconfig(namespace=namespace, name="robot")
    credentials = load_credentials(kubeconfig=str(kubeconfig))
    assert credentials.token and credentials.cert_file is None
    async with KubeClient(credentials) as api:
        assert await whoami(api) == f"system:serviceaccount:{namespace}:robot"


async def test_exec_plugin_token_is_refreshed_when_it_expires(
    control_plane: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    sa = load_credentials(kubeconfig=str(control_plane.service_account_kubeconfig(namespace=namespace, name="ex")))
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    # Expiring within the loader's 5-minute safety margin, the token counts as expired at every check.
    plugin.write_text(
        "import datetime, json, pathlib\n"
        f"runs = pathlib.Path({str(runs)!r})\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        "expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        f"    'status': {{'token': {sa.token!r}, 'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}}}))\n"
    )
    cluster, _ = kubeconfig_context(control_plane.kubeconfig)
    kubeconfig = tmp_path / "exec.kubeconfig"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin)],
            "interactiveMode": "Never",
        }
    }
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "exec",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "exec", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )

    credentials = load_credentials(kubeconfig=str(kubeconfig))
    assert credentials.token == sa.token and credentials.refresh is not None
    assert runs.read_text() == "x"
    async with KubeClient(credentials, token_check_interval=0) as api:
        assert await whoami(api) == f"system:serviceaccount:{namespace}:ex"
        await whoami(api)
    assert runs.read_text() == "xxx"


async def test_in_cluster_token_file_is_reread_when_it_rotates(
    control_plane: KubeCluster, admin: Credentials, namespace: str, tmp_path: Path
) -> None:
    def token(name: str) -> str:
        kubeconfig = control_plane.service_account_kubeconfig(namespace=namespace, name=name)
        value = load_credentials(kubeconfig=str(kubeconfig)).token
        assert value is not None
        return value

    token_file = tmp_path / "token"
    token_file.write_text(token("first"))
    assert admin.ca_file is not None
    host, port = admin.server.removeprefix("https://").rsplit(":", 1)
    credentials = in_cluster_credentials(
        environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
        token_file=str(token_file),
        ca_file=admin.ca_file,
    )
    assert credentials.server == admin.server and credentials.token_file == str(token_file)
    async with KubeClient(credentials, token_check_interval=0) as api:
        assert await whoami(api) == f"system:serviceaccount:{namespace}:first"
        # Replaced the way the kubelet does it: a new file swapped in, never a half-written one.
        rotated = tmp_path / "token.new"
        rotated.write_text(token("second"))
        rotated.replace(token_file)
        assert await whoami(api) == f"system:serviceaccount:{namespace}:second"


def test_config_error_names_the_path_and_context(control_plane: KubeCluster, tmp_path: Path) -> None:
    missing = tmp_path / "nope.kubeconfig"
    with pytest.raises(ConfigError, match=str(missing)):
        load_credentials(kubeconfig=str(missing))
    with pytest.raises(ConfigError, match=r"context 'elsewhere'"):
        load_credentials(kubeconfig=str(control_plane.kubeconfig), context="elsewhere")


def test_without_any_configuration_the_error_lists_what_was_tried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"in-cluster.*; kubeconfig .*absent: no such file"):
        load_credentials()


# --- requests and errors ---------------------------------------------------------------------------------------


async def test_create_get_patch_delete_a_configmap(api: KubeClient, namespace: str) -> None:
    created = await api.create(configmaps(namespace), configmap("settings", colour="red"))
    assert created["metadata"]["uid"]

    fetched = await api.get(configmaps(namespace, "settings"))
    assert fetched["data"] == {"colour": "red"}

    patched = await api.patch(configmaps(namespace, "settings"), {"data": {"size": "big", "colour": None}})
    assert patched["data"] == {"size": "big"}
    patched = await api.patch(
        configmaps(namespace, "settings"), [{"op": "add", "path": "/data/shape", "value": "round"}], patch_type="json"
    )
    assert patched["data"] == {"size": "big", "shape": "round"}

    with pytest.raises(Conflict) as stale:
        await api.delete(configmaps(namespace, "settings"), preconditions={"uid": "0000-not-the-uid"})
    assert stale.value.status == 409
    await api.delete(
        configmaps(namespace, "settings"),
        propagation_policy="Background",
        preconditions={"uid": created["metadata"]["uid"]},
    )
    with pytest.raises(NotFound):
        await api.get(configmaps(namespace, "settings"))


async def test_second_create_is_409_already_exists(api: KubeClient, namespace: str) -> None:
    await api.create(configmaps(namespace), configmap("once"))
    with pytest.raises(ApiError) as error:
        await api.create(configmaps(namespace), configmap("once"))
    assert isinstance(error.value, Conflict)
    assert (error.value.status, error.value.reason) == (409, "AlreadyExists")
    assert "once" in error.value.message
    assert error.value.body is not None and error.value.body["kind"] == "Status"


async def test_get_missing_is_404(api: KubeClient, namespace: str) -> None:
    with pytest.raises(NotFound) as error:
        await api.get(configmaps(namespace, "missing"))
    assert (error.value.status, error.value.reason) == (404, "NotFound")


async def test_invalid_object_is_422_naming_the_field(api: KubeClient, namespace: str) -> None:
    with pytest.raises(ApiError) as error:
        await api.create(configmaps(namespace), configmap("Not_A_Name"))
    assert (error.value.status, error.value.reason) == (422, "Invalid")
    assert "metadata.name" in error.value.message


async def test_closed_port_is_api_unavailable(admin: Credentials) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Bound but not listening: connecting is refused.
    async with KubeClient(dataclasses.replace(admin, server=f"https://127.0.0.1:{port}")) as api:
        with pytest.raises(ApiUnavailable, match=f"GET /api/v1/namespaces/default/configmaps/x.*{port}"):
            await api.get(configmaps("default", "x"))


# --- list and watch --------------------------------------------------------------------------------------------


async def test_watch_sees_added_modified_deleted_and_bookmarks(api: KubeClient, namespace: str) -> None:
    listed = await api.list(configmaps(namespace), params={"labelSelector": "test=watch"})
    assert listed["items"] == []
    since = listed["metadata"]["resourceVersion"]
    events: list[WatchEvent] = []

    async def watch() -> None:
        # The apiserver sends a bookmark shortly before the watch's timeout, so a short watch sees one.
        stream = api.watch(
            configmaps(namespace), resource_version=since, params={"labelSelector": "test=watch"}, timeout_seconds=4
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                events.append(event)

    watching = asyncio.create_task(watch())
    body = configmap("watched", v="1")
    body["metadata"]["labels"] = {"test": "watch"}
    await api.create(configmaps(namespace), body)
    await api.patch(configmaps(namespace, "watched"), {"data": {"v": "2"}})
    await api.delete(configmaps(namespace, "watched"))
    await api.create(configmaps(namespace), configmap("unlabelled"))
    await asyncio.wait_for(watching, timeout=15)

    changes = [(e.type, e.object["metadata"]["name"], e.object.get("data")) for e in events if e.type != "BOOKMARK"]
    assert changes == [
        ("ADDED", "watched", {"v": "1"}),
        ("MODIFIED", "watched", {"v": "2"}),
        ("DELETED", "watched", {"v": "2"}),
    ]
    bookmarks = [e for e in events if e.type == "BOOKMARK"]
    assert bookmarks, "no bookmark before the watch timed out"
    assert int(bookmarks[-1].object["metadata"]["resourceVersion"]) >= int(since)


async def test_metadata_only_list_and_watch_of_secrets_carry_no_data(api: KubeClient, namespace: str) -> None:
    secrets = path(group="", version="v1", plural="secrets", namespace=namespace)

    def large_secret(**metadata: Any) -> dict[str, Any]:
        data = {"release": base64.b64encode(os.urandom(500 * 1024)).decode()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big", **metadata}, "data": data}

    await api.create(secrets, large_secret())
    listed = await api.list(secrets, metadata_only=True)
    assert listed["kind"] == "PartialObjectMetadataList"
    [item] = [i for i in listed["items"] if i["metadata"]["name"] == "big"]
    assert "data" not in item and item["metadata"]["resourceVersion"]
    assert len(orjson.dumps(listed)) < 16_384, "the list carried more than metadata"

    events: list[WatchEvent] = []

    async def watch() -> None:
        stream = api.watch(
            secrets, resource_version=listed["metadata"]["resourceVersion"], metadata_only=True, timeout_seconds=4
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                events.append(event)

    watching = asyncio.create_task(watch())
    current = await api.get(path(group="", version="v1", plural="secrets", namespace=namespace, name="big"))
    await api.request(
        "PUT",
        path(group="", version="v1", plural="secrets", namespace=namespace, name="big"),
        json=large_secret(resourceVersion=current["metadata"]["resourceVersion"]),
    )
    await api.delete(path(group="", version="v1", plural="secrets", namespace=namespace, name="big"))
    await asyncio.wait_for(watching, timeout=15)

    changes = [(e.type, e.object["metadata"]["name"]) for e in events if e.type != "BOOKMARK"]
    assert changes == [("MODIFIED", "big"), ("DELETED", "big")]
    # Bookmarks too come as PartialObjectMetadata (or the watch would have raised ProtocolError on one).
    assert any(e.type == "BOOKMARK" for e in events), "no bookmark before the watch timed out"
    assert {e.object["kind"] for e in events} == {"PartialObjectMetadata"}
    assert not [e for e in events if "data" in e.object]
    assert max(len(orjson.dumps(e.object)) for e in events) < 8_192, "a watch event carried more than metadata"


@pytest.mark.usefixtures("probe_crd")
async def test_watch_from_a_too_old_resource_version_is_watch_expired(api: KubeClient, namespace: str) -> None:
    # The watch cache of a CRD created mid-session begins at the resourceVersion of its creation; "1" is older,
    # which the apiserver reports as an ERROR event with code 410 on an otherwise successful watch.
    probes = path(**PROBES, namespace=namespace)
    await api.create(probes, {"apiVersion": "k8stest.stargraph.io/v1", "kind": "Probe", "metadata": {"name": "p"}})
    with pytest.raises(WatchExpired) as error:
        async with contextlib.aclosing(api.watch(probes, resource_version="1", timeout_seconds=5)) as stream:
            async for event in stream:
                pytest.fail(f"unexpected {event}")
    assert (error.value.status, error.value.reason) == (410, "Expired")
    assert "too old resource version" in error.value.message


# --- TokenReview and SubjectAccessReview -----------------------------------------------------------------------


async def test_token_review(api: KubeClient, control_plane: KubeCluster, namespace: str) -> None:
    token = load_credentials(kubeconfig=str(control_plane.service_account_kubeconfig(namespace=namespace, name="c")))
    assert token.token is not None
    user = await review_token(api, token.token)
    assert user is not None
    assert user.username == f"system:serviceaccount:{namespace}:c"
    assert user.uid
    assert f"system:serviceaccounts:{namespace}" in user.groups
    assert "authentication.kubernetes.io/credential-id" in user.extra

    assert await review_token(api, "garbage") is None
    assert await review_token(api, "") is None


async def test_subject_access_review_follows_rbac(
    api: KubeClient, control_plane: KubeCluster, kube_api: ApiClient, namespace: str
) -> None:
    sa = load_credentials(kubeconfig=str(control_plane.service_account_kubeconfig(namespace=namespace, name="poster")))
    assert sa.token is not None
    user = await review_token(api, sa.token)
    assert user is not None

    async def may_create_runs() -> bool:
        return await may(api, user, verb="create", group="stargraph.io", resource="runs", namespace=namespace)

    assert not await may_create_runs()

    grant(
        kube_api,
        namespace,
        service_account="poster",
        role="run-creator",
        group="stargraph.io",
        resource="runs",
        verb="create",
    )
    # The RBAC authorizer reads bindings from an informer cache: they take effect shortly after creation.
    deadline = time.monotonic() + 10
    while not await may_create_runs():
        assert time.monotonic() < deadline, "the RoleBinding never took effect"
        await asyncio.sleep(0.1)

    assert not await may(api, user, verb="delete", group="stargraph.io", resource="runs", namespace=namespace)
    assert not await may(api, user, verb="create", group="stargraph.io", resource="runs", namespace="default")


# --- Events ----------------------------------------------------------------------------------------------------


async def test_record_event_is_visible_to_kubectl(api: KubeClient, control_plane: KubeCluster, namespace: str) -> None:
    involved = ObjectRef.of(await api.create(configmaps(namespace), configmap("subject")))
    await record_event(
        api, involved=involved, type="Warning", reason="ScheduleInvalid", message="é" * 600, reporting_instance="t-1"
    )

    kubectl = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "get",
        "events",
        "-n",
        namespace,
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await kubectl.communicate()
    assert kubectl.returncode == 0
    [event] = json.loads(out)["items"]
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "subject",
        "namespace": namespace,
        "uid": involved.uid,
    }
    assert (event["type"], event["reason"], event["action"]) == ("Warning", "ScheduleInvalid", "ScheduleInvalid")
    assert event["reportingComponent"] == "stargraph.io/operator"
    assert event["reportingInstance"] == "t-1"
    # 1,024 bytes is 512 two-byte characters.
    assert event["message"] == "é" * 512
    assert event["metadata"]["name"].startswith("subject.")


async def test_record_event_failure_is_logged_not_raised(api: KubeClient) -> None:
    involved = ObjectRef("v1", "ConfigMap", "x", namespace=f"absent-{os.getpid()}")
    with structlog.testing.capture_logs() as logs:
        await record_event(api, involved=involved, type="Normal", reason="Fired", message="m")
    assert [entry["event"] for entry in logs] == ["could not record event"]
    assert logs[0]["log_level"] == "warning"
