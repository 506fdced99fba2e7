"""A CUBE-style plugin run through pman's pfcon API on the local cluster, and pfcon's way of
moving the same data, in the same run against the same Swift.

pman runs as ``pman serve`` with the pfcon API on; the plugin is a ``ds`` plugin copying its
input to its output. Measured for each dataset:

- time from the POST to ``finishedSuccessfully`` with the outputs listed (``file/``
  answered), polling every 0.1 s (CUBE polls every 5 s);
- pods and Jobs created, Kubernetes API requests made by pman (its metrics) and by the
  pod (the local cluster's audit log, requests of the publisher's service account);
- the stage-in's time and throughput (from when its process is seen to when the kubelet
  reaped it), its and the publish container's peak RSS (VmHWM, read every 10 ms);
- pfcon's copy: the prefix listed, every object read whole with python-swiftclient's
  ``get_object``, one at a time, written to a file; for the large dataset also pfcon's
  upload (each file read whole, ``put_object``) and both as pods with the plugin's memory
  limit, where they are OOM-killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes
import requests

from bench.datasets import MIB
from bench.rss import peak_rss_kib
from bench.tools import swift_secret
from devstack.swiftaio import SwiftAIO
from devstack.up import PmanProcess
from localcluster.cluster import LocalCluster

USER, PASSWORD = "bench", "bench-password"
BASE = "/pfcon/api/v1/"
COPY_PLUGIN = "import shutil, sys; shutil.copytree(sys.argv[-2], sys.argv[-1], dirs_exist_ok=True)"
# pfcon's copy and upload workers, as they move data (swift_storage.py): whole objects.
PFCON_COPY = """
import os, sys
from swiftclient.client import Connection
container, prefix, dest = sys.argv[1:4]
conn = Connection(os.environ["ST_AUTH"], os.environ["ST_USER"], os.environ["ST_KEY"])
_, listing = conn.get_container(container, prefix=prefix, full_listing=True)
for obj in listing:
    _, contents = conn.get_object(container, obj["name"])
    path = os.path.join(dest, obj["name"][len(prefix):].lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(contents)
print(len(listing), flush=True)
"""
PFCON_UPLOAD = """
import os, sys
from swiftclient.client import Connection
src, container, prefix = sys.argv[1:4]
conn = Connection(os.environ["ST_AUTH"], os.environ["ST_USER"], os.environ["ST_KEY"])
for top, _, names in os.walk(src):
    for name in names:
        path = os.path.join(top, name)
        with open(path, "rb") as f:
            conn.put_object(container, prefix + "/" + os.path.relpath(path, src), f.read())
"""

Obj = dict[str, Any]


class ChrisBench:
    def __init__(self, swift: SwiftAIO, state: Path) -> None:
        self.swift = swift
        self.state = state
        self.audit = state / "cluster" / "audit.log"
        self.cluster = LocalCluster(state / "cluster", tls=True, audit_log=self.audit)
        self.container = f"bench-users-{uuid.uuid4().hex[:8]}"

    def run(
        self, *, small_files: int, large_mib: int, memory_limit: int, rounds: int, say
    ) -> dict[str, Any]:
        self.cluster.start()
        pman = None
        try:
            config = str(self.cluster.kubeconfig_path)
            with kubernetes.config.new_client_from_config(config_file=config) as api:
                self.core = kubernetes.client.CoreV1Api(api)
                self.batch = kubernetes.client.BatchV1Api(api)
                secret = swift_secret(self.core, self.swift)
                pman = PmanProcess(self._pman_env(secret), self.state / "pman.log").start()
                self.url = f"{pman.url}{BASE}"
                self.token = self._login()
                found: dict[str, Any] = {"memory_limit": memory_limit, "rounds": rounds}
                small = _files(small_files, seed=1)
                prefix = self._upload("small", small)
                runs, copies = [], []
                for _ in range(rounds):  # alternating, medians reported
                    runs.append(self._cube_run("small", prefix, small, memory_limit, say))
                    copies.append(self._pfcon_copy(prefix, say))
                found["small"] = _medians(runs) | {"pfcon_copy": _medians(copies)}
                large = {"volume.nii": large_mib * MIB}
                prefix = self._upload("large", large)
                found["large"] = self._cube_run("large", prefix, large, memory_limit, say)
                found["large"]["pfcon"] = self._pfcon_large(prefix, memory_limit, say)
                return found
        finally:
            if pman is not None:
                pman.stop()
            self.cluster.stop()
            shutil.rmtree(self.state / "data", ignore_errors=True)

    # -- setup ------------------------------------------------------------------------------

    def _pman_env(self, secret: str) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig_path),
            "SWIFT_SECRET_NAME": secret,
            **self.swift.environment(),
            "PFCON_USER": USER,
            "PFCON_PASSWORD": PASSWORD,
            "PFCON_SECRET_KEY": uuid.uuid4().hex * 2,
            "SWIFT_CONTAINER_NAME": self.container,
        }

    def _login(self) -> str:
        body = {"pfcon_user": USER, "pfcon_password": PASSWORD}
        return requests.post(f"{self.url}auth-token/", json=body, timeout=30).json()["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _upload(self, tag: str, files: dict[str, int]) -> str:
        """CUBE's uploads, one object per file, as CUBE stores them; the prefix."""
        prefix = f"home/{USER}/uploads/{tag}"
        directory = self.state / "data" / f"upload-{tag}"
        directory.mkdir(parents=True, exist_ok=True)
        conn = self.swift.connection()
        conn.put_container(self.container)
        for name, size in files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                for offset in range(0, size, 8 * MIB):
                    handle.write(os.urandom(min(8 * MIB, size - offset)))
            with open(path, "rb") as handle:
                conn.put_object(self.container, f"{prefix}/{name}", handle, content_length=size)
        shutil.rmtree(directory)
        return prefix

    # -- the run through pman -----------------------------------------------------------------

    def _cube_run(
        self, tag: str, prefix: str, files: dict[str, int], memory: int, say
    ) -> dict[str, Any]:
        size = sum(files.values())
        jid = f"chris-jid-{uuid.uuid4().hex[:8]}"
        output = f"home/{USER}/feeds/feed_1/pl-copy_{tag}/data"
        form = [
            ("entrypoint", "python3"), ("entrypoint", "-c"), ("entrypoint", COPY_PLUGIN),
            ("auid", USER), ("number_of_workers", "1"), ("cpu_limit", "1000"),
            ("memory_limit", str(memory)), ("gpu_limit", "0"), ("image", "fnndsc/pl-copy"),
            ("type", "ds"), ("env", f"CHRIS_JID={jid}"), ("input_dirs", prefix),
            ("output_dir", output), ("jid", jid),
        ]  # fmt: skip
        sampler = _Sampler(self.cluster)
        sampler.start()
        before = self._pman_requests()
        started = time.monotonic()
        posted = requests.post(
            f"{self.url}pluginjobs/", data=form, headers=self.headers, timeout=200
        )
        if posted.status_code != 201:
            raise RuntimeError(f"POST answered {posted.status_code}: {posted.text}")
        status = self._wait(jid)
        listed = requests.get(
            f"{self.url}pluginjobs/{jid}/file/?job_output_path={output}",
            headers=self.headers,
            timeout=500,
        ).json()
        seconds = time.monotonic() - started
        after = self._pman_requests()
        sampler.stop()
        if status != "finishedSuccessfully" or len(listed["rel_file_paths"]) != len(files):
            raise RuntimeError(f"{jid}: {status}, {listed}")
        self._check_outputs(output, listed["rel_file_paths"], files)
        pods = self.core.list_namespaced_pod(
            "default", label_selector=f"pman.chrisproject.org/jid={jid}"
        ).items
        jobs = self.batch.list_namespaced_job("default").items
        pod = pods[0].metadata.name
        stage_in = sampler.seen.get(("default", pod, "stage-in"), {})
        stage_seconds = self.cluster.container_finished_at("default", pod, "stage-in")
        stage_seconds = stage_seconds - stage_in["first_seen"] if stage_seconds else None
        found = {
            "files": len(files),
            "bytes": size,
            "post_to_listed_seconds": round(seconds, 2),
            "pods": len(pods),
            "jobs": sum(1 for j in jobs if j.metadata.name.startswith(jid)),
            "pman_kube_requests": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "pod_kube_requests": self._audited(pod),
            "stage_in_seconds": round(stage_seconds, 2) if stage_seconds else None,
            "stage_in_peak_rss_mib": round(stage_in.get("peak_kib", 0) / 1024, 1),
            "publish_peak_rss_mib": round(
                sampler.seen.get(("default", pod, "publish"), {}).get("peak_kib", 0) / 1024, 1
            ),
        }
        say(f"pman, {tag}: {found}")
        requests.delete(f"{self.url}pluginjobs/{jid}/", headers=self.headers, timeout=200)
        return found

    def _wait(self, jid: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = requests.get(f"{self.url}pluginjobs/{jid}/", headers=self.headers, timeout=100)
            compute = answer.json()["compute"]
            if compute["status"] in ("finishedSuccessfully", "finishedWithError", "undefined"):
                if compute["status"] != "finishedSuccessfully":
                    raise RuntimeError(f"{jid}: {compute}")
                return compute["status"]
            time.sleep(0.1)
        raise RuntimeError(f"{jid} did not finish")

    def _check_outputs(self, output: str, listed: list[str], files: dict[str, int]) -> None:
        _, objects = self.swift.connection().get_container(
            self.container, prefix=f"{output}/", full_listing=True
        )
        stored = {o["name"].removeprefix(f"{output}/"): o["bytes"] for o in objects}
        if stored != files or sorted(listed) != sorted(files):
            raise RuntimeError(f"the outputs in Swift are not the inputs: {stored}")

    def _pman_requests(self) -> dict[str, int]:
        text = requests.get(self.url.removesuffix(BASE) + "/metrics", timeout=30).text
        counts: dict[str, int] = {}
        pattern = r'pman_kubernetes_request_duration_seconds_count\{operation="([^"]+)"\} (\S+)'
        for operation, value in re.findall(pattern, text):
            counts[operation] = int(float(value))
        return counts

    def _audited(self, pod: str) -> int:
        count = 0
        for line in self.audit.read_text().splitlines():
            event = json.loads(line)
            if "pman-publisher" in event.get("user", {}).get("username", "") and pod in event.get(
                "requestURI", ""
            ):
                count += 1
        return count

    # -- pfcon's way ---------------------------------------------------------------------------

    def _pfcon_copy(self, prefix: str, say) -> dict[str, Any]:
        """pfcon's copy of the same objects, as a process of its own as the stage-in is:
        listed, each read whole, one at a time, written to a file."""
        dest = self.state / "data" / "pfcon-copy"
        env = {**os.environ, **self.swift.environment()}
        copy = [sys.executable, "-c", PFCON_COPY, self.container, prefix, str(dest)]
        started = time.monotonic()
        peak = peak_rss_kib(copy, env)
        seconds = time.monotonic() - started
        files = [p for p in dest.rglob("*") if p.is_file()]
        found = {
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "seconds": round(seconds, 2),
            "peak_rss_mib": round(peak / 1024, 1),
        }
        shutil.rmtree(dest, ignore_errors=True)
        say(f"pfcon's copy: {found}")
        return found

    def _pfcon_large(self, prefix: str, memory: int, say) -> dict[str, Any]:
        """pfcon's copy and upload of the large file: unlimited (time, peak RSS), and its
        copy as a pod with the plugin's memory limit (CUBE gives its copy jobs the same)."""
        dest = self.state / "data" / "pfcon-copy"
        copied = self._pfcon_copy(prefix, say)
        env = {**os.environ, **self.swift.environment()}
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "volume.nii").write_bytes(os.urandom(copied["bytes"]))
        upload = [sys.executable, "-c", PFCON_UPLOAD, str(dest), self.container, "pfcon-out"]
        started = time.monotonic()
        upload_peak = peak_rss_kib(upload, env)
        found = {
            "copy_seconds": copied["seconds"],
            "copy_peak_rss_mib": copied["peak_rss_mib"],
            "upload_seconds": round(time.monotonic() - started, 2),
            "upload_peak_rss_mib": round(upload_peak / 1024, 1),
            "copy_pod": self._limited_pod("copy", PFCON_COPY, [prefix, "/tmp/in"], memory),
        }
        shutil.rmtree(dest, ignore_errors=True)
        say(f"pfcon's way, large: {found}")
        return found

    def _limited_pod(self, what: str, script: str, args: list[str], memory: int) -> str:
        """Run pfcon's worker as a Job whose container has ``memory`` MiB; how it ended."""
        name = f"pfcon-{what}-{uuid.uuid4().hex[:6]}"
        env = [{"name": k, "value": v} for k, v in self.swift.environment().items()]
        container = {
            "name": what,
            "image": "ghcr.io/fnndsc/pfconopjob",
            "command": ["python3", "-c", script, self.container, *args],
            "env": env,
            "resources": {"limits": {"memory": f"{memory}Mi"}},
        }
        spec = {"restartPolicy": "Never", "containers": [container]}
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": spec}},
        }
        self.batch.create_namespaced_job("default", job)
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline:
                pods = self.core.list_namespaced_pod(
                    "default", label_selector=f"job-name={name}"
                ).items
                for status in (pods[0].status.container_statuses or []) if pods else []:
                    if status.state.terminated:
                        ended = status.state.terminated
                        return f"{ended.reason} (exit code {ended.exit_code})"
                time.sleep(0.2)
            return "did not end"
        finally:
            self.batch.delete_namespaced_job(name, "default", propagation_policy="Background")


