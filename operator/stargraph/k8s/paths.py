"""URL paths of Kubernetes resources: the core group lives under ``/api/v1``, every other group under ``/apis``."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["path"]


def path(
    *,
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The path of a collection (no ``name``), an object, or an object's ``subresource`` (``status``, ...).

    ``path(group="", version="v1", plural="configmaps", namespace="ns", name="c")`` is
    ``/api/v1/namespaces/ns/configmaps/c``; without ``namespace`` the path is cluster-wide (or cluster-scoped).
    """
    if subresource is not None and name is None:
        raise ValueError(f"subresource {subresource!r} needs an object name")
    parts = ["/api", version] if group == "" else ["/apis", group, version]
    if namespace is not None:
        parts += ["namespaces", _segment(namespace)]
    parts.append(plural)
    if name is not None:
        parts.append(_segment(name))
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


def _segment(value: str) -> str:
    # Valid names never need quoting; an invalid one must fail at the apiserver, not silently address another
    # URL: "/" is quoted, and "", "." and ".." (which quoting leaves alone) are refused.
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} is not a valid namespace or object name")
    return quote(value, safe="")
