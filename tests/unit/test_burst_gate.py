"""The burst gate: reports wait while Runs or Jobs are being made, until creation is quiet, and never past the bound."""

from __future__ import annotations

import asyncio

from stargraph.controller.burst_gate import BurstGate
from stargraph.workers import Idle

QUIET, BOUND = 0.05, 0.5


class FakeStage:
    def __init__(self) -> None:
        self.flag = Idle()

    async def wait_idle(self) -> None:
        await self.flag.wait()

    @property
    def idle_since(self) -> float | None:
        return self.flag.since


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_stage_idle_for_long_lets_reports_through_at_once() -> None:
    gate = BurstGate(lambda: [FakeStage(), FakeStage()], quiet=QUIET, bound=BOUND)
    waiter = asyncio.create_task(gate.wait())
    await settle()
    assert waiter.done()


async def test_reports_wait_for_a_quiet_spell_not_a_moment_of_idleness() -> None:
    runs, jobs = FakeStage(), FakeStage()
    gate = BurstGate(lambda: [runs, jobs], quiet=QUIET, bound=60.0)
    runs.flag.busy()
    waiter = asyncio.create_task(gate.wait())
    await settle()
    assert not waiter.done()
    runs.flag.done()
    jobs.flag.busy()  # the Run's Job is next: still inside the burst
    await settle()
    assert not waiter.done()
    jobs.flag.done()
    await settle()
    assert not waiter.done(), "idle for a moment is not the end of a burst"
    await asyncio.wait_for(waiter, 5.0)
    quiet_for = asyncio.get_running_loop().time() - (jobs.idle_since or 0.0)
    assert quiet_for >= QUIET


async def test_creation_that_never_pauses_holds_reports_only_up_to_the_bound() -> None:
    stage = FakeStage()
    stage.flag.busy()
    gate = BurstGate(lambda: [stage], quiet=QUIET, bound=BOUND)
    first = asyncio.create_task(gate.wait())
    await asyncio.wait_for(first, 5.0)
    assert stage.idle_since is None, "released by the bound while creation went on"
    # Reports arriving right after, while creation still goes on, are not held again: the hold has been spent.
    second = asyncio.create_task(gate.wait())
    await settle()
    assert second.done()


async def test_a_gate_left_alone_holds_the_next_burst_again() -> None:
    stage = FakeStage()
    stage.flag.busy()
    gate = BurstGate(lambda: [stage], quiet=QUIET, bound=BOUND)
    await asyncio.wait_for(gate.wait(), 5.0)
    await asyncio.sleep(QUIET * 4)  # nobody waits meanwhile
    later = asyncio.create_task(gate.wait())
    await settle()
    assert not later.done()
    stage.flag.done()
    await asyncio.wait_for(later, 5.0)
