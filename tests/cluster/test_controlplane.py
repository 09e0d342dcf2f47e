"""The local control plane behaves like a real cluster in the ways the operator relies on.

Custom resources with a status subresource, watches, conflicts on create, garbage collection by the
controller-manager, and RBAC for service accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import watch
from kubernetes.client import (
    ApiClient,
    ApiextensionsV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1ConfigMap,
    V1ObjectMeta,
    V1OwnerReference,
)
from kubernetes.client.exceptions import ApiException

from tests.support.controlplane import KubeCluster, api_client, poll_until
from tests.support.crds import namespaced_crd
from tests.support.rbac import grant

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL, KIND = "test.stargraph.io", "v1", "widgets", "Widget"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD = namespaced_crd(
    group=GROUP,
    version=VERSION,
    kind=KIND,
    plural=PLURAL,
    spec={"type": "object", "properties": {"size": {"type": "string"}}},
    status={"type": "object", "properties": {"phase": {"type": "string"}}},
)


def widget(name: str, size: str = "small") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": name}, "spec": {"size": size}}


@pytest.fixture(scope="module")
def widget_crd(control_plane: KubeCluster) -> Iterator[None]:
    with control_plane.api_client() as api:
        extensions = ApiextensionsV1Api(api)
        extensions.patch_custom_resource_definition(
            CRD_NAME, CRD, field_manager="stargraph-tests", force=True, _content_type="application/apply-patch+yaml"
        )

        def established() -> bool:
            status = extensions.read_custom_resource_definition(CRD_NAME).status
            conditions = (status and status.conditions) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        # Expect the first create to be slow anyway: the apiserver holds creates for 2 s after establishing a CRD.
        poll_until(established, timeout=10, what=f"CRD {CRD_NAME} to be established")
        yield
        extensions.delete_custom_resource_definition(CRD_NAME)


@pytest.mark.usefixtures("widget_crd")
def test_custom_resource_create_watch_and_patch(kube_api: ApiClient, namespace: str) -> None:
    custom = CustomObjectsApi(kube_api)
    listed = cast(dict[str, Any], custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL))
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("w1"))

    # Watching from the list's resourceVersion, so the ADDED event is for the create above, not a replay.
    watcher = watch.Watch()  # type: ignore[no-untyped-call]
    events = watcher.stream(  # type: ignore[no-untyped-call]
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=10,
    )
    event = next(events)
    watcher.stop()  # type: ignore[no-untyped-call]
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "w1")

    patched = cast(
        dict[str, Any],
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "w1", {"spec": {"size": "large"}, "status": {"phase": "Ignored"}}
        ),
    )
    # With a status subresource the main endpoint drops status changes, and /status drops spec changes.
    assert patched["spec"] == {"size": "large"}
    assert "status" not in patched
    patched = cast(
        dict[str, Any],
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "w1", {"spec": {"size": "ignored"}, "status": {"phase": "Done"}}
        ),
    )
    assert patched["status"] == {"phase": "Done"}
    assert patched["spec"] == {"size": "large"}


@pytest.mark.usefixtures("widget_crd")
def test_creating_an_existing_name_conflicts(kube_api: ApiClient, namespace: str) -> None:
    custom = CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("twice"))
    with pytest.raises(ApiException) as error:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("twice", "other"))
    assert error.value.status == 409


def test_garbage_collector_deletes_dependents(kube_api: ApiClient, namespace: str) -> None:
    core = CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, V1ConfigMap(metadata=V1ObjectMeta(name="owner")))
    assert owner.metadata is not None and owner.metadata.uid is not None
    owner_ref = V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, V1ConfigMap(metadata=V1ObjectMeta(name="owned", owner_references=[owner_ref]))
    )
    core.delete_namespaced_config_map("owner", namespace)

    def owned_is_gone() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    poll_until(owned_is_gone, timeout=30, interval=0.2, what="the garbage collector to delete the dependent")


def test_service_account_needs_a_role_binding(control_plane: KubeCluster, kube_api: ApiClient, namespace: str) -> None:
    kubeconfig = control_plane.service_account_kubeconfig(namespace=namespace, name="reader")
    with api_client(kubeconfig) as reader_api:
        reader = CoreV1Api(reader_api)
        with pytest.raises(ApiException) as error:
            reader.list_namespaced_config_map(namespace)
        assert error.value.status == 403

        grant(
            kube_api,
            namespace,
            service_account="reader",
            role="configmap-reader",
            group="",
            resource="configmaps",
            verb="list",
        )

        def can_list() -> bool:
            try:
                reader.list_namespaced_config_map(namespace)
            except ApiException as e:
                if e.status == 403:
                    return False
                raise
            return True

        # The authorizer reads RBAC objects from an informer cache, so the binding takes effect shortly after.
        poll_until(can_list, timeout=10, what="the RoleBinding to take effect")
