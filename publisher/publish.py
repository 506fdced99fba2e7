"""`publish`: the job pod's sidecar, as a short ordered script.

1. While the processor runs: authenticate to Swift and list the destination (so that no
   time is lost once it ends).
2. Wait until the processor container has terminated, for any reason.
3. Unless told to publish only on success and it failed: upload the output directory.
4. Write the manifest, with the processor's exit code, reason and times, last.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.kube import PodWatcher, Termination
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

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "published": self.upload is not None,
            "processor": self.termination.as_dict(),
            "kube_requests": self.kube_requests,
            "first_upload_request_at": self.first_put_at,
        }
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
) -> PublishResult:
    """Wait for `wait_container` to end, then upload `src` and the manifest."""
    preparation = _Preparation(store, container, prefix)
    preparation.start()
    termination = watcher.wait_for_termination(wait_container)
    log.info(
        "container %s ended: %s (exit code %d)",
        wait_container,
        termination.reason,
        termination.exit_code,
    )
    if publish_on == "success" and termination.exit_code != 0:
        log.info("not publishing: --publish-on success and the container failed")
        return PublishResult(termination, None, watcher.requests, None)
    result = upload_tree(
        store,
        src,
        container,
        prefix,
        options=options,
        progress=progress,
        processor=termination.as_dict(),
        existing=preparation.result(),
        missing_ok=True,
    )
    return PublishResult(termination, result, watcher.requests, store.first_put_at)
