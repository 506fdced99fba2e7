"""Containers of the project's images run with podman the way a cluster runs a pod's
container under OpenShift's restricted policy.

:func:`restricted` gives what every container here gets: a UID from OpenShift's range in
group 0, a read-only root with only ``/tmp`` writable (as a tmpfs), no capabilities, no
privilege escalation. :func:`pod_container` turns a container of a pod spec (as pman or
the OpenShift template writes it) into podman options: its command, its environment, and
its volume mounts, each volume being a directory of this machine or a tmpfs. The
:class:`Podman` handle carries the options this machine needs for every podman command
(from ``scripts/images.py``'s report).

    podman.run(image, *restricted(uid), "--entrypoint", ..., "--", *args)
    with podman.start(image, *options) as container:
        container.exec("python", "-c", ...); container.healthcheck(); container.logs()
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
# OpenShift gives each project a block of 10,000 UIDs from 1000000000 up and runs its pods
# as the block's first UID, in group 0.
UID_BLOCK = 10_000
FIRST_UID = 1_000_000_000


def openshift_uid() -> int:
    """The UID OpenShift would run a pod of some project as."""
    return FIRST_UID + UID_BLOCK * secrets.randbelow(100_000)


def restricted(uid: int) -> list[str]:
    """podman run options for OpenShift's restricted policy with a read-only root."""
    return [
        f"--user={uid}:0",
        "--read-only",
        # podman would also make /run and /var/tmp writable; a cluster does not.
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,mode=1777",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
    ]


def pod_container(container: Obj, volumes: Mapping[str, Path | None]) -> list[str]:
    """podman run options, up to the image, for a pod spec's container: its environment
    (plain values only), its mounts (``volumes`` maps a volume's name to a directory, or
    None for a tmpfs, as an emptyDir), and its command, which replaces the image's
    entrypoint and arguments as in Kubernetes."""
    options = []
    for item in container.get("env") or []:
        assert "value" in item, f"give {item['name']} a value: {item}"
        options.append(f"--env={item['name']}={item['value']}")
    for mount in container.get("volumeMounts") or []:
        source = volumes[mount["name"]]
        if source is None:
            options.append(f"--tmpfs={mount['mountPath']}:rw,mode=1777")
            continue
        mode = "ro" if mount.get("readOnly") else "rw"
        options.append(f"--volume={source}:{mount['mountPath']}:{mode}")
    command = container.get("command")
    if command:
        options.append(f"--entrypoint={json.dumps(command[:1])}")
    return options


def pod_arguments(container: Obj) -> list[str]:
    """What follows the image on the podman command line for a pod spec's container."""
    command = container.get("command") or []
    return [*command[1:], *(container.get("args") or [])]


def secret_directory(directory: Path, files: Mapping[str, str]) -> Path:
    """A directory of files any UID can read, like a mounted Secret."""
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)
    return directory


def writable_directory(directory: Path) -> Path:
    """A directory any UID can write, like an emptyDir."""
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    return directory


@dataclass(frozen=True)
class Podman:
    """podman with this machine's options (``global`` before the subcommand, ``limits``
    after ``run``)."""

    options: Mapping[str, list[str]]

    def command(self, subcommand: str, *args: str) -> list[str]:
        limits = self.options["limits"] if subcommand in ("run", "build", "create") else []
        return ["podman", *self.options["global"], subcommand, *limits, *args]

    def call(
        self, subcommand: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """One podman command; its output as text, whatever its exit status."""
        return subprocess.run(
            self.command(subcommand, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run(self, image: str, *options: str, args: tuple[str, ...] = (), timeout: float = 120):
        """A container run to its end (and removed): its exit status and output."""
        return self.call("run", "--rm", "--pull=never", *options, image, *args, timeout=timeout)

    def inspect(self, image: str) -> Obj:
        done = self.call("image", "inspect", image)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)[0]

    @contextmanager
    def start(self, image: str, *options: str, args: tuple[str, ...] = ()) -> Iterator[Container]:
        """A container running in the background; removed on leaving the block."""
        name = f"pman-test-{secrets.token_hex(4)}"
        # Without systemd, podman cannot time the image's HEALTHCHECK: it is run on demand.
        started = self.call(
            "run",
            "--detach",
            f"--name={name}",
            "--pull=never",
            "--health-interval=disable",
            *options,
            image,
            *args,
        )
        assert started.returncode == 0, started.stderr
        try:
            yield Container(self, name)
        finally:
            self.call("rm", "--force", "--time=0", name)


@dataclass(frozen=True)
class Container:
    podman: Podman
    name: str

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.podman.call("exec", self.name, *argv, timeout=timeout)

    def healthcheck(self) -> subprocess.CompletedProcess:
        """The image's HEALTHCHECK, run now (exit status 0: healthy)."""
        return self.podman.call("healthcheck", "run", self.name)

    def logs(self) -> str:
        done = self.podman.call("logs", self.name)
        return done.stdout + done.stderr

    def running(self) -> bool:
        done = self.podman.call("inspect", "--format={{.State.Running}}", self.name)
        return done.stdout.strip() == "true"

    def wait(self, *, timeout: float) -> int:
        """The container's exit status once it has ended."""
        done = self.podman.call("wait", self.name, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip())

    def wait_until(self, check, *, timeout: float, what: str) -> Any:
        """Poll ``check()`` until it returns something true; fail with the logs if the
        container ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            if not self.running():
                raise AssertionError(f"the container ended before {what}:\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"no {what} after {timeout} s:\n{self.logs()}")
