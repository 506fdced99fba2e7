"""The stage-in plan of a pfcon job, from listings and link contents: pfcon's layout (its
``test_post_with_chris_links`` first), links chained, looping, to files, to nothing, and the
links that refuse the input."""

from __future__ import annotations

import hashlib

import pytest

from pman.stagein import (
    MAX_LINK_BYTES,
    InputRefused,
    Listed,
    clean_path,
    plan_document,
    plan_stage_in,
)


class Container:
    """CUBE's container as the planner sees it: objects by name, and what it asked."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.listed: list[str] = []
        self.read_names: list[str] = []

    def _listed(self, name: str) -> Listed:
        data = self.objects[name]
        return Listed(name, hashlib.md5(data).hexdigest(), len(data))

    def folder(self, prefix: str) -> list[Listed]:
        self.listed.append(prefix)
        return [self._listed(n) for n in sorted(self.objects) if n.startswith(prefix)]

    def file(self, name: str) -> Listed | None:
        return self._listed(name) if name in self.objects else None

    def read(self, name: str, *, limit: int) -> bytes:
        self.read_names.append(name)
        data = self.objects[name]
        assert len(data) <= limit  # the planner asks no more than a link may hold
        return data


def layout(input_dirs, objects, output="home/alice/feeds/feed_9/pl-x_9/data"):
    plan = plan_stage_in(input_dirs, output, Container(objects))
    return {f.path: f.object for f in plan.files}


def test_pfcons_own_chris_link_test_gives_its_layout():
    # pfcon's test_post_with_chris_links (and test_copy_with_chris_links in v6).
    objects = {
        "foo/feed/input/test.txt": b"Test file",
        "PIPELINES/bob/pipeline.yml": b"Test pipeline",
        "home/bob/PIPELINES_bob.chrislink": b"PIPELINES/bob",
        "foo/feed/input/home_bob.chrislink": b"home/bob",
    }
    assert layout(["foo/feed/input"], objects, output="foo/feed/output") == {
        "test.txt": "foo/feed/input/test.txt",
        "home_bob/PIPELINES_bob/pipeline.yml": "PIPELINES/bob/pipeline.yml",
    }


def test_every_input_folder_lands_at_the_root_and_a_later_one_wins_a_shared_name():
    objects = {
        "home/a/feeds/feed_1/pl-a_1/data/one.txt": b"1",
        "home/a/feeds/feed_1/pl-a_1/data/same.txt": b"from a",
        "home/a/feeds/feed_1/pl-b_2/data/sub/two.txt": b"2",
        "home/a/feeds/feed_1/pl-b_2/data/same.txt": b"from b",
        # A sibling whose name merely starts with the folder's: not in it.
        "home/a/feeds/feed_1/pl-a_1/data2/not-this.txt": b"x",
    }
    staged = layout(["home/a/feeds/feed_1/pl-a_1/data", "home/a/feeds/feed_1/pl-b_2/data"], objects)
    assert staged == {
        "one.txt": "home/a/feeds/feed_1/pl-a_1/data/one.txt",
        "same.txt": "home/a/feeds/feed_1/pl-b_2/data/same.txt",
        "sub/two.txt": "home/a/feeds/feed_1/pl-b_2/data/sub/two.txt",
    }


def test_an_empty_placeholder_folder_stages_nothing_and_is_no_error():
    assert layout(["root/data/squashEmptyDir"], {}) == {}


def test_a_chain_of_links_is_followed_to_its_end_where_each_link_was():
    objects = {
        "in/a.chrislink": b"lib/a\n",  # whitespace around the path is not part of it
        "lib/a/deep/b.chrislink": b"lib/b",
        "lib/a/deep/a.txt": b"a",
        "lib/b/c.chrislink": b"lib/c/",
        "lib/c/c.txt": b"c",
    }
    assert layout(["in"], objects) == {
        "lib_a/deep/a.txt": "lib/a/deep/a.txt",
        "lib_a/deep/lib_b/lib_c/c.txt": "lib/c/c.txt",
    }


def test_a_loop_of_links_ends_and_each_prefix_is_listed_and_each_link_read_once():
    objects = {
        "in/x.txt": b"x",
        "in/to-a.chrislink": b"lib/a",
        "lib/a/a.txt": b"a",
        "lib/a/to-b.chrislink": b"lib/b",
        "lib/b/b.txt": b"b",
        "lib/b/to-a.chrislink": b"lib/a",
        "lib/b/to-in.chrislink": b"in",
    }
    container = Container(objects)
    plan = plan_stage_in(["in"], "out/data", container)
    assert {f.path for f in plan.files} == {"x.txt", "lib_a/a.txt", "lib_a/lib_b/b.txt"}
    outcomes = {(link.link, link.outcome) for link in plan.links}
    assert ("lib/b/to-a.chrislink", "loop") in outcomes
    assert ("lib/b/to-in.chrislink", "loop") in outcomes
    assert sorted(container.listed) == sorted(set(container.listed))
    assert sorted(container.read_names) == sorted(set(container.read_names))


def test_a_folder_linked_from_two_places_is_staged_at_both():
    objects = {
        "in/one/shared.chrislink": b"lib/shared",
        "in/two/shared.chrislink": b"lib/shared",
        "lib/shared/s.txt": b"s",
    }
    assert layout(["in"], objects) == {
        "one/lib_shared/s.txt": "lib/shared/s.txt",
        "two/lib_shared/s.txt": "lib/shared/s.txt",
    }


def test_a_link_to_a_file_stands_for_its_folder_holding_that_file():
    objects = {
        "in/scan.chrislink": b"home/bob/uploads/scan.dcm",
        "home/bob/uploads/scan.dcm": b"dicom",
        "home/bob/uploads/other.dcm": b"not linked",
        "home/bob/uploads/scan.dcm.bak": b"not linked either",
    }
    assert layout(["in"], objects) == {"home_bob_uploads/scan.dcm": "home/bob/uploads/scan.dcm"}


def test_a_link_to_nothing_adds_nothing_and_a_link_whose_folder_exists_adds_nothing():
    objects = {
        "in/gone.chrislink": b"lib/gone",
        "in/lib_a/mine.txt": b"mine",
        "in/a.chrislink": b"lib/a",
        "lib/a/theirs.txt": b"theirs",
    }
    plan = plan_stage_in(["in"], "out", Container(objects))
    assert {f.path for f in plan.files} == {"lib_a/mine.txt"}
    assert {link.outcome for link in plan.links} == {"missing", "exists"}


@pytest.mark.parametrize(
    "output",
    [
        "home/alice/feeds/feed_1/pl-x_2/data",  # the output itself
        "home/alice/feeds/feed_1",  # a folder above it
        "home/alice",
        "home",
    ],
)
def test_a_link_to_the_output_or_a_folder_above_it_refuses_the_input(output):
    objects = {"in/x.chrislink": output.encode(), "in/y.txt": b"y"}
    with pytest.raises(InputRefused, match="output folder or a folder above it") as refused:
        plan_stage_in(["in"], "home/alice/feeds/feed_1/pl-x_2/data", Container(objects))
    assert "in/x.chrislink" in str(refused.value)


def test_a_link_below_the_output_or_beside_it_is_followed():
    objects = {
        "in/a.chrislink": b"home/alice/feeds/feed_1/pl-x_2/data/sub",
        "in/b.chrislink": b"home/alice/feeds/feed_1/pl-x_2/data2",
        "home/alice/feeds/feed_1/pl-x_2/data/sub/s.txt": b"s",
        "home/alice/feeds/feed_1/pl-x_2/data2/t.txt": b"t",
    }
    staged = layout(["in"], objects, output="home/alice/feeds/feed_1/pl-x_2/data")
    assert set(staged) == {
        "home_alice_feeds_feed_1_pl-x_2_data_sub/s.txt",
        "home_alice_feeds_feed_1_pl-x_2_data2/t.txt",
    }


@pytest.mark.parametrize(
    "target",
    [b"../other-container/x", b"/etc", b"home/../../x", b"home//bob", b"./home", b"", b"  "],
)
def test_a_link_that_escapes_or_is_no_clean_path_refuses_the_input(target):
    with pytest.raises(InputRefused, match="not a path in the container"):
        plan_stage_in(["in"], "out", Container({"in/x.chrislink": target}))


def test_a_link_that_is_not_text_refuses_the_input():
    with pytest.raises(InputRefused, match="not UTF-8"):
        plan_stage_in(["in"], "out", Container({"in/x.chrislink": b"\xff\xfe"}))


def test_a_link_larger_than_a_path_refuses_the_input_unread():
    container = Container({"in/x.chrislink": b"x" * (MAX_LINK_BYTES + 1)})
    with pytest.raises(InputRefused, match=f"more than a path \\({MAX_LINK_BYTES} at most"):
        plan_stage_in(["in"], "out", container)
    assert container.read_names == []


@pytest.mark.parametrize("name", ["in/a/../../etc/passwd", "in/a//b", "in/./x"])
def test_an_input_object_that_cannot_be_a_file_name_refuses_the_input(name):
    with pytest.raises(InputRefused, match="cannot be a file name"):
        plan_stage_in(["in"], "out", Container({name: b"x"}))


def test_a_file_and_a_folder_of_the_same_name_refuse_the_input():
    objects = {"a/x": b"file", "b/x/y": b"in a folder"}
    with pytest.raises(InputRefused, match="both as a file and as a folder"):
        plan_stage_in(["a", "b"], "out", Container(objects))


def test_directory_markers_are_not_files():
    objects = {"in/": b"", "in/sub/": b"", "in/sub/f.txt": b"f"}
    assert layout(["in"], objects) == {"sub/f.txt": "in/sub/f.txt"}


def test_the_publishers_manifest_at_a_folders_top_is_not_staged():
    objects = {
        "in/.publisher-manifest.json": b"{}",
        "in/sub/.publisher-manifest.json": b"a plugin's file of that name",
        "in/a.txt": b"a",
    }
    assert layout(["in"], objects) == {
        "a.txt": "in/a.txt",
        "sub/.publisher-manifest.json": "in/sub/.publisher-manifest.json",
    }


def test_clean_paths():
    assert clean_path("home/bob/") == "home/bob"
    for bad in ("", "/", "/home", "a//b", "a/./b", "a/..", "a\x00b"):
        assert clean_path(bad) is None, bad


def test_the_document_lists_each_file_with_its_checksum_or_carries_the_error():
    container = Container({"in/a.txt": b"a", "in/l.chrislink": b"lib", "lib/b.txt": b"b"})
    plan = plan_stage_in(["in"], "out", container)
    document = plan_document(
        plan, container="users", jid="j", run="r1", input_dirs=["in"], output_dir="out"
    )
    assert document["format"] == "pman-stage-in-plan/1"
    assert document["error"] is None
    assert document["files"] == [
        {"object": "in/a.txt", "etag": hashlib.md5(b"a").hexdigest(), "bytes": 1, "path": "a.txt"},
        {
            "object": "lib/b.txt",
            "etag": hashlib.md5(b"b").hexdigest(),
            "bytes": 1,
            "path": "lib/b.txt",
        },
    ]
    refused = plan_document(
        None,
        container="users",
        jid="j",
        run="r1",
        input_dirs=["in"],
        output_dir="out",
        error="no",
    )
    assert (refused["error"], refused["files"]) == ("no", [])
