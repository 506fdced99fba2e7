"""The suite's one way to wait: poll until something holds, fail saying what never did."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T],
    *,
    timeout: float = 60,
    interval: float = 0.1,
    what: str = "the awaited condition",
    alive: subprocess.Popen | None = None,
) -> T:
    """``check()``'s first truthy answer, asked every ``interval`` seconds.

    Fails naming ``what`` once ``timeout`` seconds have passed, and at once, with its output,
    when the process ``alive`` has ended meanwhile (it would never come true then).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"{what}: the process ended first: {alive.communicate()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def states_until(
    read: Callable[[], T],
    until: Callable[[T], bool],
    *,
    timeout: float = 60,
    interval: float = 0.1,
    what: str = "the awaited state",
) -> tuple[T, list[T]]:
    """Read a state every ``interval`` seconds until ``until(state)``: the last state and
    every one read (to check what a client saw on the way). Fails showing the last one."""
    seen: list[T] = []

    def reached() -> bool:
        seen.append(read())
        return until(seen[-1])

    try:
        eventually(reached, timeout=timeout, interval=interval, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}; last: {seen[-1:]}") from None
    return seen[-1], seen
