"""The benchmark data: 2,000 small files, one 1 GiB file, and a mix of both."""

from __future__ import annotations

import os
import random
from pathlib import Path

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def _fill(path: Path, size: int, block: bytes) -> None:
    """Write `size` bytes that differ from file to file without costing urandom per byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = os.urandom(16)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            chunk = salt + block[: min(len(block), size - written) - len(salt)]
            chunk = chunk[: size - written]
            handle.write(chunk)
            written += len(chunk)


def make_small(root: Path, *, count: int = 2000, seed: int = 7) -> Path:
    """`count` files of 4 to 256 KiB in 20 directories."""
    rng = random.Random(seed)
    block = os.urandom(256 * KIB)
    for i in range(count):
        size = rng.randint(4 * KIB, 256 * KIB)
        _fill(root / f"d{i % 20:02d}" / f"file{i:05d}.dat", size, block)
    return root


def make_large(root: Path, *, size: int = GIB) -> Path:
    """One file of `size` bytes."""
    block = os.urandom(64 * MIB)
    _fill(root / "large.bin", size, block)
    return root


def make_mix(root: Path, small: Path, large: Path) -> Path:
    """Both of the above, as hard links (no extra disk space)."""
    for source in (small, large):
        for path in source.rglob("*"):
            if path.is_file():
                target = root / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
    return root


def tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)
