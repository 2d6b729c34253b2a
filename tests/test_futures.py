"""faultproof/futures.py: a future settled from another thread gets the first outcome, on its loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from faultproof.futures import settle_from_thread


def _from_thread(fn: object, *args: object, **kw: object) -> None:
    t = threading.Thread(target=fn, args=args, kwargs=kw)  # type: ignore[arg-type]
    t.start()
    t.join()


async def test_a_result_crosses_and_the_first_outcome_stands() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []  # what the loop's callbacks raised (InvalidStateError, ...)
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        fut: asyncio.Future[int] = loop.create_future()
        _from_thread(settle_from_thread, fut, 7)
        _from_thread(settle_from_thread, fut, 8)  # a second outcome: ignored, never set twice
        _from_thread(settle_from_thread, fut, exc=ValueError("late"))
        assert not fut.done()  # nothing ran on the loop yet: only scheduled there
        assert await fut == 7
        await asyncio.sleep(0)  # the later settles have run too
        assert fut.result() == 7 and errors == []
    finally:
        loop.set_exception_handler(None)


async def test_an_exception_crosses() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    _from_thread(settle_from_thread, fut, 1, exc=KeyError("gone"))  # exc wins over result
    with pytest.raises(KeyError, match="gone"):
        await fut


async def test_a_cancelled_future_is_left_cancelled() -> None:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.cancel()
    _from_thread(settle_from_thread, fut)
    await asyncio.sleep(0)  # the settle callback runs, finds it done, leaves it
    assert fut.cancelled()


def test_a_closed_loop_raises_for_the_caller_to_judge() -> None:
    loop = asyncio.new_event_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.close()
    with pytest.raises(RuntimeError):
        settle_from_thread(fut)
