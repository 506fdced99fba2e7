"""Ends the containers of a local cluster that died without stopping them.

Run as ``python -S _janitor.py [CGROUP_DIR]`` in its own session, with a pipe from the
local cluster on stdin. The cluster writes ``+PGID`` when a container process starts and
``-PGID`` when it has ended. When the pipe reaches end of file (the cluster exited, however
it exited), every process group still listed is killed, and so is every process left in
the cluster's memory cgroups. ``PR_SET_PDEATHSIG`` only reaches a container's first
process; this reaches what it started too.
"""

import os
import signal
import sys


def _kill_cgroups(base):
    try:
        children = [os.path.join(base, name) for name in os.listdir(base)]
    except OSError:
        return
    for directory in [*children, base]:
        try:
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                pids = handle.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                continue


def main():
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    groups = set()
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
        _kill_cgroups(sys.argv[1])


if __name__ == "__main__":
    main()
