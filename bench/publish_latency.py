"""Publish latency and Kubernetes API requests per publish, on the local cluster.

Latency: from the moment the processor's process ended (the local cluster's kubelet
records it with sub-second precision; Kubernetes' own finishedAt has one-second
resolution) to the publisher's first upload request. API requests: the publisher's own
count, checked against the local cluster's audit log.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes

from bench.tools import swift_secret
from devstack.swiftaio import SwiftAIO
from localcluster.cluster import LocalCluster
from pman import jobspec
from pman.pod import OUTGOING, PROCESSOR, PUBLISH


def job(name: str, container: str, seconds: float, secret: str) -> dict[str, Any]:
    """A Job whose processor writes 100 kB and sleeps, beside pman's publish container."""
    script = (
        f"mkdir -p {OUTGOING} && head -c 100000 /dev/urandom > {OUTGOING}/out.bin"
        f" && sleep {seconds}"
    )
    processor = {
        "name": PROCESSOR,
        "image": "busybox",
        "command": ["sh", "-c", script],
        "volumeMounts": [jobspec.share_mount()],
    }
    publish = jobspec.publish_container(
        "fnndsc/publisher", f"swift://{container}/out", options=["--json"]
    )
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "serviceAccountName": "pman-publisher",
        "containers": [processor, publish],
        "volumes": [
            jobspec.share_volume(),
            jobspec.credentials_volume(secret),
            jobspec.token_volume(),
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


class LatencyBench:
    def __init__(self, swift: SwiftAIO, state: Path) -> None:
        self.swift = swift
        self.audit = state / "audit.log"
        self.cluster = LocalCluster(state, tls=True, audit_log=self.audit)

    def run(self, *, short: float, long: float, repeats: int, say) -> dict[str, Any]:
        self.cluster.start()
        try:
            with kubernetes.config.new_client_from_config(
                config_file=str(self.cluster.kubeconfig_path)
            ) as api:
                self.core = kubernetes.client.CoreV1Api(api)
                self.batch = kubernetes.client.BatchV1Api(api)
                secret = swift_secret(self.core, self.swift)
                runs = {"short": [], "long": []}
                for _i in range(repeats):
                    runs["short"].append(self._one(short, secret))
                    say(f"publish after a {short:g} s job: {runs['short'][-1]}")
                runs["long"].append(self._one(long, secret))
                say(f"publish after a {long:g} s job: {runs['long'][-1]}")
        finally:
            self.cluster.stop()
        latencies = [r["latency_ms"] for r in runs["short"] + runs["long"]]
        return {
            "short_seconds": short,
            "long_seconds": long,
            "latency_ms_median": statistics.median(latencies),
            "latency_ms_all": latencies,
            "requests_short": sorted({r["kube_requests"] for r in runs["short"]}),
            "requests_long": sorted({r["kube_requests"] for r in runs["long"]}),
            "audit_short": sorted({r["audit_requests"] for r in runs["short"]}),
            "audit_long": sorted({r["audit_requests"] for r in runs["long"]}),
        }

    def _one(self, seconds: float, secret: str) -> dict[str, Any]:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        container = f"bench-pub-{uuid.uuid4().hex[:8]}"
        self.batch.create_namespaced_job("default", job(name, container, seconds, secret))
        pod = self._wait_done(name, timeout=seconds + 60)
        log = self.core.read_namespaced_pod_log(pod, "default", container=PUBLISH)
        summary = json.loads(log.strip().splitlines()[-1])
        if summary.get("status") != "ok":
            raise RuntimeError(f"publish failed: {log[-2000:]}")
        finished = self.cluster.container_finished_at("default", pod, PROCESSOR)
        self.batch.delete_namespaced_job(name, "default", propagation_policy="Background")
        return {
            "latency_ms": round((summary["first_upload_request_at"] - finished) * 1000, 1),
            "kube_requests": summary["kube_requests"],
            "audit_requests": self._audited(pod),
        }

    def _wait_done(self, job_name: str, *, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.core.list_namespaced_pod(
                "default", label_selector=f"job-name={job_name}"
            ).items
            if pods and pods[0].status.phase in ("Succeeded", "Failed"):
                return pods[0].metadata.name
            time.sleep(0.2)
        raise RuntimeError(f"job {job_name} did not finish")

    def _audited(self, pod: str) -> int:
        """Requests by the publisher's service account that concern this pod."""
        count = 0
        for line in self.audit.read_text().splitlines():
            event = json.loads(line)
            user = event.get("user", {}).get("username", "")
            uri = event.get("requestURI", "")
            if "pman-publisher" in user and pod in uri:
                count += 1
        return count
