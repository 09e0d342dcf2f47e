"""Container images for the test nodes, built from this repository without a registry or an image builder.

One static Go program (``tests/support/testjob``) is the only file of two images: the Pod sandbox's pause image and
the image Job tests run (``args: [exit, "3"]``, ``[sleep, "5"]``...). They are written as one docker-archive
tarball, the format ``ctr images import`` reads, with fixed timestamps: the same source gives the same digests.
Writing the few JSON files ourselves spares the machine podman and its storage configuration, and the build takes
about a second (the Go build cache does the rest), so every session imports images made from its own source.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

__all__ = ["PAUSE_IMAGE", "TESTJOB_IMAGE", "build_images"]

SOURCE = Path(__file__).resolve().parent / "testjob"
PAUSE_IMAGE = "stargraph.local/pause:local"
TESTJOB_IMAGE = "stargraph.local/testjob:local"
_BINARY = "testjob"
# Per image, what the container runs when the Pod gives no command: the sandbox waits for SIGTERM; a Job
# container with no args succeeds at once.
_COMMANDS: dict[str, list[str]] = {PAUSE_IMAGE: [], TESTJOB_IMAGE: ["exit", "0"]}


def _go(*args: str, cwd: Path) -> str:
    # CGO_ENABLED=0: a static binary, for images that hold nothing else. GOTOOLCHAIN=local, as in hack/.
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"}
    return subprocess.run(["go", *args], cwd=cwd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    # uid, gid and mtime stay 0: the layer digest depends only on the program.
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, (data, mode) in files.items():
            _add(archive, name, data, mode)
    return buffer.getvalue()


def build_images(directory: Path) -> Path:
    """Build the program and write ``images.tar`` (both images) into ``directory``; return its path."""
    binary = directory / _BINARY
    _go("build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), ".", cwd=SOURCE)
    goarch = _go("env", "GOARCH", cwd=SOURCE).strip()
    layer = _tar({_BINARY: (binary.read_bytes(), 0o755)})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    files: dict[str, tuple[bytes, int]] = {"layer.tar": (layer, 0o644)}
    manifest: list[dict[str, Any]] = []
    for tag, command in _COMMANDS.items():
        config = {
            "architecture": goarch,
            "os": "linux",
            "config": {"Entrypoint": [f"/{_BINARY}"], "Cmd": command},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        data = json.dumps(config, sort_keys=True).encode()
        name = hashlib.sha256(data).hexdigest() + ".json"
        files[name] = (data, 0o644)
        manifest.append({"Config": name, "RepoTags": [tag], "Layers": ["layer.tar"]})
    files["manifest.json"] = (json.dumps(manifest).encode(), 0o644)
    archive = directory / "images.tar"
    archive.write_bytes(_tar(files))
    return archive
