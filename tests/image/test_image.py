"""What the operator image holds, measured on the image hack/build-image.sh built: its size, no compiler, no pip
cache or wheels left behind, the non-root user the chart runs it as, and the version the chart deploys.

The filesystem is read through ``podman image mount``, so nothing here depends on what a running container does;
tests/image/test_operator_container.py runs it.
"""

from __future__ import annotations

import re
import time

import pytest
import yaml

from tests.support.chart import CHART_DIR
from tests.support.image import build_image, image_size, mounted_image, podman

pytestmark = pytest.mark.cluster

# Measured: 357 MB, of which 160 MB are the Debian bookworm base (python:3.11-slim is some 30 MB smaller) and 197 MB
# the virtualenv (the kubernetes client alone is 128 MB of it). The budget leaves room for dependency updates, not
# for a build stage's leftovers.
SIZE_BUDGET = 400_000_000
COMPILER = re.compile(r"^(cc|c\+\+|c89|c99|gcc|g\+\+|clang|clang\+\+|tcc)(-[\d.]+)?$|^[\w.-]+-linux-gnu-(gcc|g\+\+)")
# The venv's own bin directory, then the PATH of both bases.
BIN_DIRS = ["opt/stargraph/bin", "usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"]


def test_image_size_is_within_budget(operator_image: str) -> None:
    size = image_size(operator_image)
    print(f"{operator_image}: {size / 1e6:.0f} MB")
    assert size <= SIZE_BUDGET, f"{size / 1e6:.0f} MB, over the {SIZE_BUDGET / 1e6:.0f} MB budget"


def test_no_compiler_no_pip_cache_no_wheels(operator_image: str) -> None:
    with mounted_image(operator_image) as root:
        compilers = [
            str(path.relative_to(root))
            for directory in BIN_DIRS
            if (root / directory).is_dir()
            for path in (root / directory).iterdir()
            if COMPILER.match(path.name)
        ]
        caches = [str(path.relative_to(root)) for path in root.rglob(".cache/pip")]
        assert (root / "opt/stargraph/bin/stargraph").is_file(), "not the operator image"
        assert not (root / "wheels").exists(), "the build stage's wheels reached the final image"
    assert compilers == []
    assert caches == []


def test_runs_as_uid_65532_by_default(operator_image: str) -> None:
    config = podman("image", "inspect", "--format", "{{.Config.User}}", operator_image).stdout.strip()
    assert config == "65532:65532"
    with mounted_image(operator_image) as root:
        passwd = (root / "etc/passwd").read_text()
    assert re.search(r"^stargraph:x:65532:65532:", passwd, re.M), passwd


def test_version_matches_the_charts_app_version(operator_image: str) -> None:
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    result = podman("run", "--rm", "--network", "none", "--entrypoint", "stargraph", operator_image, "--version")
    assert result.stdout.strip() == f"stargraph {app_version}"


def test_the_cache_answers_at_once_for_unchanged_inputs(operator_image: str) -> None:
    """A second build of the same inputs is the cached image: no rebuild, same image name."""
    started = time.monotonic()
    assert build_image() == operator_image
    assert time.monotonic() - started < 10
