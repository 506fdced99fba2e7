"""``make demo``: one pman job through the whole pipeline on this machine, shown step by step.

It starts Swift, the local cluster (TLS) and pman (``devstack.up.Stack``) in a
temporary directory, uploads the sample input (``examples/wordcount/input``) to Swift,
submits a job through pman's REST API whose processor is the sample program
``examples/wordcount/wordcount.py``, follows its status as a client does, then shows the
final status, the processor's log and the published outputs with their manifest, deletes
the job and stops everything. It exits 0 only if every check at the end holds.
Run it with ``python -m devstack.demo``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from devstack.up import EXAMPLES, Stack, StackError

JID = "wordcount-demo"
CONTAINER = f"key-{JID}"
PROGRAM = EXAMPLES / "wordcount" / "wordcount.py"
SAMPLE_INPUT = EXAMPLES / "wordcount" / "input"
# The publisher writes this object last; its name is part of the publisher's contract.
MANIFEST = ".publisher-manifest.json"
FINISHED = ("finishedSuccessfully", "finishedWithError")
FOLLOW_SECONDS = 60
SHOWN_OUTPUTS = ("counts.tsv", "summary.json")


def job_request() -> dict[str, Any]:
    """The job, as a pfcon-style client sends it."""
    return {
        "jid": JID,
        "image": "python:3.11-slim",
        "entrypoint": ["python3", str(PROGRAM)],
        "args": ["--top", "5", "--saveinputmeta", "--saveoutputmeta"],
        "args_path_flags": [],
        "auid": "demo",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "type": "ds",
        "env": [f"CHRIS_JID={JID}"],
        "input_dir": f"{CONTAINER}/incoming",
        "output_dir": f"{CONTAINER}/outgoing",
    }


def manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest as indented JSON, one line per file so that it stays short."""
    files = manifest.get("files", [])
    text = json.dumps({**manifest, "files": ["FILES"]}, indent=2)
    lines = ",\n".join(f"    {json.dumps(f)}" for f in files)
    return text.replace('    "FILES"', lines)


def indented(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines()) or prefix


