"""Third-party triggers arrive through the `stargraph.triggers` entry-point group, loaded and isolated like built-ins.

The test writes real distributions (package + `.dist-info` with `entry_points.txt`) into a directory on `sys.path`,
which is exactly what `pip install` leaves behind, so discovery goes through `importlib.metadata` unchanged.
"""

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from stargraph.plugin import load_trigger_plugins, new_plugin_manager
from stargraph.triggers import run_trigger_lifecycle


def write_distribution(site: Path, *, dist: str, module: str, source: str, entry_points: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in ("acme_triggers", "broken_triggers"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


async def test_third_party_trigger_is_discovered_loaded_and_isolated(site: Path) -> None:
    write_distribution(
        site,
        dist="acme_triggers",
        module="acme_triggers",
        source="""
            class QueueTrigger:
                started = False

                def init(self, deps):
                    self.deps = deps

                async def start(self):
                    QueueTrigger.started = True

                def stop(self):
                    pass

                def routes(self):
                    return []

            class CrashingTrigger(QueueTrigger):
                async def start(self):
                    raise RuntimeError("acme crashed")
        """,
        entry_points="""
            [stargraph.triggers]
            acme_queue = acme_triggers:QueueTrigger
            acme_crash = acme_triggers:CrashingTrigger
        """,
    )
    write_distribution(
        site,
        dist="broken_triggers",
        module="broken_triggers",
        source="raise ImportError('broken on import')\n",
        entry_points="""
            [stargraph.triggers]
            broken = broken_triggers:Nope
        """,
    )

    pm = new_plugin_manager()
    failures = load_trigger_plugins(pm)

    assert [failure.name for failure in failures] == ["broken"]
    names = {name for name, _ in pm.list_name_plugin()}
    assert {"acme_queue", "acme_crash", "cron", "webhook", "manual"} <= names

    results = {r.plugin_name: r for r in await run_trigger_lifecycle(pm, "trigger_start")}
    assert results["acme_queue"].success
    assert not results["acme_crash"].success and "acme crashed" in str(results["acme_crash"].error)
    assert sys.modules["acme_triggers"].QueueTrigger.started


def test_only_limits_discovery(site: Path) -> None:
    pm = new_plugin_manager()
    assert load_trigger_plugins(pm, only=["cron"]) == []
    assert [name for name, _ in pm.list_name_plugin()] == ["cron"]
