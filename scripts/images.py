#!/usr/bin/env python3
"""Builds pman's two images with podman from Dockerfile and Dockerfile.publisher, unchanged,
on a machine that may reach no container registry and PyPI only through its own settings.

    scripts/images.py [--report FILE]

1. The base image the Dockerfiles name is pulled when it can be. When it cannot, and no
   image of that name is in podman's store yet, scripts/base-image makes a stand-in from
   Debian's packages (kept in the store for the next runs, and replaced by the real image
   as soon as a pull works).
2. The wheels the images install are downloaded here, with this machine's pip and its
   settings, for the base image's Python and platform. They replace the Dockerfiles'
   ``wheels`` stage (``--build-context wheels=...``), so nothing in a build reaches the
   network and none of this machine's package settings (index, proxy, certificates) comes
   near an image.
3. Both images are built in Docker format (the OCI format drops HEALTHCHECK) and tagged
   with pman's version, the names the OpenShift template's defaults use.

podman on this kind of machine needs two things, applied to every podman command here
and by the image tests (they are in the report): runc, because crun refuses a machine
whose cgroups are in hybrid mode; explicit nofile and nproc limits no higher than this
process's own, because without CAP_SYS_RESOURCE podman's defaults cannot be set.

Prints the base used, each image's size and build time, and writes them with the podman
options to FILE (default build/images/report.json), which the image tests read. Exit
status: 0 built; 1 a step failed (its log is printed); 3 podman cannot run containers here.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "images"
# The filesystem the Dockerfiles' ``wheels`` stage would leave: wheels/ holds them.
WHEELS_STAGE = OUT / "wheels-stage"
DOCKERFILES = {"pman": "Dockerfile", "pman-publisher": "Dockerfile.publisher"}
STAND_IN_LABEL = "org.chrisproject.pman.base"
# podman's own default for nofile, the most a container is given here.
NOFILE_CEILING = 1048576


class Failed(Exception):
    """A step failed; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def say(text: str) -> None:
    print(f"images: {text}", flush=True)


