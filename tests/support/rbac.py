"""Granting a ServiceAccount a namespaced Role, as the RBAC tests need: one Role and its RoleBinding."""

from __future__ import annotations

from kubernetes.client import ApiClient, RbacAuthorizationV1Api

__all__ = ["grant"]


def grant(
    api: ApiClient, namespace: str, *, service_account: str, role: str, group: str, resource: str, verb: str
) -> None:
    """Let `service_account` (in `namespace`) `verb` `resource` of API `group` in `namespace`, through Role `role`.

    The RBAC authorizer reads bindings from an informer cache: the grant takes effect a moment after this returns.
    """
    rbac = RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {"metadata": {"name": role}, "rules": [{"apiGroups": [group], "resources": [resource], "verbs": [verb]}]},
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        },
    )
