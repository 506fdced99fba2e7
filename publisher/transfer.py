"""What the upload and the download share: how many requests they keep in flight, the
thread pool they run them in, and how a prefix names objects."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

from publisher.errors import Interrupted

THREADS = 32
"""Requests in flight (upload and download): small objects are latency-bound on the
server, so many help."""
SEGMENT_THREADS = 4
"""Large-object segments in flight at once: more only makes the object server's disk seek."""


def object_prefix(prefix: str) -> str:
    """The prefix objects are named under: '' or 'a/b/' (with the slash)."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


@contextmanager
def worker_pool(threads: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that is waited for, except when the process is interrupted.

    On SIGTERM or SIGINT the queued tasks are dropped and the running ones are not waited
    for: a request may hang for its whole timeout, and the process is about to exit.
    """
    pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
    try:
        yield pool
    except Interrupted:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def wait_all(futures: list[Future]) -> None:
    """Wait for every task; on the first failure cancel the rest and raise it."""
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in done:
        error = future.exception()
        if error is not None:
            for other in pending:
                other.cancel()
            raise error
