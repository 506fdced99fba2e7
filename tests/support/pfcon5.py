"""A client of pman that does to its storeBase what pfcon 5.x (the last pfcon to call pman
over HTTP) does, in each of its storage modes (``STORAGE_ENV``), for tests.

pfcon keeps every job's data under its own storeBase (``STOREBASE_MOUNT``, which pman's jobs
mount as the claim ``VOLUME_NAME`` or the host directory ``STOREBASE``), and sends pman the
directories relative to it:

``zipfile`` (pfcon out of the cluster's network)
    unpacks the uploaded zip into ``key-<jid>/incoming``, makes ``key-<jid>/outgoing``,
    submits those two; afterwards zips ``key-<jid>/outgoing`` (symbolic links left out) for
    its client, and on DELETE removes ``key-<jid>``.
``filesystem`` (in-network, the storeBase is the ChRIS shared filesystem)
    sends the first of the job's input paths and its output path as they are, leading and
    trailing ``/`` stripped, creating nothing; afterwards lists the files under the output
    path (symbolic links left out) as JSON ``{"job_output_path", "rel_file_paths"}``, or
    answers 404 when that path is not a directory.
``fslink`` (in-network, with ChRIS links)
    copies the files of every input path into ``key-<jid>/incoming``, replacing each
    ``.chrislink`` file (whose text is a path of the shared filesystem) by a folder named
    after that path with ``/`` made ``_``, holding a copy of what it points to; sends that
    directory and the output path as it is; lists the output as ``filesystem`` does, and on
    DELETE removes ``key-<jid>``.

pfcon passes pman's job object on unchanged and polls until the status is final.

The jobs run as another UID than this client (which runs as the tests do, as root here; a
real pfcon as a UID of its own): what it writes for them is group-writable, directories also
setgid, as pfcon leaves it with ``umask 002`` (``shared_mkdir``, ``share_tree``), and the jobs
reach it through the storeBase's group (the claim's fsGroup, the group the operator gave the
host directory).
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.rest import FINISHED, PmanClient
from tests.support.storage import share_tree, shared_mkdir

Job = dict[str, Any]
CHRISLINK = ".chrislink"


def compute_data(**changes: Any) -> dict[str, Any]:
    """The compute fields pfcon 5.x forwards from its own request (pfcon's parser makes the
    numbers ints); ``changes`` replace some."""
    data = {
        "args": [],
        "args_path_flags": [],
        "auid": "cube",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "image": "fnndsc/pl-simpledsapp",
        "entrypoint": ["python3", "-c", "pass"],
        "type": "ds",
        "env": [],
    }
    return data | changes


@dataclass
class Pfcon5:
    """pfcon 5.x over one storeBase, talking to one pman."""

    pman: PmanClient
    storebase: Path

    # -- what pfcon sends pman, per storage mode

    def submit_zipfile(self, jid: str, compute: dict[str, Any], data_file: bytes) -> Job:
        incoming = shared_mkdir(self.storebase / f"key-{jid}" / "incoming")
        shared_mkdir(self.storebase / f"key-{jid}" / "outgoing")
        with zipfile.ZipFile(io.BytesIO(data_file)) as archive:
            archive.extractall(incoming)
        share_tree(incoming)
        return self.submit_dirs(jid, compute, f"key-{jid}/incoming", f"key-{jid}/outgoing")

    def submit_filesystem(
        self, jid: str, compute: dict[str, Any], input_dirs: list[str], output_dir: str
    ) -> Job:
        # Only the first input path is used in this mode.
        return self.submit_dirs(jid, compute, input_dirs[0].strip("/"), output_dir.strip("/"))

    def submit_fslink(
        self, jid: str, compute: dict[str, Any], input_dirs: list[str], output_dir: str
    ) -> Job:
        incoming = shared_mkdir(self.storebase / f"key-{jid}" / "incoming")
        for path in input_dirs:
            source = self.storebase / path.strip("/")
            shutil.copytree(source, incoming, dirs_exist_ok=True, symlinks=True)
        self._expand_links(incoming)
        share_tree(incoming)
        return self.submit_dirs(jid, compute, f"key-{jid}/incoming", output_dir.strip("/"))

    def _expand_links(self, directory: Path) -> None:
        for link in sorted(directory.rglob(f"*{CHRISLINK}")):
            target = link.read_text().strip().strip("/")
            linked = self.storebase / target
            if linked.is_file():
                target, linked = os.path.dirname(target), linked.parent
            folder = link.parent / target.replace("/", "_")
            if not folder.exists():
                shutil.copytree(linked, folder, symlinks=True)
                self._expand_links(folder)
            link.unlink()

    def submit_dirs(
        self, jid: str, compute: dict[str, Any], input_dir: str, output_dir: str
    ) -> Job:
        """POST the job as pfcon does once its data is in place; pman's job object."""
        body = {**compute, "input_dir": input_dir, "output_dir": output_dir, "jid": jid}
        response = self.pman.post(body)
        assert response.status_code == 201, response.text
        return response.json()

    # -- what pfcon gives its own client afterwards

    def output_zip(self, jid: str) -> dict[str, bytes]:
        """``zipfile`` mode: the files of ``key-<jid>/outgoing``, through pfcon's zip."""
        outgoing = self.storebase / f"key-{jid}" / "outgoing"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for root, _, files in os.walk(outgoing):
                for name in files:
                    path = Path(root) / name
                    if not path.is_symlink():
                        archive.writestr(str(path.relative_to(outgoing)), path.read_bytes())
        with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    def output_listing(self, job_output_path: str) -> dict[str, Any] | None:
        """``filesystem`` and ``fslink`` modes: pfcon's JSON listing, None for its 404."""
        path = job_output_path.strip("/")
        outgoing = self.storebase / path
        if not outgoing.is_dir():
            return None
        files = [
            str((Path(root) / name).relative_to(outgoing))
            for root, _, names in os.walk(outgoing)
            for name in names
            if not (Path(root) / name).is_symlink()
        ]
        return {"job_output_path": path, "rel_file_paths": sorted(files)}

    # -- the rest of a job's life

    def wait(self, jid: str, *, timeout: float = 90) -> Job:
        job, seen = self.pman.wait(jid, lambda j: j["status"] in FINISHED, timeout=timeout)
        assert "undefined" not in {j["status"] for j in seen}, seen
        return job

    def delete(self, jid: str) -> None:
        """pfcon removes ``key-<jid>`` (when it made one), then DELETEs the job."""
        shutil.rmtree(self.storebase / f"key-{jid}", ignore_errors=True)
        response = self.pman.delete(jid)
        assert response.status_code == 204, response.text
