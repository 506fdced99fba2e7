"""`python -m bench` (what `make bench` runs): every benchmark, then the results table.

Options: --rounds N (alternating rounds per tool, default 3), --quick (small data, one
round: a smoke test of the benchmarks themselves), --only throughput,floor,rss,publish,chris,
--workdir DIR (default: a temporary directory, removed afterwards), --swift-workers 0,2
(the throughput is measured once per value: Swift's servers each with that many worker
processes, 0 being one process per server; the other benchmarks use the first value).
The Markdown tables are printed and written to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import chris, datasets, floor, publish_latency, rss, throughput
from bench.datasets import MIB
from bench.tools import Tools
from devstack.swiftaio import SwiftAIO

RESULTS = Path(__file__).parent / "results" / "latest.md"


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="throughput,floor,rss,publish,chris")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--swift-workers", type=_workers, default=[0, 2])
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="pman-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sections = [
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"rounds={1 if args.quick else args.rounds}{' (quick)' if args.quick else ''}"
    ]
    try:
        data = _datasets(work, quick=args.quick) if only & {"throughput", "floor", "rss"} else {}
        floor_rows = []
        for workers in args.swift_workers if only & {"throughput", "floor"} else []:
            section, row = _throughput(work, data, workers, args, only)
            sections += [section] if section else []
            floor_rows += [row] if row else []
        if floor_rows:
            sections.append(floor.table(floor_rows))
        if only & {"rss", "publish", "chris"}:
            with SwiftAIO(work / "swift", workers=args.swift_workers[0]) as swift:
                if "rss" in only:
                    sections.append(_rss_table(rss.run(Tools(swift), work, say)))
                if "publish" in only:
                    bench = publish_latency.LatencyBench(swift, work / "cluster")
                    found = bench.run(
                        short=2,
                        long=10 if args.quick else 60,
                        repeats=3 if args.quick else 5,
                        say=say,
                    )
                    sections.append(_publish_table(found))
                if "chris" in only:
                    cube = chris.ChrisBench(swift, work / "chris")
                    found = cube.run(
                        small_files=100,
                        large_mib=32 if args.quick else 256,
                        memory_limit=200,
                        rounds=1 if args.quick else args.rounds,
                        say=say,
                    )
                    sections.append(chris.table(found))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report = "\n\n".join(sections) + "\n"
    print(report)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(report)
    return 0


def _workers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError("worker counts are 0 or more")
    return values


def _throughput(
    work: Path, data: dict[str, Path], workers: int, args: argparse.Namespace, only: set[str]
) -> tuple[str, str]:
    """Every tool on every dataset against a Swift whose servers each run `workers` workers
    (the throughput section), and the small-file download's floor (a row of its table)."""
    say(f"throughput with Swift workers = {workers}")
    directory = work / f"swift-workers-{workers}"
    rounds = 1 if args.quick else args.rounds
    results, row = None, ""
    with SwiftAIO(directory, workers=workers) as swift:
        tools = Tools(swift)
        if "rclone" not in tools.available():
            say("rclone is not installed: it is left out (make bench installs it)")
        if "throughput" in only:
            results = throughput.run(tools, data, rounds=rounds, scratch=work, say=say)
        if "floor" in only:
            small = next(iter(data.values()))  # _datasets puts the small files first
            row = floor.table_row(
                workers, floor.run(tools, small, rounds=rounds, scratch=work, say=say)
            )
    shutil.rmtree(directory, ignore_errors=True)
    if results is None:
        return "", row
    shape = "one process per server" if workers == 0 else f"{workers} worker processes per server"
    title = f"## Throughput, Swift workers = {workers} ({shape}; medians)"
    cpu = (
        f"CPU time of the same runs (medians), Swift workers = {workers}:\n\n"
        + throughput.cpu_table(results, data)
    )
    return f"{title}\n\n{throughput.table(results, data)}\n\n{cpu}", row


def _datasets(work: Path, *, quick: bool) -> dict[str, Path]:
    say("generating data")
    small = datasets.make_small(work / "small", count=200 if quick else 2000)
    large = datasets.make_large(work / "large", size=(64 if quick else 1024) * MIB)
    mix = datasets.make_mix(work / "mix", small, large)
    return (
        {"2,000 small files": small, "1 GiB file": large, "mix": mix}
        if not quick
        else {"200 small files": small, "64 MiB file": large, "mix": mix}
    )


def _rss_table(rows: list[tuple[str, int, int]]) -> str:
    lines = ["## Peak RSS of `publisher upload`", "", "| output | peak RSS |", "|---|---|"]
    lines += [f"| {label} | {peak / 1024:.0f} MiB |" for label, _, peak in rows]
    return "\n".join(lines)


def _publish_table(found: dict) -> str:
    return "\n".join(
        [
            "## Publish on the local cluster",
            "",
            "| measure | value |",
            "|---|---|",
            f"| latency, processor exit → first upload request (median) | "
            f"{found['latency_ms_median']:.0f} ms (all: {found['latency_ms_all']}) |",
            f"| Kubernetes API requests, {found['short_seconds']:g} s job | "
            f"{found['requests_short']} (audit log: {found['audit_short']}) |",
            f"| Kubernetes API requests, {found['long_seconds']:g} s job | "
            f"{found['requests_long']} (audit log: {found['audit_long']}) |",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
