"""Where the operator's Kubernetes credentials come from.

``load_credentials`` tries, in order: an explicit kubeconfig, the in-cluster ServiceAccount
(``$KUBERNETES_SERVICE_HOST`` and the mounted token and CA files), then ``$KUBECONFIG`` or ``~/.kube/config``. The
``kubernetes`` package parses
kubeconfigs (contexts, embedded certificates, exec and auth-provider plugins) into a ``Configuration`` of our own:
never its global default, which kopf overwrites when it logs in. It is used for nothing else; ``KubeClient`` makes
the requests. Parsing reads files and may run a credential plugin, so call ``load_credentials`` at start-up or in a
thread, not on a busy event loop.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import Configuration
from kubernetes.config import load_kube_config
from kubernetes.config.incluster_config import InClusterConfigLoader

from stargraph.k8s.errors import ConfigError

__all__ = [
    "SERVICE_ACCOUNT_CA_FILE",
    "SERVICE_ACCOUNT_TOKEN_FILE",
    "Credentials",
    "in_cluster_credentials",
    "kubeconfig_credentials",
    "load_credentials",
]

SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_ACCOUNT_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
_DEFAULT_KUBECONFIG = "~/.kube/config"


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """How to reach and authenticate to one apiserver.

    At most one bearer-token source is set: a fixed ``token``, a ``token_file`` that is re-read when it changes
    (in-cluster bound tokens rotate), or ``refresh``, a blocking callable that returns the current token (a
    kubeconfig credential plugin; it runs the plugin again once the token is about to expire). A client
    certificate (``cert_file`` + ``key_file``) may be used instead of, or as well as, a token. ``source`` says
    where the credentials came from, for messages.
    """

    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    refresh: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)
    verify: bool = True
    tls_server_name: str | None = None
    source: str = ""

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting ``ca_file``/``ca_data`` (else the system CAs), with the client cert."""
        # cadata takes PEM as str; bytes would be read as DER.
        cadata = self.ca_data.decode("ascii") if self.ca_data is not None else None
        context = ssl.create_default_context(cafile=self.ca_file, cadata=cadata)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def load_credentials(*, kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """Credentials from ``kubeconfig`` if given, else in-cluster, else ``$KUBECONFIG`` / ``~/.kube/config``.

    ``context`` selects a kubeconfig context and so skips the in-cluster attempt. Raises ``ConfigError`` naming
    everything tried when nothing is usable.
    """
    if kubeconfig is not None:
        return kubeconfig_credentials(kubeconfig, context=context)
    tried: list[str] = []
    if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return in_cluster_credentials()
        except ConfigError as e:
            tried.append(str(e))
    # Read at call time: the kubernetes package reads $KUBECONFIG once, at import.
    default = os.environ.get("KUBECONFIG") or _DEFAULT_KUBECONFIG
    try:
        return kubeconfig_credentials(default, context=context)
    except ConfigError as e:
        tried.append(str(e))
    raise ConfigError("no usable Kubernetes credentials: " + "; ".join(tried))


def kubeconfig_credentials(kubeconfig: str, *, context: str | None = None) -> Credentials:
    """Credentials from ``kubeconfig`` (a path, or an ``os.pathsep``-separated list merged like kubectl does)."""
    where = f"kubeconfig {kubeconfig}" + (f" (context {context!r})" if context else "")
    if not any(os.path.exists(os.path.expanduser(p)) for p in kubeconfig.split(os.pathsep) if p):
        raise ConfigError(f"{where}: no such file")
    configuration = Configuration()
    try:
        # persist_config=False: refreshed plugin credentials must not be written back into the user's file.
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False
        )
    except Exception as e:
        # The loader raises ConfigException, yaml errors, KeyError or TypeError depending on what is malformed.
        raise ConfigError(f"{where}: {e}") from e
    if configuration.proxy:
        raise ConfigError(f"{where}: proxy-url is not supported")
    hook: Callable[[Configuration], None] | None = configuration.refresh_api_key_hook
    return Credentials(
        server=configuration.host,
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        token=_bearer_token(configuration.api_key, where),
        refresh=_plugin_refresh(configuration, hook, where) if hook is not None else None,
        verify=bool(configuration.verify_ssl),
        tls_server_name=configuration.tls_server_name,
        source=where,
    )


def in_cluster_credentials(
    *,
    environ: Mapping[str, str] = os.environ,
    token_file: str = SERVICE_ACCOUNT_TOKEN_FILE,
    ca_file: str = SERVICE_ACCOUNT_CA_FILE,
) -> Credentials:
    """The Pod's ServiceAccount: apiserver from ``KUBERNETES_SERVICE_HOST``/``_PORT``, token re-read from its file."""
    configuration = Configuration()
    try:
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=token_file, cert_filename=ca_file, try_refresh_token=False, environ=environ
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except Exception as e:
        raise ConfigError(f"in-cluster ServiceAccount ({token_file}, {ca_file}): {e}") from e
    return Credentials(server=configuration.host, ca_file=ca_file, token_file=token_file, source="in-cluster")


def _plugin_refresh(
    configuration: Configuration, hook: Callable[[Configuration], None], where: str
) -> Callable[[], str | None]:
    def refresh() -> str | None:
        # The loader's hook re-runs the exec/auth-provider plugin only once its token is near expiry; otherwise
        # it just re-installs the token it has, so calling it every few seconds is cheap.
        hook(configuration)
        return _bearer_token(configuration.api_key, where)

    return refresh


def _bearer_token(api_key: Mapping[str, Any], where: str) -> str | None:
    value = api_key.get("BearerToken")
    if value is None:
        return None
    scheme, _, token = str(value).partition(" ")
    if scheme.lower() != "bearer":
        # The loader turns username/password into Basic auth, which Kubernetes removed in 1.19.
        raise ConfigError(f"{where}: {scheme} authentication is not supported, only bearer tokens and certificates")
    return token
