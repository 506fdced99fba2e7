"""pman's Swift credentials file changed under it, as Kubernetes updates a mounted Secret:
sessions opened afterwards use the new file, without a restart; a changed file that cannot
be used is reported (without its secret) and the last good credentials are kept."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import requests

import swiftcreds
from pman.errors import StoreUnavailable
from pman.swift import Store
from tests.support.data import data_pman, publish
from tests.support.trees import write_tree
from tests.support.waiting import eventually

NAME = "swift-credentials.cfg"
WRONG_KEY = "n0t-the-key"
FILES = {"a.txt": b"rotated\n"}


class SecretVolume:
    """A directory laid out as the kubelet lays out a Secret volume: ``NAME`` is a symlink
    to ``..data/NAME``, and ``..data`` one to the current copy, swapped in one rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.copies = 0

    @property
    def path(self) -> Path:
        return self.root / NAME

    def write(self, text: str) -> None:
        self.copies += 1
        copy = self.root / f"..copy-{self.copies}"
        copy.mkdir()
        (copy / NAME).write_text(text)
        link = self.root / "..data_tmp"
        link.symlink_to(copy.name)
        os.replace(link, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{NAME}")

    def remove(self) -> None:
        (self.root / "..data").unlink()


@pytest.fixture
def good(swift_credentials_file) -> str:
    """The test Swift's swift-credentials.cfg."""
    return swift_credentials_file.read_text()


@pytest.fixture
def wrong(good, swift_server) -> str:
    """The same with another password."""
    text = good.replace(f"password = {swift_server.key}\n", f"password = {WRONG_KEY}\n")
    assert text != good
    return text


@pytest.fixture
def volume(tmp_path):
    root = tmp_path / "secret"
    root.mkdir()
    return SecretVolume(root)


@pytest.fixture
def published(swift_server, containers, tmp_path):
    """A jid with published output; where it is."""
    jid = containers.jid()
    publish(swift_server, write_tree(tmp_path / "out", FILES), f"key-{jid}/outgoing")
    return jid


def read_output_file(store: Store, jid: str) -> bytes:
    with store.session() as swift:
        return swift.read_object(f"key-{jid}", "outgoing/a.txt", limit=1 << 20)


def test_a_rotated_secret_reaches_the_data_routes_without_a_restart(
    kube_cluster, swift_server, volume, published, good, wrong
):
    volume.write(wrong)
    settings = {
        "swift_credentials": swiftcreds.load_file(volume.path),
        "swift_credentials_file": volume.path,
    }
    with data_pman(kube_cluster, swift_server, **settings) as handle:
        url = f"{handle.url}/api/v1/_data/{published}/output/"
        refused = requests.get(url, timeout=30)
        assert refused.status_code == 503
        assert "refused" in refused.json()["message"]
        assert WRONG_KEY not in refused.text

        volume.write(good)
        response = eventually(
            lambda: (answer := requests.get(url, timeout=30)).status_code != 503 and answer,
            timeout=20,
            interval=0.2,
            what="the new credentials in use",
        )
        assert response.status_code == 200, response.text
        assert b"rotated\n" in response.content


def test_a_changed_file_that_cannot_be_used_keeps_the_last_good_credentials(
    swift_server, volume, published, caplog, good
):
    volume.write(good)
    store = Store(swiftcreds.load_file(volume.path), source=volume.path, recheck=0)
    assert read_output_file(store, published) == b"rotated\n"

    caplog.set_level(logging.INFO, logger="pman.swift")
    secret = "s3cret-in-a-broken-file"
    volume.write(f"[AUTHORIZATION\npassword = {secret}\n")
    assert read_output_file(store, published) == b"rotated\n"
    assert store.credentials.secret == swift_server.key
    volume.remove()
    assert read_output_file(store, published) == b"rotated\n"

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "is not a valid INI file" in warnings[0]
    assert "does not exist" in warnings[1]
    for message in warnings:
        assert str(volume.path) in message
        assert f"still using Swift v1 user {swift_server.user!r}" in message
        assert secret not in message


def test_a_changed_file_is_used_by_the_next_session_and_said_once(
    swift_server, volume, published, caplog, good, wrong
):
    volume.write(wrong)
    store = Store(swiftcreds.load_file(volume.path), source=volume.path, recheck=0)
    with pytest.raises(StoreUnavailable, match="refused"):
        read_output_file(store, published)

    caplog.set_level(logging.INFO, logger="pman.swift")
    volume.write(good)
    assert read_output_file(store, published) == b"rotated\n"
    assert read_output_file(store, published) == b"rotated\n"
    changes = [r.getMessage() for r in caplog.records if "changed" in r.getMessage()]
    assert changes == [
        f"Swift credentials changed in {volume.path}: now {store.credentials.describe()}"
    ]
    assert store.credentials.secret == swift_server.key


def test_a_file_rewritten_with_the_same_credentials_changes_nothing(
    swift_server, volume, published, good
):
    volume.write(good)
    store = Store(swiftcreds.load_file(volume.path), source=volume.path, recheck=0)
    before = store.credentials
    assert read_output_file(store, published) == b"rotated\n"
    # A new copy with the same content: read again, found equal, the session's token kept.
    volume.write(good)
    assert read_output_file(store, published) == b"rotated\n"
    assert store.credentials is before
