"""The publisher image run as a job pod runs it, under a UID OpenShift would pick, in group
0, with a read-only root: its help by default, an upload to the test Swift as people run it
on their own, the stage-in container pman writes into a job pod getting the same files
back byte for byte, and no write anywhere but /tmp and the mounted directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pman.jobspec import build_job
from pman.models import parse_job_request
from pman.settings import Settings
from tests.support.podman import (
    pod_arguments,
    pod_container,
    restricted,
    secret_directory,
    writable_directory,
)

pytestmark = pytest.mark.images

FILES = {
    "report.txt": b"one line\n",
    "empty": b"",
    "nested/deeper/scan.bin": os.urandom(300_000),
    # Past the publisher's default segment size would need GBs; a few MiB still streams.
    "large.bin": os.urandom(6 << 20),
}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def stage_in(images, input_dir: str) -> dict:
    """The stage-in container of the Job pman builds for a job reading ``input_dir``."""
    body = {
        "jid": "image-test",
        "image": "python:3.11-slim",
        "entrypoint": ["python3", "-c", "pass"],
        "args": [],
        "auid": "tester",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "type": "ds",
        "input_dir": input_dir,
        "output_dir": "unused/outgoing",
    }
    job = build_job(
        parse_job_request(body), Settings(publisher_image=images.publisher), run="run-1"
    )
    (container,) = [
        c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == "stage-in"
    ]
    assert container["image"] == images.publisher
    return container


def test_the_image_prints_its_help_by_default(images):
    done = images.podman.run(images.publisher, *restricted(images.uid), "--network=none")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: publisher")
    for command in ("download", "upload", "publish"):
        assert command in done.stdout


def test_an_upload_comes_back_byte_identical_through_pmans_stage_in(
    images, swift_server, swift_container, tmp_path
):
    source = write_tree(tmp_path / "data", FILES)
    environment = [f"--env={name}={value}" for name, value in swift_server.environment().items()]
    uploaded = images.podman.run(
        images.publisher,
        *restricted(images.uid),
        "--network=host",
        *environment,
        f"--volume={source}:/data:ro",
        args=("upload", "/data", f"swift://{swift_container}/in"),
    )
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    _, objects = swift_server.connection().get_container(swift_container)
    assert {o["name"] for o in objects} >= {f"in/{name}" for name in FILES}

    share = writable_directory(tmp_path / "share")
    credentials = secret_directory(
        tmp_path / "credentials",
        {"swift-credentials.cfg": swift_server.write_credentials(tmp_path / "cfg").read_text()},
    )
    container = stage_in(images, f"{swift_container}/in")
    volumes = {"share": share, "swift-credentials": credentials}
    downloaded = images.podman.run(
        images.publisher,
        *restricted(images.uid),
        "--network=host",
        *pod_container(container, volumes),
        args=tuple(pod_arguments(container)),
    )
    assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
    assert read_tree(share / "incoming") == FILES
    # The processor, under another UID of the project, writes its output there.
    assert (share / "outgoing").is_dir()
    assert (share / "outgoing").stat().st_mode & 0o777 == 0o777


def test_nothing_outside_tmp_and_the_mounts_can_be_written(
    images, swift_server, swift_container, tmp_path
):
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "in/a.txt", b"a")
    environment = [f"--env={name}={value}" for name, value in swift_server.environment().items()]
    for destination in ("/share/incoming", "/opt/data", "/tmp/data"):
        done = images.podman.run(
            images.publisher,
            *restricted(images.uid),
            "--network=host",
            *environment,
            args=("download", f"swift://{swift_container}/in", destination),
        )
        if destination.startswith("/tmp/"):
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            assert done.returncode != 0, f"{destination} was writable"
            assert "Read-only file system" in done.stdout + done.stderr
