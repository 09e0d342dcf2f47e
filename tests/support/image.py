"""The operator image, built by ``hack/build-image.sh``, and the podman command that builds and runs it.

``operator_image()`` runs the build script once per process (``build_image()`` every time it is called): seconds
when its inputs are unchanged, about two minutes cold; it returns the image name the script prints. ``podman()``
runs podman with the project's ``hack/containers.conf``, which this machine needs (see the file).
``mounted_image()`` exposes an image's root filesystem on the host, so tests read what the image holds without
starting a container, and ``image_size()`` is its size in bytes, base included.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BUILD_SCRIPT", "build_image", "image_size", "mounted_image", "operator_image", "podman"]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-image.sh"
CONTAINERS_CONF = REPO_ROOT / "hack" / "containers.conf"


@functools.cache
def operator_image() -> str:
    """The image built from the working tree's Containerfile and sources, once per process."""
    return build_image()


def build_image() -> str:
    """Run the build script (it builds only when the inputs changed) and return the image name it prints."""
    # This interpreter has pip (the test venv's); the system python3 may not.
    env = {**os.environ, "STARGRAPH_PYTHON": sys.executable}
    out = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return out.strip().splitlines()[-1]


def podman(
    *args: str, check: bool = True, timeout: float = 120.0, merge_stderr: bool = False
) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` with the project's containers.conf; raises with podman's stderr when ``check`` and it fails.

    ``merge_stderr`` sends podman's stderr into stdout, in the order written (``podman logs`` splits a container's
    two streams onto its own).
    """
    result = subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{(result.stderr or result.stdout).strip()}"
        )
    return result


def image_size(image: str) -> int:
    """The image's size in bytes, every layer counted (its base's too)."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)


@contextmanager
def mounted_image(image: str) -> Iterator[Path]:
    """The image's root filesystem, read-only on the host, for the body of the ``with`` (needs root)."""
    path = Path(podman("image", "mount", image).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", image)
