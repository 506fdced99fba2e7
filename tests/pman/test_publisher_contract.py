"""The link between pman and the publisher: the container commands pman writes into the
pod parse with the publisher's own argument parser, meaning what pman intends, and
the exit codes pman explains are the ones the publisher uses.

pman never imports the publisher; only this test does.
"""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pman.jobspec import build_job, build_pfcon_job
from pman.models import parse_job_request
from pman.pfconjobs import PfconJobRequest, manifest_name
from pman.settings import Settings
from pman.stagein import Plan, Planned, plan_document
from pman.status import INPUT_MISSING_CODES, INPUT_REFUSED_CODE, PUBLISHER_EXIT_CODES
from publisher import errors as publisher_errors
from publisher.cli import build_parser
from publisher.download import read_plan
from tests.support.bodies import pfcon_request


def run_publisher(argv: list[str], env: dict[str, str]) -> int:
    """The publisher's exit code for ``argv``, run as the pod runs it: its own process."""
    command = [sys.executable, "-m", "publisher", *argv]
    return subprocess.run(command, env=env, capture_output=True, timeout=60, check=False).returncode


def containers(**changes) -> dict[str, dict]:
    manifest = build_job(parse_job_request(pfcon_request(**changes)), Settings(), run="run-1")
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
    assert args.make_dir == Path("/share/outgoing")


def test_publish_waits_for_the_processor_then_uploads_share_outgoing():
    pod = containers(output_dir="/bucket/out/")
    args = parse(pod["publish"])
    assert args.command == "publish"
    assert args.wait_container == "processor" == pod["processor"]["name"]
    assert args.credentials == "/etc/swift/swift-credentials.cfg"
    assert args.src == Path("/share/outgoing") == parse(pod["stage-in"]).make_dir
    assert pod["processor"]["command"][-1] == str(args.src)
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


@pytest.mark.parametrize("kind", ["fs", "ds"])
def test_stage_in_leaves_an_output_directory_any_user_can_write(
    kind, swift_server, swift_container, tmp_path
):
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "incoming/a.txt", b"a\n")
    share = tmp_path / "share"
    share.mkdir()
    command = parse(containers(type=kind, input_dir=f"{swift_container}/incoming")["stage-in"])
    argv = [
        "download",
        *(["--allow-empty"] if command.allow_empty else []),
        "--make-dir",
        str(share / command.make_dir.relative_to("/share")),
        f"{command.source}",
        str(share / command.dest.relative_to("/share")),
    ]
    assert run_publisher(argv, swift_server.environment()) == 0
    outgoing = share / "outgoing"
    assert stat.S_IMODE(outgoing.lstat().st_mode) == 0o777
    assert stat.S_ISDIR(outgoing.lstat().st_mode)
    assert list(outgoing.iterdir()) == []
    assert (share / "incoming" / "a.txt").read_bytes() == b"a\n"


def test_a_link_where_the_output_directory_goes_is_refused(swift_server, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "outgoing").symlink_to(tmp_path / "elsewhere")
    argv = ["download", "--allow-empty", "--make-dir", str(tmp_path / "outgoing")]
    argv += ["swift://absent-container/in", str(tmp_path / "incoming")]
    code = run_publisher(argv, swift_server.environment())
    assert code == publisher_errors.UnsafeName.exit_code
    assert not (tmp_path / "incoming").exists()


# -- jobs of the pfcon API ---------------------------------------------------------------------

PLAN = "users_pman/runs/chris-jid-1/run-1/stage-in.json"
OUTPUT = "home/alice/feeds/feed_1/pl-app_1/data"


def pfcon_containers() -> dict[str, dict]:
    form = {
        "jid": "chris-jid-1", "entrypoint": ["python3", "app"], "auid": "alice",
        "number_of_workers": "1", "cpu_limit": "1000", "memory_limit": "200", "gpu_limit": "0",
        "image": "fnndsc/pl-app", "type": "ds", "input_dirs": ["in"], "output_dir": OUTPUT,
    }  # fmt: skip
    request = PfconJobRequest.parse(form).job_request(container="users", plan=PLAN)
    manifest = f"users_pman/{manifest_name(OUTPUT)}"
    job = build_pfcon_job(request, Settings(), run="run-1", plan=PLAN, manifest=manifest)
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


def test_a_pfcon_jobs_stage_in_downloads_its_plan_and_its_publish_writes_to_cube():
    parts = pfcon_containers()
    stage_in = parse(parts["stage-in"])
    assert stage_in.source is None
    assert (stage_in.plan.container, stage_in.plan.prefix) == (
        "users_pman",
        "runs/chris-jid-1/run-1/stage-in.json",
    )
    assert stage_in.dest == Path("/share/incoming")
    assert stage_in.make_dir == Path("/share/outgoing")
    publish = parse(parts["publish"])
    assert (publish.dest.container, publish.dest.prefix) == ("users", OUTPUT)
    assert (publish.manifest_to.container, publish.manifest_to.prefix) == (
        "users_pman",
        manifest_name(OUTPUT),
    )
    assert publish.skip_chris_links
    assert publish.run_id == "run-1"


class PlanObject:
    """The one object the publisher reads a plan from (what its Swift store answers)."""

    def __init__(self, document: dict) -> None:
        self.data = json.dumps(document).encode()

    def read_small(self, container: str, name: str, *, limit: int) -> bytes:
        assert f"{container}/{name}" == PLAN
        return self.data


def test_the_publisher_reads_the_plans_pman_writes():
    plan = Plan(
        files=[
            Planned("in/a.txt", "e1", 1, "a.txt"),
            Planned("lib/big", "m", 9, "lib/big", slo_etag="e2"),
        ]
    )
    document = plan_document(
        plan, container="users", jid="chris-jid-1", run="run-1", input_dirs=["in"], output_dir="o"
    )
    container, _, name = PLAN.partition("/")
    read = read_plan(PlanObject(document), container, name)
    assert read.container == "users"
    assert [(i.path, i.obj.name, i.obj.etag, i.obj.size, i.obj.slo_etag) for i in read.files] == [
        ("a.txt", "in/a.txt", "e1", 1, ""),
        ("lib/big", "lib/big", "m", 9, "e2"),
    ]
    refused = plan_document(
        None, container="users", jid="j", run="r", input_dirs=[], output_dir="o", error="why"
    )
    with pytest.raises(publisher_errors.InputRefused, match="why") as caught:
        read_plan(PlanObject(refused), container, name)
    assert caught.value.exit_code == INPUT_REFUSED_CODE
