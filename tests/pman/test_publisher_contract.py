"""The link between pman and the publisher: the container commands pman writes into the
pod parse with the publisher's own argument parser, meaning what pman intends, and
the exit codes pman explains are the ones the publisher uses.

pman never imports the publisher; only this test does.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pman.jobspec import build_job
from pman.models import parse_job_request
from pman.settings import Settings
from pman.status import INPUT_MISSING_CODES, PUBLISHER_EXIT_CODES
from publisher import errors as publisher_errors
from publisher.cli import build_parser
from tests.pman.conftest import pfcon_request


def containers(**changes) -> dict[str, dict]:
    manifest = build_job(parse_job_request(pfcon_request(**changes)), Settings())
    spec = manifest["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


def parse(container: dict):
    command = container["command"]
    assert command[0] == "publisher", shlex.join(command)
    return build_parser().parse_args(command[1:])


@pytest.mark.parametrize(("kind", "allow_empty"), [("fs", True), ("ds", False), ("ts", False)])
def test_stage_in_downloads_the_input_prefix_into_share_incoming(kind, allow_empty):
    args = parse(containers(type=kind, input_dir="key-chris-jid-42/incoming/sub")["stage-in"])
    assert args.command == "download"
    assert args.credentials == "/etc/swift/swift-credentials.cfg"
    assert (args.source.container, args.source.prefix) == ("key-chris-jid-42", "incoming/sub")
    assert args.dest == Path("/share/incoming")
    assert args.allow_empty is allow_empty


def test_publish_waits_for_the_processor_then_uploads_share_outgoing():
    pod = containers(output_dir="/bucket/out/")
    args = parse(pod["publish"])
    assert args.command == "publish"
    assert args.wait_container == "processor" == pod["processor"]["name"]
    assert args.credentials == "/etc/swift/swift-credentials.cfg"
    assert args.src == Path("/share/outgoing")
    assert (args.dest.container, args.dest.prefix) == ("bucket", "out")
    env = {
        item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"] for item in pod["publish"]["env"]
    }
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_a_container_only_path_means_the_whole_container():
    args = parse(containers(input_dir="bucket")["stage-in"])
    assert (args.source.container, args.source.prefix) == ("bucket", "")


def test_the_credentials_file_is_where_the_secret_is_mounted():
    pod = containers()
    for name in ("stage-in", "publish"):
        mount = next(m for m in pod[name]["volumeMounts"] if m["name"] == "swift-credentials")
        assert parse(pod[name]).credentials == f"{mount['mountPath']}/swift-credentials.cfg"


def test_explained_exit_codes_are_the_publishers():
    codes = {
        cls.exit_code
        for cls in vars(publisher_errors).values()
        if isinstance(cls, type) and issubclass(cls, publisher_errors.PublisherError)
    }
    assert set(PUBLISHER_EXIT_CODES) == codes - {1}
    assert publisher_errors.ContainerNotFound.exit_code in INPUT_MISSING_CODES
    assert publisher_errors.NothingToDownload.exit_code in INPUT_MISSING_CODES
