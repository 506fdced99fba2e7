"""A controller's work loop: a deduplicating queue of keys, timers, and one worker thread."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Hashable

log = logging.getLogger("localcluster.controller")


class Controller:
    """Calls ``sync(key)`` for each queued key, one at a time, in a background thread.

    ``enqueue`` is cheap and never touches the store, so store subscribers may call it.
    """

    name = "controller"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[Hashable, None] = {}
        self._timers: list[tuple[float, int, Hashable]] = []
        self._sequence = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name=f"localcluster-{self.name}", daemon=True
        )

    def enqueue(self, key: Hashable) -> None:
        with self._cond:
            self._pending[key] = None
            self._cond.notify()

    def enqueue_at(self, key: Hashable, when: float) -> None:
        """Sync ``key`` again at ``when`` (seconds since the epoch)."""
        with self._cond:
            heapq.heappush(self._timers, (when, next(self._sequence), key))
            self._cond.notify()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _next_key(self) -> Hashable | None:
        with self._cond:
            while not self._stopped:
                now = time.time()
                while self._timers and self._timers[0][0] <= now:
                    _, _, key = heapq.heappop(self._timers)
                    self._pending[key] = None
                if self._pending:
                    key = next(iter(self._pending))
                    del self._pending[key]
                    return key
                wait = self._timers[0][0] - now if self._timers else None
                self._cond.wait(timeout=wait)
            return None

    def _run(self) -> None:
        while True:
            key = self._next_key()
            if key is None:
                return
            try:
                self.sync(key)
            except Exception:
                log.exception("%s failed to sync %r", self.name, key)

    def sync(self, key: Hashable) -> None:
        raise NotImplementedError
