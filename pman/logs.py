"""The processor's log as a status request returns it: its last lines, bounded in bytes, and
the logs of ended processors kept in memory, bounded in bytes too.

Kubernetes can give the last N lines of a log (``tailLines``) and stop after N bytes
(``limitBytes``), but not the last N bytes: a tail that is too long comes back as its first
bytes. So :func:`tail_of_log` asks again for fewer lines, a few times at most, and when the
last lines still do not fit shows their first bytes; either cut is said in the text.
"""

from __future__ import annotations

import codecs
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable

# Each read of a log costs at most max_bytes + 1 bytes; a status request makes this many.
MAX_READS = 4
# Logs of ended processors kept per pman process (they cannot change any more).
CACHE_BYTES = 32 << 20

Read = Callable[[int, int], "bytes | None"]


def tail_of_log(read: Read, *, lines: int, max_bytes: int) -> str | None:
    """The last ``lines`` lines of a log, or as many of them as fit in ``max_bytes``, decoded
    as UTF-8 with replacement; None while there is no log. ``read(lines, limit)`` gives at
    most ``limit`` bytes of the last ``lines`` lines (Kubernetes' ``tailLines`` and
    ``limitBytes``)."""
    tail = lines
    for attempt in range(MAX_READS):
        data = read(tail, max_bytes + 1)
        if data is None:
            return None
        if len(data) <= max_bytes:
            text = data.decode("utf-8", errors="replace")
            return text if tail == lines else _left_out(lines, max_bytes) + text
        if tail == 1 or attempt == MAX_READS - 1:
            break
        # Lines that ended within the bound: as many of the newest may fit.
        complete = data.count(b"\n", 0, max_bytes)
        tail = max(1, min(complete, tail // 2))
    head = _decoded_prefix(data[:max_bytes])
    cut = f"\n[pman: cut here, at {max_bytes} bytes (JOB_LOGS_MAX_BYTES); the log goes on]\n"
    return (_left_out(lines, max_bytes) if tail < lines else "") + head + cut


def _left_out(lines: int, max_bytes: int) -> str:
    return (
        f"[pman: earlier lines left out: the last {lines} lines (JOB_LOGS_TAIL) are more "
        f"than {max_bytes} bytes (JOB_LOGS_MAX_BYTES)]\n"
    )


def _decoded_prefix(data: bytes) -> str:
    """``data`` decoded, without the incomplete character a cut may leave at its end."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=False)


class LogCache:
    """Logs of ended processors by pod uid, each filed under its jid (so that a DELETE drops
    them), the least recently used dropped first once they hold more than ``capacity`` bytes
    of memory. ``on_change`` is told the bytes held after every change."""

    def __init__(self, *, capacity: int, on_change: Callable[[int], None] | None = None) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, tuple[str, str, int]] = OrderedDict()  # uid: jid, text, size
        self._held = 0
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda held: None)

    @property
    def held(self) -> int:
        """Bytes of memory the kept logs take."""
        return self._held

    def get(self, uid: str) -> str | None:
        with self._lock:
            if uid not in self._items:
                return None
            self._items.move_to_end(uid)
            return self._items[uid][1]

    def put(self, jid: str, uid: str, text: str) -> None:
        """Keep ``text``, unless it alone is larger than the whole cache."""
        size = sys.getsizeof(text)
        if size > self._capacity:
            return
        with self._lock:
            self._drop(uid)
            self._items[uid] = (jid, text, size)
            self._held += size
            while self._held > self._capacity:
                self._drop(next(iter(self._items)))
            self._on_change(self._held)

    def forget(self, jid: str) -> None:
        """Drop every log kept for job ``jid``."""
        with self._lock:
            for uid in [uid for uid, (owner, _, _) in self._items.items() if owner == jid]:
                self._drop(uid)
            self._on_change(self._held)

    def _drop(self, uid: str) -> None:
        if (item := self._items.pop(uid, None)) is not None:
            self._held -= item[2]
