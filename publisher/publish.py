"""`publish`: the job pod's sidecar, as a short ordered script.

1. While the processor runs: authenticate to Swift and list the destination (so that no
   time is lost once it ends).
2. Wait until the processor container has terminated, for any reason.
3. Unless told to publish only on success and it failed: upload the output directory.
4. Write the manifest, with the processor's exit code, reason and times, last.

When Kubernetes ends the pod (deleted, also by its Job's deadline), every container gets
SIGTERM at once; `GracefulStop` lets the sidecar still publish what the processor left,
within the pod's termination grace period.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.errors import GraceExpired, Interrupted
from publisher.kube import PodEnding, PodWatcher, Termination
from publisher.progress import Progress
from publisher.swift import ObjectInfo, SwiftStore
from publisher.upload import UploadOptions, UploadResult, list_destination, upload_tree

log = logging.getLogger("publisher")


@dataclass
class PublishResult:
    termination: Termination
    upload: UploadResult | None
    kube_requests: int
    first_put_at: float | None
    ending: PodEnding | None = None

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "published": self.upload is not None,
            "processor": self.termination.as_dict(),
            "kube_requests": self.kube_requests,
            "first_upload_request_at": self.first_put_at,
        }
        if self.ending is not None:
            summary["pod_ending"] = self.ending.as_dict()
        if self.upload is not None:
            summary.update(self.upload.summary())
        return summary


class _Preparation(threading.Thread):
    """Authenticates and lists the destination in the background; errors are retried later."""

    def __init__(self, store: SwiftStore, container: str, prefix: str) -> None:
        super().__init__(name="prepare", daemon=True)
        self.store, self.container, self.prefix = store, container, prefix
        self.existing: dict[str, ObjectInfo] | None = None

    def run(self) -> None:
        try:
            self.existing = list_destination(self.store, self.container, self.prefix)
        except Exception as exc:
            log.info("preparing the upload failed (%s); will try again after the wait", exc)

    def result(self) -> dict[str, ObjectInfo] | None:
        self.join()
        return self.existing


MARGIN = 2.0
"""Seconds of the grace period kept back, to end with a clear message before SIGKILL."""


class GracefulStop:
    """What SIGTERM does to a publish: finish within the pod's grace period if it can.

    Kubernetes ends a pod (deleted, also by its Job's activeDeadlineSeconds, past its own
    deadline, evicted) by sending SIGTERM to all its containers at once, then SIGKILL when
    the termination grace period is over. So the sidecar is signalled with the processor:

    - SIGTERM while waiting: the wait stops (`Interrupted`), and `publish` asks the API
      whether the pod is being ended. If it is, it waits for the processor to end and
      publishes. If not (a signal for this process alone), it stops there.
    - SIGTERM while uploading: the upload goes on.

    In both cases the publish must be over `margin` seconds before the grace period is:
    then SIGALRM raises `GraceExpired` in the main thread, and the command ends as on any
    interruption (no manifest; what was uploaded stays, and a rerun resumes). Once it is
    finishing, another SIGTERM changes nothing (Kubernetes may send one again); SIGINT
    still stops it at once.
    """

    def __init__(self, margin: float = MARGIN, clock: Callable[[], float] = time.monotonic):
        self.margin, self.clock = margin, clock
        self.received_at: float | None = None
        self.grace_seconds: int | None = None
        """Known once uploading: the pod's grace period, for a SIGTERM that comes then."""
        self.waiting_for: str | None = None
        """The container still to end before the upload, while finishing."""
        self.finishing = False
        """The clock runs: the publish ends by the grace period, or GraceExpired."""

    def install(self) -> None:
        """Take SIGTERM and SIGALRM (main thread only); SIGINT is left as it is."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGALRM, self._on_alarm)

    def uploading(self, grace_seconds: int) -> None:
        """From now on a SIGTERM lets the upload finish within `grace_seconds`."""
        self.waiting_for, self.grace_seconds = None, grace_seconds

    def start(self, grace_seconds: int, waiting_for: str | None = None) -> None:
        """Allow what is left of `grace_seconds` since SIGTERM, less the margin."""
        self.grace_seconds = grace_seconds
        if waiting_for is not None:
            self.waiting_for = waiting_for
        if self.received_at is None:
            self.received_at = self.clock()
        self.finishing = True
        left = self.received_at + grace_seconds - self.margin - self.clock()
        if left <= 0:
            raise GraceExpired(self._message())
        signal.setitimer(signal.ITIMER_REAL, left)

    def cancel(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        if self.finishing:
            log.info("SIGTERM again: still finishing within the grace period")
            return
        if self.received_at is None:
            self.received_at = self.clock()
        if self.grace_seconds is None:
            raise Interrupted(signum)  # waiting: `publish` decides
        log.warning(
            "SIGTERM while publishing: finishing within the pod's grace period (%d s)",
            self.grace_seconds,
        )
        self.start(self.grace_seconds)

    def _on_alarm(self, signum: int, frame: object) -> None:
        raise GraceExpired(self._message())

    def _message(self) -> str:
        ran_out = f"the pod's termination grace period ({self.grace_seconds} s) ran out"
        if self.waiting_for is not None:
            return f"{ran_out} before container {self.waiting_for} ended: nothing published"
        return (
            f"{ran_out} while publishing: the publish did not finish "
            "(the manifest is written last; a rerun resumes)"
        )


def _is_sigterm(interrupted: Interrupted) -> bool:
    return type(interrupted) is Interrupted and interrupted.exit_code == 128 + signal.SIGTERM


def publish(
    store: SwiftStore,
    watcher: PodWatcher,
    src: Path,
    container: str,
    prefix: str,
    *,
    wait_container: str,
    publish_on: str,
    options: UploadOptions,
    progress: Progress,
    stop: GracefulStop,
    run: str | None = None,
    manifest_at: tuple[str, str] | None = None,
    skip_chris_links: bool = False,
) -> PublishResult:
    """Wait for `wait_container` to end, then upload `src` and the manifest (of `run`; at
    `manifest_at` when given, see `upload_tree`, as is `skip_chris_links`).

    SIGTERM is handled as `stop` (installed by the caller) says.
    """
    preparation = _Preparation(store, container, prefix)
    preparation.start()
    try:
        termination, ending = _wait(watcher, wait_container, stop)
        log.info(
            "container %s ended: %s (exit code %d)",
            wait_container,
            termination.reason,
            termination.exit_code,
        )
        if publish_on == "success" and termination.exit_code != 0:
            log.info("not publishing: --publish-on success and the container failed")
            return PublishResult(termination, None, watcher.requests, None, ending)
        processor = termination.as_dict()
        if ending is not None:
            processor["pod_ending"] = ending.as_dict()
        result = upload_tree(
            store,
            src,
            container,
            prefix,
            options=options,
            progress=progress,
            processor=processor,
            existing=preparation.result(),
            missing_ok=True,
            run=run,
            manifest_at=manifest_at,
            skip_chris_links=skip_chris_links,
        )
    finally:
        stop.cancel()
    return PublishResult(termination, result, watcher.requests, store.first_put_at, ending)


def _wait(
    watcher: PodWatcher, wait_container: str, stop: GracefulStop
) -> tuple[Termination, PodEnding | None]:
    """The container's end; and the pod's, when a SIGTERM came because it is being ended."""
    try:
        termination = watcher.wait_for_termination(wait_container)
        stop.uploading(watcher.grace_seconds)  # from now on a SIGTERM lets the upload finish
        return termination, None
    except Interrupted as interrupted:
        if not _is_sigterm(interrupted):
            raise
        stop.start(watcher.grace_seconds, wait_container)  # also while asking the API
        ending = watcher.pod_ending(wait_container)
        if ending is None:
            raise
    log.warning(
        "pod is being ended (%s, grace period %d s): publishing once %s has ended",
        ending.why,
        ending.grace_seconds,
        wait_container,
    )
    stop.start(ending.grace_seconds, wait_container)
    termination = watcher.wait_for_termination(wait_container)
    stop.uploading(ending.grace_seconds)
    return termination, ending