class _Sampler(threading.Thread):
    """Every 10 ms: the local cluster's container processes, when each was first seen and
    its peak resident set (VmHWM), until stopped."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.cluster = cluster
        self.seen: dict[tuple[str, str, str], dict[str, float]] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for key, pid in self.cluster.container_pids().items():
                entry = self.seen.setdefault(key, {"first_seen": time.time(), "peak_kib": 0})
                entry["peak_kib"] = max(entry["peak_kib"], _vm_hwm(pid))
            time.sleep(0.01)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _files(count: int, *, seed: int) -> dict[str, int]:
    """``count`` small files of 4 to 64 KiB in a few folders, sizes fixed by ``seed``."""
    sizes = {}
    for i in range(count):
        digest = hashlib.sha256(f"{seed}-{i}".encode()).digest()
        sizes[f"series{i % 5}/image-{i:04d}.dcm"] = 4096 + int.from_bytes(digest[:2]) % 61440
    return sizes


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric field's median over the runs; any other field from the first run."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = statistics.median(run[key] for run in runs)
    merged["all_seconds"] = [run.get("post_to_listed_seconds", run.get("seconds")) for run in runs]
    return merged


def table(found: dict[str, Any]) -> str:
    small, large = found["small"], found["large"]
    pfcon = small["pfcon_copy"]
    pman_rate = small["bytes"] / MIB / small["stage_in_seconds"]
    pfcon_rate = pfcon["bytes"] / MIB / pfcon["seconds"]
    lines = [
        "## A CUBE-style plugin run through the pfcon API (local cluster)",
        "",
        f"Small files: medians of {found['rounds']} rounds (POST → listed, all: "
        f"{small['all_seconds']} s; pfcon's copy, all: {pfcon['all_seconds']} s).",
        "",
        "| measure | 100 small files in, 100 out | one 256 MiB file in, one out |",
        "|---|---|---|",
        f"| POST → finishedSuccessfully, outputs listed | {small['post_to_listed_seconds']} s "
        f"| {large['post_to_listed_seconds']} s |",
        f"| Jobs / pods created | {small['jobs']} / {small['pods']} "
        f"| {large['jobs']} / {large['pods']} |",
        f"| Kubernetes API requests by pman | {_requests(small)} | {_requests(large)} |",
        f"| Kubernetes API requests by the pod | {small['pod_kube_requests']} "
        f"| {large['pod_kube_requests']} |",
        f"| stage-in (process start → exit) | {small['stage_in_seconds']} s "
        f"({small['files'] / small['stage_in_seconds']:.0f} files/s, {pman_rate:.1f} MiB/s) "
        f"| {large['stage_in_seconds']} s "
        f"({large['bytes'] / MIB / large['stage_in_seconds']:.0f} MiB/s) |",
        f"| pfcon's copy of the same objects (whole, one at a time, a process of its own) "
        f"| {pfcon['seconds']} s ({pfcon['files'] / pfcon['seconds']:.0f} files/s, "
        f"{pfcon_rate:.1f} MiB/s) | {large['pfcon']['copy_seconds']} s "
        f"({large['bytes'] / MIB / large['pfcon']['copy_seconds']:.0f} MiB/s) |",
        f"| stage-in speed-up over pfcon's copy | "
        f"{pfcon['seconds'] / small['stage_in_seconds']:.2f}x | "
        f"{large['pfcon']['copy_seconds'] / large['stage_in_seconds']:.2f}x |",
        f"| peak RSS of pman's stage-in / publish | {small['stage_in_peak_rss_mib']} / "
        f"{small['publish_peak_rss_mib']} MiB | {large['stage_in_peak_rss_mib']} / "
        f"{large['publish_peak_rss_mib']} MiB |",
        "",
        f"pfcon's way with the {large['bytes'] // MIB} MiB file: its copy peaks at "
        f"{large['pfcon']['copy_peak_rss_mib']} MiB, its upload at "
        f"{large['pfcon']['upload_peak_rss_mib']} MiB ({large['pfcon']['upload_seconds']} s); "
        f"its copy as a pod with CUBE's memory_limit of {found['memory_limit']} MiB: "
        f"{large['pfcon']['copy_pod']}. pman's stage-in and publish stay at the peaks above "
        f"(no limit is set on them; the plugin's {found['memory_limit']} MiB limit is its own).",
    ]
    return "\n".join(lines)


def _requests(run: dict[str, Any]) -> str:
    counts = {k: v for k, v in run["pman_kube_requests"].items() if v}
    return f"{sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
