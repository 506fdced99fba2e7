"""The local side of downloads: files assembled from pieces written at their offsets."""

from __future__ import annotations

import os

from publisher.localfs import WRITE_PIECE, Root


def test_pieces_written_out_of_order_at_their_offsets_make_the_whole_file(tmp_path):
    # Two "segments", each longer than one write and not a multiple of it, written
    # second first, as parallel segment downloads may.
    first = os.urandom(3 * WRITE_PIECE + 123)
    second = os.urandom(2 * WRITE_PIECE + 7)
    with Root(tmp_path) as root:
        partial = root.partial_file("dir/out.bin", len(first) + len(second))
        partial.write_at(len(first), memoryview(second))
        partial.write_at(0, first)
        partial.commit()
    assert (tmp_path / "dir" / "out.bin").read_bytes() == first + second
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["out.bin"]


def test_an_aborted_file_leaves_nothing_behind(tmp_path):
    with Root(tmp_path) as root:
        partial = root.partial_file("out.bin", 10)
        partial.write_at(0, b"0123456789")
        partial.abort()
    assert list(tmp_path.iterdir()) == []
