"""A third-party trigger distribution on disk: one module and its dist-info, discoverable through PYTHONPATH.

Exactly what `pip install` leaves behind for a plugin package, so entry-point discovery finds it the way it finds a
real one: `importlib.metadata` reads the dist-info's `entry_points.txt` from any directory on the path.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["write_trigger_distribution"]


def write_trigger_distribution(site: Path, *, module: str, source: str, entry_point: str) -> None:
    """Write `<module>.py` holding `source` and a dist-info declaring `<module> = <module>:<entry_point>`."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stargraph.triggers]\n{module} = {module}:{entry_point}\n")
