"""Memory limits for containers: a cgroup where one is writable, else an RSS watchdog.

The cgroup (v2 ``memory.max``, or the v1 memory controller's ``memory.limit_in_bytes``)
is created under the local cluster's own cgroup, so the machine's accounting stays whole;
the kernel's OOM killer then does the work and ``oom_kill`` in the cgroup's event counters
tells that it happened. Without a writable cgroup, a watchdog thread sums the resident
memory of each limited container's process tree (less the wrapper and init processes the
node starts it with) every 50 ms and SIGKILLs the tree when it passes the limit (a process
that allocates very fast can overshoot for that long). Either way the kubelet reports the
container as ``OOMKilled`` with exit code 137.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.node.mounts import WRAPPER

log = logging.getLogger("localcluster.memory")

CGROUP2, CGROUP1, WATCHDOG = "cgroup v2", "cgroup v1", "watchdog"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _mounts() -> list[tuple[str, str, list[str]]]:
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fstype, _, options = right.split()[:3]
            found.append((fstype, left.split()[4], options.split(",")))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path."""
    paths = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


@dataclass
class Limited:
    """One container under a memory limit."""

    limit: int
    directory: Path | None = None  # the cgroup, when there is one
    pid: int = 0
    oom_killed: bool = False
    procs: Path | None = field(default=None)


class MemoryLimiter:
    """Chooses the mechanism once, then limits containers with it."""

    def __init__(self, *, mode: str = "auto") -> None:
        self.base: Path | None = None
        self.mechanism = WATCHDOG
        if mode in ("auto", "cgroup"):
            self._choose_cgroup()
        self._watched: dict[int, Limited] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- choosing

    def _choose_cgroup(self) -> None:
        own = _own_cgroups()
        for fstype, mount_point, options in _mounts():
            if fstype == "cgroup2" and "" in own:
                chosen = self._try_base(Path(mount_point), own[""], version=2)
            elif fstype == "cgroup" and "memory" in options and "memory" in own:
                chosen = self._try_base(Path(mount_point), own["memory"], version=1)
            else:
                chosen = False
            if chosen:
                return

    def _try_base(self, mount_point: Path, own: str, *, version: int) -> bool:
        base = mount_point / own.lstrip("/") / f"localcluster-{os.getpid()}"
        try:
            base.mkdir()
        except OSError:
            return False
        try:
            if version == 2:
                (base / "cgroup.subtree_control").write_text("+memory")
            probe = base / "probe"
            probe.mkdir()
            limit_file = "memory.max" if version == 2 else "memory.limit_in_bytes"
            (probe / limit_file).write_text(str(64 * 2**20))
            probe.rmdir()
        except OSError:
            _remove_cgroup(base)
            return False
        self.base = base
        self.mechanism = CGROUP2 if version == 2 else CGROUP1
        return True

    # -- limiting

    def prepare(self, name: str, limit: int) -> Limited:
        """A limit for a container about to start; ``procs`` is the file it must join."""
        limited = Limited(limit)
        if self.base is None:
            return limited
        directory = self.base / name
        directory.mkdir(exist_ok=True)
        if self.mechanism == CGROUP2:
            (directory / "memory.max").write_text(str(limit))
            swap = directory / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
        else:
            (directory / "memory.limit_in_bytes").write_text(str(limit))
            swap = directory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                with contextlib.suppress(OSError):
                    swap.write_text(str(limit))
        limited.directory = directory
        limited.procs = directory / "cgroup.procs"
        return limited

    def started(self, limited: Limited, pid: int) -> None:
        limited.pid = pid
        if limited.directory is None:
            with self._lock:
                self._watched[pid] = limited
            self._ensure_watchdog()

    def oom_killed(self, limited: Limited) -> bool:
        """Whether the container was killed for memory (read as soon as it ended)."""
        if limited.directory is not None:
            limited.oom_killed = (
                limited.oom_killed or _oom_kills(limited.directory, self.mechanism) > 0
            )
        return limited.oom_killed

    def finished(self, limited: Limited) -> bool:
        """Forget the container; returns whether it was killed for memory."""
        with self._lock:
            self._watched.pop(limited.pid, None)
        if limited.directory is not None:
            self.oom_killed(limited)
            _remove_cgroup(limited.directory)
        return limited.oom_killed

    def kill_all(self, limited: Limited) -> None:
        """SIGKILL whatever is left in the container's cgroup (children that left its group)."""
        if limited.directory is not None:
            _kill_cgroup(limited.directory)

    # -- the watchdog

    def _ensure_watchdog(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="localcluster-memory", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _watch(self) -> None:
        while not self._stopped:
            with self._lock:
                watched = dict(self._watched)
            if not watched:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            usage = _tree_rss(set(watched))
            for pid, limited in watched.items():
                if usage.get(pid, 0) > limited.limit:
                    log.info("container process %d passed its memory limit: killing it", pid)
                    limited.oom_killed = True
                    _kill_tree(pid)
            time.sleep(0.05)

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        # LocalCluster.stop() may run twice (it is idempotent): the first removed the base.
        if self.base is not None and self.base.is_dir():
            for child in self.base.iterdir():
                if child.is_dir():
                    _kill_cgroup(child)
                    _remove_cgroup(child)
            _remove_cgroup(self.base)


def _oom_kills(directory: Path, mechanism: str) -> int:
    name = "memory.events" if mechanism == CGROUP2 else "memory.oom_control"
    try:
        for line in (directory / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    if mechanism == CGROUP1:
        try:
            return int((directory / "memory.failcnt").read_text()) and 1
        except (OSError, ValueError):
            return 0
    return 0


def _kill_cgroup(directory: Path) -> None:
    try:
        pids = (directory / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _remove_cgroup(directory: Path) -> None:
    for _ in range(50):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            _kill_cgroup(directory)
            time.sleep(0.02)
    log.warning("could not remove cgroup %s", directory)


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, resident bytes) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[21]) * _PAGE)
    return table


def _descendants(table: dict[int, tuple[int, int, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    # The container's process group too: a child whose parent exited is still its own.
    found |= {pid for pid, (_, group, _) in table.items() if group == root}
    return found


def _is_wrapper(pid: int) -> bool:
    """Whether ``pid`` is the container's wrapper or init, not the container's own process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return str(WRAPPER).encode() in handle.read()
    except OSError:
        return False


def _tree_rss(roots: set[int]) -> dict[int, int]:
    table = _processes()
    return {
        root: sum(
            table[p][2] for p in _descendants(table, root) if p in table and not _is_wrapper(p)
        )
        for root in roots
    }


def _kill_tree(root: int) -> None:
    for pid in _descendants(_processes(), root):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
