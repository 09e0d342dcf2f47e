"""Benchmark dispatcher: ``python -m bench`` runs every registered benchmark, ``python -m bench NAME [ARGS]`` one.

Register a benchmark by adding its ``main(argv)`` to ``BENCHMARKS``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from bench import jobs_vs_cronjobs, operator_scale, raw_create, webhook_faults, webhook_path

BENCHMARKS: dict[str, Callable[[Sequence[str]], None]] = {
    "raw_create": raw_create.main,
    "webhook_path": webhook_path.main,
    "operator_scale": operator_scale.main,
    "webhook_faults": webhook_faults.main,
    "jobs_vs_cronjobs": jobs_vs_cronjobs.main,
}


def main(argv: Sequence[str]) -> int:
    if not argv:
        for name, run in BENCHMARKS.items():
            print(f"== {name}", flush=True)
            run([])
        return 0
    name, *args = argv
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose from: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    BENCHMARKS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
