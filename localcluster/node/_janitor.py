"""Ends the containers of a local cluster that died without stopping them.

Run as ``python -S _janitor.py [CGROUP_DIR]`` in its own session, with a pipe from the
local cluster on stdin. The cluster writes ``+PGID`` when a container process starts and
``-PGID`` when it has ended. When the pipe reaches end of file (the cluster exited, however
it exited), every process group still listed is killed, and so is every process left in
the cluster's memory cgroups, which are then removed. ``PR_SET_PDEATHSIG`` only reaches a
container's first process; this reaches what it started too.
"""

import os
import signal
import sys
import time


def _kill_cgroup(directory: str) -> None:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as handle:
            pids = handle.read().split()
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _remove_cgroups(base: str) -> None:
    try:
        children = [os.path.join(base, name) for name in os.listdir(base)]
    except OSError:
        return
    children = [c for c in children if os.path.isdir(c)]
    for directory in [*children, base]:
        # A cgroup can be removed once the processes killed in it are gone.
        for _ in range(50):
            _kill_cgroup(directory)
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] == "+":
            groups.add(int(line[1:]))
        elif line[:1] == "-":
            groups.discard(int(line[1:]))
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            continue
    if len(sys.argv) > 1:
        _remove_cgroups(sys.argv[1])


if __name__ == "__main__":
    main()
