"""Segment MD5s hashed ahead of the upload threads, in order and within a bound."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from publisher.upload import _SegmentHashes


class Segments:
    """Stands in for a large file: its "MD5" of segment i is f"md5-{i}"; some fail."""

    def __init__(self, failing: set[int] = frozenset(), slow: int | None = None) -> None:
        self.hashed: list[int] = []
        self.failing = failing
        self.slow, self.gate = slow, threading.Event()

    def hash_segment(self, index: int) -> str:
        self.hashed.append(index)
        if index == self.slow:
            self.gate.wait(timeout=10)
        if index in self.failing:
            raise OSError(f"segment {index} unreadable")
        return f"md5-{index}"


def start(hashes: _SegmentHashes) -> threading.Thread:
    thread = threading.Thread(target=hashes.run, daemon=True)
    thread.start()
    return thread


def test_hashes_in_order_and_stays_within_ahead_of_the_last_segment_taken():
    large = Segments()
    hashes = _SegmentHashes([(large, i) for i in range(10)], ahead=3)
    thread = start(hashes)
    assert hashes.take(0).result(timeout=5) == "md5-0"
    assert hashes.futures[3].result(timeout=5) == "md5-3"
    time.sleep(0.2)  # room to run further ahead, were it not bounded
    assert large.hashed == [0, 1, 2, 3]  # 3 beyond the one taken
    assert [hashes.take(i).result(timeout=5) for i in range(1, 10)] == [
        f"md5-{i}" for i in range(1, 10)
    ]
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert large.hashed == list(range(10))


def test_a_segment_that_cannot_be_hashed_fails_alone():
    large = Segments(failing={1})
    hashes = _SegmentHashes([(large, i) for i in range(3)], ahead=3)
    start(hashes).join(timeout=5)
    assert hashes.take(0).result(timeout=1) == "md5-0"
    with pytest.raises(OSError, match="segment 1 unreadable"):
        hashes.take(1).result(timeout=1)
    assert hashes.take(2).result(timeout=1) == "md5-2"


def test_close_releases_a_sender_waiting_for_a_hash_and_stops_the_hasher():
    large = Segments(slow=2)
    hashes = _SegmentHashes([(large, i) for i in range(10)], ahead=2)
    thread = start(hashes)
    assert hashes.take(0).result(timeout=5) == "md5-0"
    waiting = hashes.take(2)  # its hash is still being computed
    time.sleep(0.1)
    hashes.close()  # as after another segment's upload failed
    with pytest.raises(CancelledError):
        waiting.result(timeout=5)
    large.gate.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert large.hashed == [0, 1, 2]  # nothing hashed after close
