"""`python -m bench.getonly CONTAINER PREFIX`: GET every object under a prefix, keep nothing.

A reference client for the download benchmarks, not a tool: it reads each body into a
reused buffer and drops it, checking only the byte count. It hashes nothing and writes
nothing, so its time is what the Swift server needs to serve those GETs on this machine
(over the publisher's own kept-alive connections, 32 at a time), a floor under any
client's download time. Credentials come from ST_AUTH/ST_USER/ST_KEY or the OS_*
variables, as for the publisher.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from publisher.credentials import resolve
from publisher.swift import SwiftStore

THREADS = 32


def drain(store: SwiftStore, container: str, name: str) -> int:
    def sink(headers: dict, body) -> int:
        return sum(len(chunk) for chunk in body)

    return store.get_object(container, name, sink)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    container, prefix = argv
    store = SwiftStore(resolve(None, os.environ))
    objects = store.list_objects(container, prefix)
    if not objects:
        print(f"nothing under {container}/{prefix}", file=sys.stderr)
        return 1
    with ThreadPoolExecutor(THREADS) as pool:
        sizes = list(pool.map(lambda o: drain(store, container, o.name), objects))
    expected = sum(o.size for o in objects)
    if sum(sizes) != expected:
        print(f"read {sum(sizes)} bytes, the listing says {expected}", file=sys.stderr)
        return 1
    print(f"{len(objects)} objects, {expected} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
