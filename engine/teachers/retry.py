"""Retries for teacher requests: only where trying again can help, with exponential backoff and jitter.

Retried: connection refused or timed out while connecting, and HTTP 503 (a server still loading),
both before any token has arrived. Never retried: a stream that broke half-way (its partial answer is
discarded and the caller decides), a missing model, a bad request.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, TypeVar

import httpx

from engine.errors import GenerationCancelled, TeacherUnavailable

T = TypeVar("T")
BASE_DELAY_S = 0.5
MAX_DELAY_S = 8.0


class Retryable(Exception):
    """Raised inside an attempt to ask for another one; carries the user-facing reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def backoff(attempt: int, rng: random.Random) -> float:
    return min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt) * (0.5 + rng.random())


def with_retries(attempt: Callable[[], T], retries: int, *, cancel: threading.Event | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    rng = random.Random()
    for n in range(retries + 1):
        try:
            return attempt()
        except Retryable as err:
            if n == retries:
                raise TeacherUnavailable(f"{err.reason} (gave up after {retries + 1} attempts)") from None
            delay = backoff(n, rng)
            if cancel is not None:
                if cancel.wait(delay):
                    raise GenerationCancelled("generation cancelled") from None
            else:
                sleep(delay)
    raise AssertionError("unreachable")


def broken_stream(where: str, pieces: int, err: Exception | None, chunk_timeout_s: float) -> TeacherUnavailable:
    """The one message for a stream that went silent, broke, or ended early: the partial answer is dropped."""
    if err is None:
        why = "the stream ended before the answer was complete"
    elif isinstance(err, httpx.ReadTimeout):
        return TeacherUnavailable(f"{where} sent nothing for {chunk_timeout_s:.0f} s after {pieces} pieces; "
                                  "the partial answer was discarded")
    else:
        why = type(err).__name__
    return TeacherUnavailable(f"{where}: the connection broke after {pieces} pieces ({why}); "
                              "the partial answer was discarded")


def check_stream_status(resp: httpx.Response, busy: str, error: Callable[[httpx.Response], Exception]) -> None:
    """Before a streamed answer's body: HTTP 503 (loading, queue full) asks for another attempt with the
    reason `busy`; any other error status is raised as `error(resp)` says, with the body read."""
    if resp.status_code < 400:
        return
    resp.read()
    if resp.status_code == 503:
        raise Retryable(busy)
    raise error(resp)
