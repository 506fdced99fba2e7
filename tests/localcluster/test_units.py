"""Pure parts of the local cluster, as plain data: selectors, patches, quantities, path
rewriting, the store's watch semantics, the kubelet's pod status and log tails."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from localcluster.apiserver.meta import parse_quantity
from localcluster.apiserver.patch import PatchError, json_patch, merge_patch
from localcluster.apiserver.registry import Store, TooOld
from localcluster.apiserver.selectors import parse_field_selector, parse_label_selector
from localcluster.node.logs import read_log
from localcluster.node.mounts import PathRewriter
from localcluster.node.podstatus import ContainerRun, PodRun, pod_status


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a in (x, y),b", {"a": "y", "b": ""}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("!a", {"a": "1"}, False),
        ("a>3", {"a": "4"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("selector", ["a in (b", "=b", "a b", "a in b"])
def test_bad_label_selectors(selector):
    with pytest.raises(ValueError, match="selector"):
        parse_label_selector(selector)


def test_field_selectors():
    selector = parse_field_selector(r"metadata.name=x,status.phase!=Failed,a==b\,c")
    assert selector.terms == (
        ("metadata.name", "=", "x"),
        ("status.phase", "!=", "Failed"),
        ("a", "=", "b,c"),
    )
    assert selector.exact("metadata.name") == "x"
    fields = {"metadata.name": "x", "status.phase": "Running", "a": "b,c"}
    assert selector.matches(fields)
    assert not selector.matches({**fields, "status.phase": "Failed"})
    with pytest.raises(ValueError, match="can't understand"):
        parse_field_selector("nonsense")


def test_merge_patch_removes_with_null():
    doc = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert merge_patch(doc, {"a": {"b": None, "e": 3}, "d": [2]}) == {
        "a": {"c": 2, "e": 3},
        "d": [2],
    }


def test_json_patch_operations():
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "move", "from": "/b/c", "path": "/d"},
        {"op": "test", "path": "/d", "value": 2},
        {"op": "remove", "path": "/a/0"},
    ]
    assert json_patch(doc, ops) == {"a": [2, 3], "b": {}, "d": 2}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])


@pytest.mark.parametrize(
    ("text", "value"),
    [("64Mi", 64 * 2**20), ("1G", 10**9), ("100m", Decimal("0.1")), ("1e3", 1000), ("2", 2)],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


def test_bad_quantity():
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity("12 apples")


def test_path_rewriting_only_at_path_starts():
    rewrite = PathRewriter({"/share": "/state/share", "/share/in": "/state/in"})
    assert (
        rewrite("/share/in/x /share/out --dir=/share")
        == "/state/in/x /state/share/out --dir=/state/share"
    )
    assert rewrite("/shared /x/share /share.txt") == "/shared /x/share /share.txt"


def _obj(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels}}


def test_store_watch_from_a_version_and_selector_transitions():
    store = Store()
    store.create("pods", _obj("a", app="x"))
    since = store.resource_version
    store.update("pods", "ns", "a", lambda o: {**o, "metadata": {**o["metadata"], "labels": {}}})
    store.create("pods", _obj("b", app="x"))
    watcher, first = store.watch(
        "pods", "ns", lambda o: o["metadata"]["labels"].get("app") == "x", since=since
    )
    # "a" stopped matching: the watch sees it leave as DELETED, then "b" arrive.
    assert [(kind, entry.name) for kind, entry in first] == [("DELETED", "a"), ("ADDED", "b")]
    store.delete("pods", "ns", "b")
    assert watcher.next(1)[0] == "DELETED"
    store.compact()
    with pytest.raises(TooOld):
        store.watch("pods", "ns", lambda o: True, since=since)


def test_store_label_index_follows_updates():
    store = Store()
    store.create("pods", _obj("a", job="1"))
    store.create("pods", _obj("b", job="2"))
    assert [e.name for e in store.select("pods", "ns", labels={"job": "1"})] == ["a"]
    store.update(
        "pods", "ns", "a", lambda o: {**o, "metadata": {**o["metadata"], "labels": {"job": "2"}}}
    )
    assert [e.name for e in store.select("pods", "ns", labels={"job": "2"})] == ["a", "b"]
    store.delete("pods", "ns", "b")
    assert [e.name for e in store.select("pods", "ns", labels={"job": "2"})] == ["a"]


def _pod(policy: str = "Never") -> dict:
    return {"metadata": {"name": "p"}, "spec": {"restartPolicy": policy}, "status": {}}


def test_pod_status_phases():
    init, main = ContainerRun("init", "i", init=True), ContainerRun("main", "i")
    run = PodRun(sandbox_ready=True, start_time=0.0)
    assert pod_status(_pod(), run, [init, main])["phase"] == "Pending"
    init.started_at, init.finished_at, init.exit_code, init.reason = 1.0, 2.0, 0, "Completed"
    main.started_at = 3.0
    status = pod_status(_pod(), run, [init, main])
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    main.finished_at, main.exit_code, main.reason = 4.0, 3, "Error"
    status = pod_status(_pod(), run, [init, main])
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_failed_init_container_fails_the_pod():
    init, main = ContainerRun("init", "i", init=True), ContainerRun("main", "i")
    init.started_at, init.finished_at, init.exit_code, init.reason = 1.0, 2.0, 1, "Error"
    status = pod_status(_pod(), PodRun(sandbox_ready=True, init_failed=True), [init, main])
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}


LONG_LOG = b"".join(b"line %d %s\n" % (i, b"x" * (i % 300)) for i in range(20_000))


@pytest.mark.parametrize("tail", [None, 0, 1, 7, 1000, 19_999, 20_000, 50_000])
@pytest.mark.parametrize("log", [LONG_LOG, LONG_LOG + b"no newline", b"a\r\nb\r\n", b""])
def test_log_tail_read_from_the_end_is_the_tail_of_the_whole_log(tail, log):
    handle = io.BytesIO(log)
    expected = log if tail is None else b"".join(log.splitlines(keepends=True)[-tail:][:tail])
    assert read_log(handle, tail) == expected
    assert handle.tell() == len(log)  # following resumes where the log ended
