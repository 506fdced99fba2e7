"""Upload and download throughput: publisher vs `swift` CLI vs rclone, alternating runs."""

from __future__ import annotations

import shutil
import statistics
import uuid
from collections import defaultdict
from pathlib import Path

from bench.datasets import MIB, tree_size
from bench.tools import Tools, empty_container

Results = dict[tuple[str, str, str], list[float]]


def run(tools: Tools, datasets: dict[str, Path], *, rounds: int, scratch: Path, say) -> Results:
    """Every tool on every dataset, `rounds` times, the order rotating each round."""
    results: Results = defaultdict(list)
    names = tools.available()
    for dataset, src in datasets.items():
        source = _seed_download_source(tools, src)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for tool in order:
                container = f"bench-{uuid.uuid4().hex[:8]}"
                seconds = tools.upload(tool, src, container).seconds
                empty_container(tools.swift, container)
                results[(dataset, "upload", tool)].append(seconds)
                say(f"{dataset} upload {tool} round {r + 1}: {seconds:.2f} s")
            for tool in order:
                dest = scratch / f"down-{uuid.uuid4().hex[:8]}"
                seconds = tools.download(tool, source, dest).seconds
                _check_download(dest, src, tool)
                shutil.rmtree(dest)
                results[(dataset, "download", tool)].append(seconds)
                say(f"{dataset} download {tool} round {r + 1}: {seconds:.2f} s")
        empty_container(tools.swift, source)
    return results


def _seed_download_source(tools: Tools, src: Path) -> str:
    """Upload the dataset once (with the publisher: what pman's outputs look like)."""
    container = f"bench-src-{uuid.uuid4().hex[:8]}"
    tools.upload("publisher", src, container)
    return container


def _check_download(dest: Path, src: Path, tool: str) -> None:
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
                tool: statistics.median(results[(dataset, direction, tool)])
                for tool in ("publisher", "swift", "rclone")
                if results.get((dataset, direction, tool))
            }
            cells = [_rate(medians.get(t), files, size) for t in ("publisher", "swift", "rclone")]
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


def _rate(seconds: float | None, files: int, size: int) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.2f} s ({size / MIB / seconds:.0f} MiB/s, {files / seconds:.0f} files/s)"
