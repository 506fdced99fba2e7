"""Upload and download throughput: publisher vs `swift` CLI vs rclone, alternating runs.

Besides the wall time of each run, the CPU time it cost is recorded: the tool's own (from
wait4) and each Swift server's (from /proc), which shows what bounds a transfer.
"""

from __future__ import annotations

import shutil
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import MIB, tree_size
from bench.tools import Run, Tools, empty_container

TOOLS = ("publisher", "swift", "rclone")


@dataclass(frozen=True)
class Sample:
    """One run of one tool: wall time, its own CPU time, and the servers' CPU time."""

    seconds: float
    client_cpu: float
    server_cpu: dict[str, float]


Results = dict[tuple[str, str, str], list[Sample]]


def run(tools: Tools, datasets: dict[str, Path], *, rounds: int, scratch: Path, say) -> Results:
    """Every tool on every dataset, `rounds` times, the order rotating each round."""
    results: Results = defaultdict(list)
    names = tools.available()
    for dataset, src in datasets.items():
        source = seed_download_source(tools, src)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for tool in order:
                container = f"bench-{uuid.uuid4().hex[:8]}"
                sample = measure(tools, tools.upload, tool, src, container)
                empty_container(tools.swift, container)
                results[(dataset, "upload", tool)].append(sample)
                say(f"{dataset} upload {tool} round {r + 1}: {_described(sample)}")
            for tool in order:
                dest = scratch / f"down-{uuid.uuid4().hex[:8]}"
                sample = measure(tools, tools.download, tool, source, dest)
                check_download(dest, src, tool)
                shutil.rmtree(dest)
                results[(dataset, "download", tool)].append(sample)
                say(f"{dataset} download {tool} round {r + 1}: {_described(sample)}")
        empty_container(tools.swift, source)
    return results


def measure(tools: Tools, action: Callable[..., Run], *args: object) -> Sample:
    before = tools.swift.cpu_seconds()
    done = action(*args)
    after = tools.swift.cpu_seconds()
    servers = {name: after[name] - before.get(name, 0.0) for name in after}
    return Sample(done.seconds, done.cpu_seconds, servers)


def _described(sample: Sample) -> str:
    servers = ", ".join(f"{k} {v:.2f}" for k, v in sample.server_cpu.items() if v >= 0.01)
    return f"{sample.seconds:.2f} s (CPU s: client {sample.client_cpu:.2f}, {servers})"


def seed_download_source(tools: Tools, src: Path) -> str:
    """Upload the dataset once (with the publisher: what pman's outputs look like), then
    read it all once, untimed, so that no tool's timed run is the first read after the
    writes (that one is slower for every tool, and the first tool in round 1 would take it).
    """
    container = f"bench-src-{uuid.uuid4().hex[:8]}"
    tools.upload("publisher", src, container)
    tools.download("get-only", container, src)  # it writes nothing: the path is not used
    return container


def check_download(dest: Path, src: Path, tool: str) -> None:
    files, size = tree_size(src)
    got_files, got_size = tree_size(dest)
    manifest = [p for p in dest.rglob(".publisher-manifest.json")]
    got_files -= len(manifest)
    got_size -= sum(p.stat().st_size for p in manifest)
    if (got_files, got_size) != (files, size):
        raise RuntimeError(
            f"{tool} downloaded {got_files} files/{got_size} B, expected {files}/{size}"
        )


def table(results: Results, datasets: dict[str, Path]) -> str:
    """A Markdown table of medians, with the publisher's ratios."""
    lines = [
        "| dataset | direction | publisher | swift CLI | rclone "
        "| speed-up vs the faster other | speed-up vs swift CLI |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, src in datasets.items():
        files, size = tree_size(src)
        for direction in ("upload", "download"):
            medians = {
                tool: statistics.median(s.seconds for s in results[(dataset, direction, tool)])
                for tool in TOOLS
                if results.get((dataset, direction, tool))
            }
            cells = [_rate(medians.get(t), files, size) for t in TOOLS]
            others = [v for t, v in medians.items() if t != "publisher"]
            best = min(others) if others else None
            ratio_best = f"{best / medians['publisher']:.2f}x" if best else "n/a"
            ratio_swift = (
                f"{medians['swift'] / medians['publisher']:.2f}x" if "swift" in medians else "n/a"
            )
            lines.append(
                f"| {dataset} | {direction} | {' | '.join(cells)} | {ratio_best} | {ratio_swift} |"
            )
    return "\n".join(lines)


def cpu_table(results: Results, datasets: dict[str, Path]) -> str:
    """A Markdown table of the median CPU seconds each run cost, by process."""
    lines = [
        "| dataset | direction | tool | wall s | client CPU s | proxy CPU s | object server "
        "CPU s | container + account CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for direction in ("upload", "download"):
            for tool in TOOLS:
                samples = results.get((dataset, direction, tool))
                if not samples:
                    continue
                cells = [
                    statistics.median(s.seconds for s in samples),
                    statistics.median(s.client_cpu for s in samples),
                    *(_server_median(samples, names) for names in _SERVER_COLUMNS),
                ]
                shown = " | ".join(f"{c:.2f}" for c in cells)
                lines.append(f"| {dataset} | {direction} | {tool} | {shown} |")
    return "\n".join(lines)


_SERVER_COLUMNS = (("proxy",), ("object",), ("container", "account"))


def _server_median(samples: list[Sample], names: tuple[str, ...]) -> float:
    return statistics.median(sum(s.server_cpu.get(n, 0.0) for n in names) for s in samples)


def _rate(seconds: float | None, files: int, size: int) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.2f} s ({size / MIB / seconds:.0f} MiB/s, {files / seconds:.0f} files/s)"