@dataclass
class Demo:
    """The steps of the demo on a started stack, and what it checked."""

    stack: Stack
    started: float = field(default_factory=time.monotonic)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def api(self) -> str:
        assert self.stack.pman is not None
        return f"{self.stack.pman.url}/api/v1/"

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def run(self) -> None:
        self.upload_input()
        self.submit()
        final = self.follow()
        self.show_final(final)
        outputs = self.show_outputs()
        self.check_outputs(final, outputs)
        response = requests.delete(f"{self.api}{JID}/", timeout=30)
        self.say(f"DELETE /api/v1/{JID}/ -> {response.status_code}")
        self.checks["DELETE answered 204"] = response.status_code == 204

    def upload_input(self) -> None:
        assert self.stack.swift is not None
        connection = self.stack.swift.connection()
        connection.put_container(CONTAINER)
        files = sorted(p for p in SAMPLE_INPUT.rglob("*") if p.is_file())
        for path in files:
            data = path.read_bytes()
            name = f"incoming/{path.relative_to(SAMPLE_INPUT).as_posix()}"
            connection.put_object(CONTAINER, name, data, etag=hashlib.md5(data).hexdigest())
        size = sum(p.stat().st_size for p in files)
        self.say(f"uploaded the sample input to swift://{CONTAINER}/incoming ({size} bytes):")
        for path in files:
            print(f"          {path.relative_to(SAMPLE_INPUT).as_posix()}")

    def submit(self) -> None:
        response = requests.post(self.api, json=job_request(), timeout=30)
        if response.status_code != 201:
            raise DemoError(f"POST /api/v1/ answered {response.status_code}: {response.text}")
        job = response.json()
        self.say(f"POST /api/v1/ -> 201: job {job['jid']} accepted")
        print(f"          cmd: {job['cmd']}")

    def follow(self) -> dict[str, Any]:
        """Poll as a client does, printing each change of status, phase or message."""
        deadline = time.monotonic() + FOLLOW_SECONDS
        last = None
        while time.monotonic() < deadline:
            response = requests.get(f"{self.api}{JID}/", timeout=30)
            if response.status_code != 200:
                raise DemoError(f"GET answered {response.status_code}: {response.text}")
            job = response.json()
            now = (job["status"], job.get("phase", ""), job["message"])
            if now != last:
                self.say(f"{now[0]:<21} {now[1]:<11} {now[2]}")
                last = now
            if job["status"] in FINISHED:
                return job
            time.sleep(0.2)
        raise DemoError(f"the job did not finish within {FOLLOW_SECONDS} s")

    def show_final(self, job: dict[str, Any]) -> None:
        print(f"\nFinal status (GET /api/v1/{JID}/):")
        for key in ("status", "message", "timestamp", "phase", "reason"):
            print(f"    {key:<10} {job.get(key, '')}")
        print("\nThe processor's log:")
        print(indented(job["logs"]))
        self.checks["the job ended finishedSuccessfully"] = job["status"] == FINISHED[0]
        self.checks["the processor's log is in the job object"] = "wordcount" in job["logs"]

    def show_outputs(self) -> dict[str, dict[str, Any]]:
        assert self.stack.swift is not None
        connection = self.stack.swift.connection()
        _, listing = connection.get_container(CONTAINER, prefix="outgoing/")
        objects = {obj["name"].removeprefix("outgoing/"): obj for obj in listing}
        print(f"\nPublished outputs in swift://{CONTAINER}/outgoing:")
        for name, obj in objects.items():
            print(f"    {name:<26} {obj['bytes']:>6} bytes  md5 {obj['hash']}")
        for name in SHOWN_OUTPUTS:
            if name in objects:
                _, data = connection.get_object(CONTAINER, f"outgoing/{name}")
                print(f"\n{name}:")
                print(indented(data.decode("utf-8", errors="replace")))
        return objects

    def check_outputs(self, job: dict[str, Any], objects: dict[str, dict[str, Any]]) -> None:
        assert self.stack.swift is not None
        manifest: dict[str, Any] = {}
        if MANIFEST in objects:
            _, data = self.stack.swift.connection().get_object(CONTAINER, f"outgoing/{MANIFEST}")
            manifest = json.loads(data)
            print(f"\nThe manifest ({MANIFEST}, written last):")
            print(indented(manifest_text(manifest), "    "))
        files = manifest.get("files", [])
        self.checks["the manifest is published"] = bool(manifest.get("complete"))
        self.checks["every file of the manifest is in Swift with its MD5"] = bool(files) and all(
            f["path"] in objects and objects[f["path"]]["hash"] == f["md5"] for f in files
        )
        self.checks["the outputs include summary.json and counts.tsv"] = set(SHOWN_OUTPUTS) <= {
            f["path"] for f in files
        }
        processor = manifest.get("processor", {})
        self.checks["the manifest records the processor's exit code 0"] = (
            processor.get("exit_code") == 0
        )


class DemoError(RuntimeError):
    """A step of the demo went wrong."""


def _pman_log_tail(stack: Stack, lines: int = 20) -> str:
    if stack.pman is None or not stack.pman.log_path.exists():
        return ""
    return "\n".join(stack.pman.log_path.read_text(errors="replace").splitlines()[-lines:])


def run_demo() -> int:
    print(
        "pman demo: one job through the whole pipeline on this machine.\n"
        "Swift, a local Kubernetes API whose pods run as local processes, pman, and the\n"
        "publisher inside the job's pod; the processor is examples/wordcount/wordcount.py.\n",
        flush=True,
    )
    # The parts log to stderr; the demo tells the story on stdout.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="pman-demo-") as directory:
        stack = Stack(directory)
        demo = Demo(stack)
        demo.say("starting Swift, the local cluster (TLS) and pman ...")
        try:
            stack.start()
            assert stack.swift is not None
            assert stack.cluster is not None
            assert stack.pman is not None
            demo.say(f"Swift at {stack.swift.proxy_url}")
            demo.say(f"Kubernetes API at {stack.cluster.url} ({stack.cluster.mount_mode} mounts)")
            demo.say(f"pman at {stack.pman.url}")
            demo.run()
        except (DemoError, StackError, OSError, requests.RequestException) as exc:
            print(f"\nthe demo failed: {exc}", file=sys.stderr)
            if tail := _pman_log_tail(stack):
                print(f"pman's log ends with:\n{tail}", file=sys.stderr)
            demo.checks["every step ran"] = False
        finally:
            demo.say("stopping Swift, the local cluster and pman ...")
            stack.stop()
    print("\nChecks:")
    for text, ok in demo.checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {text}")
    ok = bool(demo.checks) and all(demo.checks.values())
    seconds = time.monotonic() - demo.started
    print(f"\nthe demo {'ran end to end' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_demo())
