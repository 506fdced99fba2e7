"""The processor's log bounded in bytes (the reads Kubernetes is asked for, what is shown),
and the cache of ended processors' logs bounded in bytes."""

from __future__ import annotations

import sys

from pman.logs import MAX_READS, LogCache, tail_of_log


class Log:
    """A log as Kubernetes serves it: the last ``tail`` lines, cut at ``limit`` bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[tuple[int, int]] = []

    def read(self, tail: int, limit: int) -> bytes:
        self.reads.append((tail, limit))
        lines = self.data.splitlines(keepends=True)[-tail:]
        return b"".join(lines)[:limit]


def test_a_log_that_fits_is_read_once_and_returned_whole():
    log = Log(b"".join(b"line %d\n" % i for i in range(50)))
    assert tail_of_log(log.read, lines=10, max_bytes=1000) == "".join(
        f"line {i}\n" for i in range(40, 50)
    )
    assert log.reads == [(10, 1001)]


def test_too_long_a_tail_gives_the_last_lines_that_fit_and_says_so():
    log = Log(b"".join(b"%04d %s\n" % (i, b"x" * 95) for i in range(1000)))  # 100 bytes a line
    text = tail_of_log(log.read, lines=1000, max_bytes=10_000)
    first, *shown = text.splitlines()
    assert first.startswith("[pman: earlier lines left out: the last 1000 lines")
    assert shown[-1].startswith("0999 ")
    assert len(shown) <= 100
    assert all(limit == 10_001 for _, limit in log.reads)
    assert len(log.reads) <= MAX_READS


def test_a_line_too_long_alone_gives_its_first_bytes_without_a_broken_character():
    log = Log(b"short\n" + "\u00e9".encode() * 5000)
    text = tail_of_log(log.read, lines=100, max_bytes=1001)
    assert "\ufffd" not in text
    assert "\u00e9" * 500 in text
    assert text.endswith("[pman: cut here, at 1001 bytes (JOB_LOGS_MAX_BYTES); the log goes on]\n")
    assert len(log.reads) <= MAX_READS


def test_no_log_yet_is_none():
    assert tail_of_log(lambda tail, limit: None, lines=10, max_bytes=100) is None


def test_the_cache_holds_at_most_its_capacity_dropping_the_least_recently_used():
    held = []
    cache = LogCache(capacity=3 * sys.getsizeof("x" * 1000), on_change=held.append)
    for uid in "abc":
        cache.put(f"job-{uid}", uid, uid * 1000)
    assert cache.get("a") == "a" * 1000  # now the most recently used
    cache.put("job-d", "d", "d" * 1000)
    assert cache.get("b") is None
    assert [cache.get(uid) is not None for uid in "acd"] == [True, True, True]
    assert cache.held == held[-1] <= 3 * sys.getsizeof("x" * 1000)


def test_a_log_larger_than_the_cache_is_not_kept_and_forget_drops_a_jobs_logs():
    cache = LogCache(capacity=10_000)
    cache.put("big", "u1", "x" * 20_000)
    assert cache.get("u1") is None
    cache.put("job", "u2", "two")
    cache.put("job", "u3", "three")
    cache.put("other", "u4", "four")
    cache.forget("job")
    assert (cache.get("u2"), cache.get("u3"), cache.get("u4")) == (None, None, "four")
    assert cache.held == sys.getsizeof("four")