def podman_options() -> dict[str, list[str]]:
    """What every podman command needs on this machine: ``global`` options go before the
    subcommand, ``limits`` after ``run`` or ``build``."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], NOFILE_CEILING)
    # podman lowers its own process limit to the kernel's pid_max; a container cannot
    # be given more than podman has.
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], _pid_max())
    limits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
    return {"global": runtime, "limits": limits}


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 32768


def base_image() -> str:
    """The one base image both Dockerfiles build on, fully qualified as podman names it."""
    names = set()
    for dockerfile in DOCKERFILES.values():
        text = (ROOT / dockerfile).read_text()
        names |= set(re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE))
    if len(names) != 1:
        raise Failed(f"the Dockerfiles build on {sorted(names)}; this script expects one base")
    (name,) = names
    return name if "/" in name else f"docker.io/library/{name}"


class Podman:
    def __init__(self, options: dict[str, list[str]]) -> None:
        self.options = options

    def command(self, *args: str, limits: bool = False) -> list[str]:
        subcommand, *rest = args
        extra = self.options["limits"] if limits else []
        return ["podman", *self.options["global"], subcommand, *extra, *rest]

    def run(self, *args: str, limits: bool = False, log: Path | None = None) -> str:
        command = self.command(*args, limits=limits)
        if log is None:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            output = done.stdout + done.stderr
        else:
            with log.open("w") as handle:
                done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
            output = log.read_text()
        if done.returncode != 0:
            raise Failed(f"{' '.join(command)} failed:\n{_tail(output)}")
        return done.stdout if log is None else output

    def image_exists(self, name: str) -> bool:
        return subprocess.run(self.command("image", "exists", name), check=False).returncode == 0

    def inspect(self, name: str) -> dict:
        return json.loads(self.run("image", "inspect", name))[0]


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no reason given"])[-1]


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def obtain_base(podman: Podman, name: str) -> dict:
    """Pull the real base, else keep the one in the store, else make the stand-in."""
    started = time.monotonic()
    present = podman.image_exists(name)
    stand_in = present and STAND_IN_LABEL in (podman.inspect(name)["Config"].get("Labels") or {})
    if present and not stand_in:
        return {"name": name, "kind": "registry", "obtained": "cached", "seconds": 0.0}
    pulled = subprocess.run(
        podman.command("pull", "--quiet", name), capture_output=True, text=True, check=False
    )
    if pulled.returncode == 0:
        return _base(name, "registry", "pulled", started)
    reason = _last_line(pulled.stderr)
    if stand_in:
        return _base(name, "debian-packages", "cached", started, reason)
    say(f"cannot pull {name} ({reason}); making a stand-in from Debian's packages")
    log = OUT / "base-image.log"
    with log.open("w") as handle:
        made = subprocess.run(
            [str(ROOT / "scripts" / "base-image"), name],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if made.returncode != 0:
        raise Failed(f"scripts/base-image failed:\n{_tail(log.read_text())}")
    return _base(name, "debian-packages", "made", started, reason)


def _base(name: str, kind: str, obtained: str, started: float, reason: str = "") -> dict:
    seconds = round(time.monotonic() - started, 1)
    return {"name": name, "kind": kind, "obtained": obtained, "seconds": seconds, "why": reason}


def probe(podman: Podman, base: str) -> dict:
    """The base image's Python and platform, from a container: proves podman runs one."""
    script = (
        "import json, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2],"
        " 'machine': platform.machine(), 'libc': platform.libc_ver()}))"
    )
    command = podman.command(
        "run", "--rm", "--network", "none", base, "python3", "-c", script, limits=True
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Failed(f"podman cannot run a container here: {_last_line(done.stderr)}", status=3)
    return json.loads(done.stdout)


def requirements() -> list[str]:
    """What the images install: pman's dependencies, the server extra, the build backend."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)
    server = project["project"]["optional-dependencies"]["server"]
    return project["build-system"]["requires"] + project["project"]["dependencies"] + server


def wheel_tags(target: dict) -> list[str]:
    """pip download options selecting wheels that install in the base image."""
    python, machine = target["python"], target["machine"]
    major, minor = python.split(".")
    options = ["--python-version", python, "--implementation", "cp"]
    options += ["--abi", f"cp{major}{minor}"]
    libc, libc_version = target["libc"]
    if libc == "glibc":
        newest = int(libc_version.split(".")[1])
        # pip takes the platforms literally: name every manylinux level the libc accepts.
        for level in range(newest, 16, -1):
            options += ["--platform", f"manylinux_2_{level}_{machine}"]
        options += ["--platform", f"manylinux2014_{machine}"]
    return options


def download_wheels(target: dict) -> dict:
    """The wheels the builds take, downloaded once per set of requirements and target."""
    wheels = WHEELS_STAGE / "wheels"
    wanted = {"requirements": requirements(), "target": target}
    stamp = WHEELS_STAGE / "wanted.json"
    started = time.monotonic()
    fresh = stamp.exists() and json.loads(stamp.read_text()) == wanted
    if not fresh:
        shutil.rmtree(WHEELS_STAGE, ignore_errors=True)
        wheels.mkdir(parents=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels)]
        command += ["--only-binary=:all:", *wheel_tags(target), *wanted["requirements"]]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(WHEELS_STAGE, ignore_errors=True)
            raise Failed(f"pip download failed:\n{_tail(done.stdout + done.stderr)}")
        stamp.write_text(json.dumps(wanted, indent=1))
    files = sorted(wheels.glob("*.whl"))
    return {
        "count": len(files),
        "bytes": sum(path.stat().st_size for path in files),
        "downloaded": not fresh,
        "seconds": round(time.monotonic() - started, 1),
    }


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]["version"]


def build(podman: Podman, name: str, dockerfile: str, tag: str) -> dict:
    log = OUT / f"{name}.build.log"
    started = time.monotonic()
    podman.run(
        "build",
        "--format",
        "docker",
        "--build-context",
        f"wheels={WHEELS_STAGE}",
        "--file",
        str(ROOT / dockerfile),
        "--tag",
        tag,
        str(ROOT),
        limits=True,
        log=log,
    )
    seconds = round(time.monotonic() - started, 1)
    image = podman.inspect(tag)
    return {
        "name": tag,
        "id": image["Id"],
        "dockerfile": dockerfile,
        "bytes": image["Size"],
        "build_seconds": seconds,
        "log": str(log),
    }


def summary(report: dict) -> list[str]:
    """The lines printed after a build, and by the image tests at the end of a run."""
    base, wheels = report["base"], report["wheels"]
    how = {"made": "made in", "pulled": "pulled in", "cached": "cached, checked in"}
    kind = "from its registry" if base["kind"] == "registry" else "stand-in from Debian's packages"
    lines = [f"base {base['name']}: {kind} ({how[base['obtained']]} {base['seconds']} s)"]
    fetched = "downloaded" if wheels["downloaded"] else "cached"
    lines.append(
        f"wheels: {wheels['count']} files, {wheels['bytes'] / 1e6:.1f} MB "
        f"({fetched}, {wheels['seconds']} s)"
    )
    width = max(len(image["name"]) for image in report["images"].values())
    for image in report["images"].values():
        lines.append(
            f"{image['name']:<{width}}  {image['bytes'] / 1e6:7.1f} MB  "
            f"built in {image['build_seconds']} s"
        )
    lines.append(f"total {report['seconds']} s")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, default=OUT / "report.json")
    args = parser.parse_args()
    if shutil.which("podman") is None:
        print("images: podman is not installed (make images installs it, as root or with sudo)")
        return 3
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    podman = Podman(podman_options())
    info = subprocess.run(podman.command("info"), capture_output=True, text=True, check=False)
    if info.returncode != 0:
        print(f"images: podman does not work here: {_last_line(info.stderr)}")
        return 3
    try:
        report: dict = {"podman": podman.options}
        report["base"] = obtain_base(podman, base_image())
        report["target"] = probe(podman, report["base"]["name"])
        report["wheels"] = download_wheels(report["target"])
        tag = version()
        report["images"] = {
            name: build(podman, name, dockerfile, f"localhost/{name}:{tag}")
            for name, dockerfile in DOCKERFILES.items()
        }
    except Failed as error:
        print(f"images: {error}")
        return error.status
    report["seconds"] = round(time.monotonic() - started, 1)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1))
    for line in summary(report):
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
