"""Deterministic jitter: the fixed delay after each nominal fire at which a cron trigger creates its Run.

Many schedules name the same instant (`0 * * * *`); jitter spreads their Runs over a window without making any
trigger's timing random. A trigger's offset is a pure function of a seed (its Kubernetes uid, or its trigger id
without a cluster), so every replica and every restart computes the same one:

    offset = floor( u * jitterSeconds * 1000 ) milliseconds,
    u      = the first 8 bytes, big-endian, of sha256( "stargraph.io/jitter" ‖ 0x00 ‖ utf8(seed) ) / 2**64

`u` is uniform in [0, 1), so offsets spread evenly over [0, jitterSeconds), and a changed `jitterSeconds` scales a
trigger's offset rather than moving it to a new random place in the window. The fire keeps its nominal instant:
only the moment its Run is created moves.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

__all__ = ["jitter_offset"]

_DOMAIN = b"stargraph.io/jitter\x00"


def jitter_offset(seed: str, *, jitter_seconds: int) -> timedelta:
    """The delay in [0, `jitter_seconds`) for the trigger identified by `seed`; zero when `jitter_seconds` is 0."""
    if jitter_seconds < 0:
        raise ValueError("jitter_seconds must not be negative")
    fraction = int.from_bytes(hashlib.sha256(_DOMAIN + seed.encode("utf-8")).digest()[:8], "big")
    return timedelta(milliseconds=(fraction * jitter_seconds * 1000) >> 64)
