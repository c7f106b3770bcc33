"""Run a blocking call that is safe to abandon (a health check, a discovery probe) without holding
up the app's exit.

Why: Textual's thread workers run in asyncio's default executor, and the interpreter joins those
threads before it exits, so a probe waiting on a slow server would keep a quitting app on a blank
screen. Here the call runs in a daemon thread and an async worker awaits its result: cancelling the
worker (as quitting does) returns at once and the thread is left to end on its own. Only calls that
write nothing may run this way; the engine's work (which saves state) stays in thread workers with
a cancel event.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


async def in_daemon_thread(call: Callable[[], T]) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value, error) -> None:
        if future.done():
            return  # the awaiting worker was cancelled meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = call(), None
        except BaseException as err:  # handed to the awaiting coroutine
            value, error = None, err
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the app's loop is closed: nobody waits for this any more

    threading.Thread(target=target, daemon=True, name="shake-probe").start()
    return await future
