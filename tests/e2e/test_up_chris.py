"""What a newcomer sees with ``make serve``: the stack serves the pfcon API with pfcon's
development user over CUBE's container, and the CUBE-shaped run it prints (the README's
"pman as a ChRIS compute resource" section) runs as printed and finishes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from devstack.up import CUBE_CONTAINER, PFCON_PASSWORD, PFCON_USER, Stack, commands_to_try
from tests.support.waiting import eventually

SECTION = "# as a ChRIS compute resource, with the requests CUBE sends:\n"


def shell(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    # The env file puts the venv's commands on PATH: the shell starts with a PATH without.
    path = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent
    )
    return subprocess.run(
        ["sh", "-c", f"set -e\n{script}"],
        env={**env, "PATH": path},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_printed_cube_run_finishes_on_the_development_stack(tmp_path):
    with Stack(tmp_path / "stack") as stack:
        env = {**os.environ, **stack.environment()}
        assert env["PFCON_URL"].endswith("/pfcon/api/v1/")
        assert env["SWIFT_CONTAINER_NAME"] == CUBE_CONTAINER
        assert (env["PFCON_USER"], env["PFCON_PASSWORD"]) == (PFCON_USER, PFCON_PASSWORD)

        printed = commands_to_try(stack.env_file).split(SECTION)[1].split("\n\n")[0]
        lines = [line.strip() for line in printed.splitlines()]
        poll = next(i for i, line in enumerate(lines) if "until finishedSuccessfully" in line)
        # The commands before the poll, as printed (a continued line joined), then the token.
        before = "\n".join(lines[:poll]).replace("\\\n", "")
        done = shell(f". {stack.env_file}\n{before}\necho TOKEN=$TOKEN", env, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"requires_copy_job":false' in done.stdout.replace(" ", "")
        assert '"status":"notStarted"' in done.stdout.replace(" ", "")
        token = done.stdout.strip().splitlines()[-1].removeprefix("TOKEN=")

        # The poll, repeated as a person would until the job has finished.
        url = lines[poll].split('"')[-2].replace("${PFCON_URL}", env["PFCON_URL"])
        headers = {"Authorization": f"Bearer {token}"}

        def finished():
            status = requests.get(url, headers=headers, timeout=30).json()["compute"]["status"]
            return status if status in ("finishedSuccessfully", "finishedWithError") else None

        assert eventually(finished, timeout=120, interval=0.5) == "finishedSuccessfully"

        after = "\n".join(lines[poll + 1 :])
        done = shell(f". {stack.env_file}\nTOKEN={token}\n{after}", env, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        listed = json.loads(done.stdout.splitlines()[0])
        assert sorted(listed["rel_file_paths"]) == ["counts.tsv", "summary.json", "words.tsv"]
        output = tmp_path / "chris-jid-1-output"
        assert sorted(p.name for p in output.iterdir()) == sorted(listed["rel_file_paths"])
