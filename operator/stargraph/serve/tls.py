"""A TLS server context whose certificate follows its files, so a rotated certificate is served without a restart.

cert-manager renews a certificate by rewriting its Secret, and the kubelet swaps the files of the mounted volume
in place. At each TLS handshake (a ClientHello, with or without SNI) the files' identities are compared with those
of the last load — a `stat` of each, no read — and when they differ the pair is loaded into a new context, which
that connection and the following ones use. A pair that does not load (half written, key and certificate not
matching) leaves the previous one in service and is tried again at the next handshake.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import structlog

__all__ = ["ReloadingCertificate"]

log = structlog.get_logger("stargraph.serve")

_Stamp = tuple[tuple[int, int, int], ...]


class ReloadingCertificate:
    """`cert_file` and `key_file` (PEM) served by `server_context()`; the first load's errors are raised."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self._files = (cert_file, key_file)
        self._stamp = self._stamp_now()
        self._context = self._load()
        self.loads = 1
        """How many times a pair was loaded (the first load included)."""

    def server_context(self) -> ssl.SSLContext:
        """The context to listen with: it switches every new connection to the newest certificate."""
        front = self._load()
        front.sni_callback = self._on_hello
        return front

    def current(self) -> ssl.SSLContext:
        """The context of the newest certificate that loaded."""
        stamp = self._stamp_now()
        if stamp != self._stamp:
            try:
                self._context = self._load()
            except (OSError, ssl.SSLError) as exc:
                log.warning("tls certificate not reloaded, still serving the previous one", error=str(exc))
            else:
                self._stamp = stamp
                self.loads += 1
                log.info("tls certificate reloaded", cert_file=str(self._files[0]))
        return self._context

    def _on_hello(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        connection.context = self.current()

    def _stamp_now(self) -> _Stamp:
        try:
            stats = [os.stat(path) for path in self._files]
        except OSError:
            return ()
        return tuple((stat.st_ino, stat.st_mtime_ns, stat.st_size) for stat in stats)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=self._files[0], keyfile=self._files[1])
        return context
