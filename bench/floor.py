"""The floor under the small-file download: the same GETs by a client that keeps nothing.

Against the same Swift as the tools, rounds alternate the `swift` CLI, the publisher and
`bench.getonly` (every object read and dropped: no hashing, no files). The get-only
client's time is what serving the GETs costs the servers on this machine, so the `swift`
CLI's time divided by it is the largest speed-up any client could show here.
"""

from __future__ import annotations

import shutil
import statistics
import uuid
from pathlib import Path

from bench.throughput import Sample, check_download, measure, seed_download_source
from bench.tools import Tools, empty_container

CLIENTS = ("swift", "publisher", "get-only")


def run(tools: Tools, src: Path, *, rounds: int, scratch: Path, say) -> dict[str, list[Sample]]:
    """{client: samples} for downloading `src` (seeded once by the publisher)."""
    source = seed_download_source(tools, src)
    found: dict[str, list[Sample]] = {client: [] for client in CLIENTS}
    for r in range(rounds):
        for client in CLIENTS[r % 3 :] + CLIENTS[: r % 3]:
            dest = scratch / f"floor-{uuid.uuid4().hex[:8]}"
            sample = measure(tools, tools.download, client, source, dest)
            if client != "get-only":  # it checks its own byte count and writes nothing
                check_download(dest, src, client)
                shutil.rmtree(dest)
            found[client].append(sample)
            say(f"floor: {client} round {r + 1}: {sample.seconds:.2f} s")
    empty_container(tools.swift, source)
    return found


def table_row(workers: int, found: dict[str, list[Sample]]) -> str:
    seconds = {c: statistics.median(s.seconds for s in found[c]) for c in CLIENTS}
    servers = {c: statistics.median(sum(s.server_cpu.values()) for s in found[c]) for c in CLIENTS}
    return (
        f"| {workers} | {seconds['swift']:.2f} s | {seconds['publisher']:.2f} s | "
        f"{seconds['get-only']:.2f} s | {servers['get-only']:.2f} s | "
        f"{seconds['swift'] / seconds['publisher']:.2f}x | "
        f"{seconds['swift'] / seconds['get-only']:.2f}x |"
    )


def table(rows: list[str]) -> str:
    head = [
        "## The floor under the small-file download (medians)",
        "",
        "| Swift workers | swift CLI | publisher | get-only client | servers' CPU for "
        "get-only | publisher vs swift CLI | get-only vs swift CLI (the most any client "
        "could show) |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows)
