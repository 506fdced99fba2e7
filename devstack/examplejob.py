"""``localcluster example``: the local cluster's own example Job, run and shown end to end.

The Job's init container writes ``/share/in.txt``; container ``main`` prints it, prints
``done`` and exits 3; container ``side`` is a Python program that uses the in-cluster
configuration to watch its own pod until ``main`` has terminated, then prints
``main exit 3``. The Job therefore ends ``Failed``. The command starts a local cluster
with TLS in a temporary directory, runs the Job through the official Kubernetes client,
shows its progress, the containers' states and logs, and exits 0 if all of that happened
as described.
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

from kubernetes import client, config, watch

from localcluster.cluster import LocalCluster

Obj = dict[str, Any]
INIT_TEXT = "hello from the init container"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

SIDE_PROGRAM = f"""
import os
from kubernetes import client, config, watch

config.load_incluster_config()
core = client.CoreV1Api()
namespace = open("{TOKEN_DIR}/namespace").read().strip()
name = os.environ["POD_NAME"]


def main_exit_code(pod):
    for status in pod.status.container_statuses or []:
        if status.name == "main" and status.state.terminated:
            return status.state.terminated.exit_code
    return None


while True:
    events = watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        field_selector="metadata.name=" + name,
        timeout_seconds=30,
    )
    for event in events:
        code = main_exit_code(event["object"])
        if code is not None:
            print(f"main exit {{code}}", flush=True)
            raise SystemExit(0)
"""


def build_job(name: str = "example") -> Obj:
    """The example Job as a plain manifest."""
    share = {"name": "share", "mountPath": "/share"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "localcluster-example"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "localcluster-example"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "serviceAccountName": "example",
                    "initContainers": [
                        {
                            "name": "init",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", f"echo '{INIT_TEXT}' > /share/in.txt"],
                            "volumeMounts": [share],
                        }
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "cat /share/in.txt; echo done; exit 3"],
                            "volumeMounts": [share],
                        },
                        {
                            "name": "side",
                            "image": "python:3.11-slim",
                            "command": ["python", "-c", SIDE_PROGRAM],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                            "volumeMounts": [
                                share,
                                {
                                    "name": "kube-api-access",
                                    "mountPath": TOKEN_DIR,
                                    "readOnly": True,
                                },
                            ],
                        },
                    ],
                    "volumes": [
                        {"name": "share", "emptyDir": {}},
                        {
                            "name": "kube-api-access",
                            "projected": {
                                "sources": [
                                    {
                                        "serviceAccountToken": {
                                            "path": "token",
                                            "expirationSeconds": 3600,
                                        }
                                    },
                                    {
                                        "configMap": {
                                            "name": "kube-root-ca.crt",
                                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                        }
                                    },
                                    {
                                        "downwardAPI": {
                                            "items": [
                                                {
                                                    "path": "namespace",
                                                    "fieldRef": {"fieldPath": "metadata.namespace"},
                                                }
                                            ]
                                        }
                                    },
                                ]
                            },
                        },
                    ],
                },
            },
        },
    }


def describe_state(state: Any) -> str:
    if state.terminated:
        return f"terminated ({state.terminated.reason}, exit code {state.terminated.exit_code})"
    if state.running:
        return "running"
    if state.waiting:
        return f"waiting ({state.waiting.reason})"
    return "unknown"


def describe_pod(pod: Any) -> str:
    status = pod.status
    parts = [f"{s.name}: {describe_state(s.state)}" for s in status.init_container_statuses or []]
    parts += [f"{s.name}: {describe_state(s.state)}" for s in status.container_statuses or []]
    return f"{status.phase}" + (f" ({'; '.join(parts)})" if parts else "")


def job_outcome(job: Any) -> str | None:
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return f"{cond.type} ({cond.reason})"
    return None


class ExampleRun:
    """Runs the example Job on a started cluster and checks what happened."""

    def __init__(self, api: client.ApiClient, *, namespace: str = "default", name: str = "example"):
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.namespace = namespace
        self.name = name
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.2f}s] {text}", flush=True)

    def run(self) -> bool:
        self.batch.create_namespaced_job(self.namespace, build_job(self.name))
        self.say(f"created Job {self.name}")
        pod = self._follow_pod()
        outcome = self._wait_for_job()
        self.say(f"Job {self.name}: {outcome}")
        return self._report(pod.metadata.name, outcome)

    def _follow_pod(self) -> Any:
        last, pod = "", None
        selector = f"job-name={self.name}"
        stream = watch.Watch().stream(
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
            timeout_seconds=45,
        )
        for event in stream:
            pod = event["object"]
            text = describe_pod(pod)
            if text != last:
                self.say(f"pod {pod.metadata.name}: {text}")
                last = text
            if pod.status.phase in ("Succeeded", "Failed"):
                break
        if pod is None:
            raise RuntimeError("no pod appeared for the example Job")
        return pod

    def _wait_for_job(self) -> str:
        stream = watch.Watch().stream(
            self.batch.list_namespaced_job,
            self.namespace,
            field_selector=f"metadata.name={self.name}",
            timeout_seconds=30,
        )
        for event in stream:
            outcome = job_outcome(event["object"])
            if outcome is not None:
                return outcome
        return "not finished"

    def _report(self, pod_name: str, outcome: str) -> bool:
        pod = self.core.read_namespaced_pod(pod_name, self.namespace)
        states = {s.name: s.state for s in pod.status.container_statuses or []}
        logs = {}
        print("\ncontainer states and logs:")
        for status in [
            *(pod.status.init_container_statuses or []),
            *(pod.status.container_statuses or []),
        ]:
            logs[status.name] = self.core.read_namespaced_pod_log(
                pod_name, self.namespace, container=status.name
            )
            print(f"--- {status.name}: {describe_state(status.state)}")
            print(logs[status.name].rstrip("\n") or "(no output)")
        main, side = states.get("main"), states.get("side")
        checks = {
            "the Job failed": outcome.startswith("Failed"),
            "main exited with code 3": bool(
                main and main.terminated and main.terminated.exit_code == 3
            ),
            "main printed the init container's text and 'done'": INIT_TEXT in logs.get("main", "")
            and "done" in logs.get("main", ""),
            "side exited 0 after seeing 'main exit 3'": bool(
                side and side.terminated and side.terminated.exit_code == 0
            )
            and "main exit 3" in logs.get("side", ""),
        }
        print()
        for text, ok in checks.items():
            print(f"{'ok  ' if ok else 'FAIL'} {text}")
        return all(checks.values())


def run_example() -> int:
    print(
        "This is the local cluster's own example Job; `make demo` runs a whole pman job\n"
        "(Swift, the local cluster, pman and the publisher).\n",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="localcluster-example-") as state:
        cluster = LocalCluster(state, tls=True)
        cluster.start()
        try:
            print(
                f"local cluster at {cluster.url} (volumes: {cluster.mount_mode} mode)", flush=True
            )
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
            with api:
                ok = ExampleRun(api).run()
        finally:
            cluster.stop()
    print("\nthe example behaved as expected" if ok else "\nthe example did NOT behave as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_example())
