"""The worker pool the scheduler, status writer and Event recorder share: bounded, resilient, drained on stop."""

import asyncio

from stargraph.workers import WorkerPool


async def test_a_raising_item_does_not_shrink_the_pool_and_every_item_is_handled() -> None:
    handled: list[int] = []

    async def handle(item: int) -> None:
        if item % 2:
            raise RuntimeError(f"bad item {item}")
        handled.append(item)

    pool: WorkerPool[int] = WorkerPool(handle, workers=1, name="test")
    await pool.start()
    for item in range(6):
        assert pool.put(item)
    assert await pool.stop(timeout=5) is True
    assert handled == [0, 2, 4]  # one worker, so the odd items' errors did not stop it


async def test_capacity_refuses_items_and_stop_reports_what_was_left() -> None:
    release = asyncio.Event()

    async def handle(item: int) -> None:
        await release.wait()

    pool: WorkerPool[int] = WorkerPool(handle, workers=1, name="test", capacity=2)
    await pool.start()
    assert pool.put(1)
    await asyncio.sleep(0)  # the worker takes item 1 and waits on it
    assert pool.put(2) and pool.put(3)
    assert pool.put(4) is False  # two queued: full
    assert pool.queued == 2
    assert await pool.stop(timeout=0.05) is False
    assert not pool.started
