"""Starts one container process for the kubelet: namespaces, mounts, cgroup, identity, exec.

Run as ``python -S _wrapper.py SPEC.json`` (standard library only, so it starts in a few
milliseconds). It asks the kernel to kill it when the kubelet thread that started it goes
(``PR_SET_PDEATHSIG``) and joins the container's memory cgroup. In the namespace modes it
enters new mount and PID namespaces (as root, or inside an unprivileged user namespace whose
one UID is the container's, mapped to the local cluster's user) and forks the container's
init, process 1 of the new PID namespace, which assembles the container's view of the file
system:

- ``/`` made private and read-only but for ``/tmp`` and ``/var/tmp``; what the node
  keeps from containers (``hide``: the state directory,
  the kubeconfig...) covered by an empty tmpfs, or by an empty file for a file;
- directories on the way to the image paths (the interpreter, the venv, the project) that
  the container's user may not traverse (``/root`` holding a pyenv interpreter) covered
  the same way, with only the image paths bound back;
- a ``/dev`` of its own (null, zero, full, random, urandom, tty, a new devpts, a private
  ``/dev/shm``), a new ``/proc`` for its PID namespace with the kernel's settings
  (``/proc/sys``...) read-only and what container runtimes mask masked, ``/sys`` read-only;
- each volume bind-mounted at its ``mountPath``, read-only where asked.

A mount point that does not exist is never created on the host: the directory that should
hold it is shadowed by a tmpfs holding bind mounts of its entries plus the new mount point
(for ``/`` itself the process then ``chroot``s into such a shadow), all of it visible to
this container only.

The init then forks the command, which drops from its bounding set the capabilities it may
not have, takes the container's UID, GID and groups, sets ``no_new_privs`` if asked and
``exec``s. The init passes on the termination signals that its process group did not carry
to the command, reaps orphans, and exits with the command's status (which ends whatever is
left in the namespace); the first process waits for it and exits with the same status.
Where no PID namespace can be made, the first process assembles the view and ``exec``s.

Success is reported by the status pipe closing on ``exec`` (it is close-on-exec); a
failure writes a JSON message to it and exits with 128, which the kubelet reports as a
``StartError``. ``--probe MODE DIR`` checks whether a mode works on this machine,
``--probe-pid MODE DIR`` whether it also gives PID namespaces and their own ``/proc``.
"""

import ctypes
import json
import os
import signal
import stat
import sys
import warnings  # noqa: F401  os.execvpe imports it: do it before dropping privileges

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
EPERM = 1
# mount_setattr(2): the same number on the architectures listed (Linux 5.12 and later).
SYS_MOUNT_SETATTR = 442
MOUNT_SETATTR_MACHINES = ("x86_64", "aarch64", "riscv64", "ppc64le", "s390x", "loongarch64")
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
# statvfs f_flag bits and the mount flags a remount must keep (locked in user namespaces).
_KEEP_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
# A container's /dev, as container runtimes make it.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEVICE_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
# What the OCI runtime specification's defaults make read-only and mask.
PROC_READ_ONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
MASKED = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
# What stays writable of the machine's own file system (anyone may write there anyway).
SHARED_WRITABLE = ("/tmp", "/var/tmp")  # noqa: S108  paths in the container, not temp files
# The signals a kubelet ends containers with; they reach the command with its process group.
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# Python ignores these two at start; the command gets every disposition at its default.
RESET = (*FORWARDED, signal.SIGPIPE, signal.SIGXFSZ)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_COMMAND: list = [None]  # the pid of the command, in the init


class StartError(Exception):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    def enc(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def enter_namespace(mode: str, *, uid=None, gid=None, pid: bool = False) -> None:
    """New mount (and PID) namespaces; in ``userns`` mode inside a user namespace whose one
    UID and GID (``uid``/``gid``, else the local cluster's own) map to the local cluster's
    user. A new PID namespace takes the next child forked."""
    flags = CLONE_NEWNS | (CLONE_NEWPID if pid else 0)
    if mode == "userns":
        host_uid, host_gid = os.getuid(), os.getgid()
        _check(_libc.unshare(CLONE_NEWUSER | flags), "unshare")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{host_uid if uid is None else uid} {host_uid} 1")
        _write("/proc/self/gid_map", f"{host_gid if gid is None else gid} {host_gid} 1")
    else:
        _check(_libc.unshare(flags), "unshare")


def _remount(target: str, flags: int) -> None:
    current = os.statvfs(target).f_flag
    for stat_flag, mount_flag in _KEEP_FLAGS:
        if current & stat_flag:
            flags |= mount_flag
    _mount(None, target, None, flags)


def remount_readonly(target: str) -> None:
    _remount(target, MS_BIND | MS_REMOUNT | MS_RDONLY)


def remount_writable(target: str) -> None:
    _remount(target, MS_BIND | MS_REMOUNT)


def _mounts_below(top: str) -> list:
    """The mount points at or below ``top`` in this mount namespace."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ").replace("\\011", "\t")
            point = point.replace("\\012", "\n").replace("\\134", "\\")
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found.append(point)
    return found


def read_only_tree(top: str) -> None:
    """Make the mount at ``top`` and every mount below it read-only."""
    if os.uname().machine in MOUNT_SETATTR_MACHINES:
        attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
        result = _libc.syscall(
            SYS_MOUNT_SETATTR, AT_FDCWD, top.encode(), AT_RECURSIVE, ctypes.byref(attr), 32
        )
        if result == 0:
            return
    for point in _mounts_below(top):  # a kernel older than 5.12: one mount at a time
        remount_readonly(point)


def _traversable(path: str, uid: int, gids: set) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return True  # nothing to open the way to
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in gids:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def closed_ancestors(paths: list, spec: dict) -> list:
    """The topmost directories on the way to ``paths`` the container's user may not enter.

    Only a real change of user needs them: in a user namespace the container keeps the
    rights of the local cluster's user."""
    uid = spec.get("uid")
    if spec["mode"] != "root" or uid is None or uid == 0:
        return []
    gid = spec.get("gid")
    gids = {os.getgid() if gid is None else gid, *(spec.get("groups") or [])}
    found: list = []
    for path in paths:
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            if any(ancestor == f or ancestor.startswith(f + "/") for f in found):
                break
            if not _traversable(ancestor, uid, gids):
                found.append(ancestor)
                break
    return found


class View:
    """The file system as the container will see it, while it is being assembled."""

    def __init__(self, scratch: str, volumes: list[str]) -> None:
        self.root = "/"
        self.scratch = scratch
        # Directories on our own tmpfs (shadows, covers and what was created in them) may get
        # new entries. Below a shadow, directories are bind mounts of the host's: they may not.
        self.ours: set[str] = set()
        # Below a volume's mount point everything belongs to the pod.
        self.volumes = [v.rstrip("/") or "/" for v in volumes]
        self.covers: list[str] = []
        self.shadows = 0

    def host(self, path: str) -> str:
        return path if self.root == "/" else os.path.join(self.root, path.lstrip("/"))

    def _is_writable(self, directory: str) -> bool:
        if directory in self.ours:
            return True
        return any(directory == v or directory.startswith(v + "/") for v in self.volumes)

    def _populate(self, shadow: str, source: str) -> None:
        for entry in os.scandir(source):
            src, dst = os.path.join(source, entry.name), os.path.join(shadow, entry.name)
            try:
                if entry.is_symlink():
                    os.symlink(os.readlink(src), dst)
                elif entry.is_dir(follow_symlinks=False):
                    os.mkdir(dst)
                    _mount(src, dst, None, MS_BIND | MS_REC)
                else:
                    open(dst, "w").close()
                    _mount(src, dst, None, MS_BIND)
            except OSError:
                continue

    def make_writable(self, directory: str) -> None:
        if self._is_writable(directory):
            return
        self.shadows += 1
        shadow = os.path.join(self.scratch, f"shadow{self.shadows}")
        os.mkdir(shadow, 0o755)
        self._populate(shadow, self.host(directory))
        if directory == "/":
            self.root = shadow
        else:
            _mount(shadow, self.host(directory), None, MS_BIND | MS_REC)
        self.ours.add(directory)

    def ensure(self, path: str, is_dir: bool) -> str:
        """The host path of ``path`` in this view, created as a directory or file if missing."""
        parts = [p for p in path.split("/") if p and p != "."]
        current, links = "/", 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                current = os.path.dirname(current)
                continue
            candidate = os.path.join(current, part)
            real = self.host(candidate)
            if os.path.islink(real):
                links += 1
                if links > 40:
                    raise StartError(f"too many levels of symbolic links in {path}")
                target = os.readlink(real)
                if target.startswith("/"):
                    current = "/"
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            if not os.path.lexists(real):
                self.make_writable(current)
                if parts or is_dir:
                    os.mkdir(self.host(candidate), 0o755)
                else:
                    open(self.host(candidate), "w").close()
                self.ours.add(candidate)
            current = candidate
        return self.host(current)

    def cover(self, path: str, *, mode: int = 0o711) -> None:
        """Hide ``path`` behind an empty directory (a tmpfs of ``mode``) or an empty,
        unreadable, read-only file."""
        real = self.host(path)
        if os.path.islink(real) or not os.path.lexists(real):
            return
        if os.path.isdir(real):
            _mount("tmpfs", real, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o},size=1m")
            self.ours.add(path)
        else:
            empty = os.path.join(self.scratch, f"cover{len(self.covers)}")
            os.close(os.open(empty, os.O_WRONLY | os.O_CREAT, 0))
            _mount(empty, real, None, MS_BIND)
            remount_readonly(real)
        self.covers.append(path)

    def private_dev(self, devices: dict) -> None:
        """A /dev of the container's own: a few devices of the host, a new devpts, an shm."""
        dev = self.host("/dev")
        _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
        self.ours.add("/dev")
        for name, pinned in devices.items():
            target = os.path.join(dev, name)
            open(target, "w").close()
            _mount(pinned, target, None, MS_BIND)
        for name, target in DEVICE_LINKS:
            os.symlink(target, os.path.join(dev, name))
        pts = os.path.join(dev, "pts")
        os.mkdir(pts, 0o755)
        try:
            options = "newinstance,ptmxmode=0666,mode=0620"
            _mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, options)
            os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
        except OSError:
            pass  # no terminals then; nothing a job needs
        shm = os.path.join(dev, "shm")
        os.mkdir(shm, 0o1777)
        _mount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m")
        self.ours.add("/dev/shm")  # noqa: S108  the container's own, just made

    def private_proc_and_sys(self, new_proc: bool, null: str | None) -> None:
        """/proc of the PID namespace (if one), its kernel settings read-only, /sys
        read-only, what container runtimes mask masked."""
        proc = self.host("/proc")
        if new_proc:
            _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for name in PROC_READ_ONLY:
            path = os.path.join(proc, name)
            if os.path.lexists(path):
                _mount(path, path, None, MS_BIND | MS_REC)
                read_only_tree(path)
        read_only_tree(self.host("/sys"))
        for path in MASKED:
            real = self.host(path)
            try:
                if os.path.isdir(real):
                    _mount("tmpfs", real, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=0")
                elif os.path.exists(real) and null is not None:
                    _mount(null, real, None, MS_BIND)
            except OSError:
                continue  # best effort, as runtimes do


def _pin(path: str) -> str:
    """A path that reaches ``path`` even once a mount hides it (closed on exec)."""
    return f"/proc/self/fd/{os.open(path, os.O_PATH)}"


def assemble(spec: dict) -> str:
    """Build the container's view; returns the directory to chroot into, or "/"."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # The machine's files are the container's image: read-only, as an image's layers are
    # to the node (a root container must not rewrite the programs the node runs).
    read_only_tree("/")
    for path in SHARED_WRITABLE:
        if os.path.isdir(path) and not os.path.islink(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            remount_writable(path)
    _mount("tmpfs", spec["scratch"], "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    mounts = sorted(spec["mounts"], key=lambda m: m["target"].rstrip("/").count("/"))
    # The scratch tmpfs and the volumes' sources live under the cluster's state directory,
    # which is hidden (and a volume mounted over a directory holding it, an emptyDir at /tmp
    # while the state is under /tmp, would hide it too): they are reached through descriptors.
    sources = [_pin(mount["source"]) for mount in mounts]
    targets = [_normal(m["target"]) for m in mounts]
    images = [(path, _pin(path)) for path in spec.get("keep", []) if os.path.isdir(path)]
    devices = {name: _pin(f"/dev/{name}") for name in DEVICES if os.path.exists(f"/dev/{name}")}
    view = View(_pin(spec["scratch"]), targets)
    for path in spec.get("hide", []):
        view.cover(path)
    for path in closed_ancestors([path for path, _ in images], spec):
        view.cover(path, mode=0o755)
    view.private_dev(devices)
    view.private_proc_and_sys(bool(spec.get("pid_namespace")), devices.get("null"))
    readonly = []
    for mount, source in zip(mounts, sources, strict=True):
        target = view.ensure(mount["target"], os.path.isdir(source))
        _mount(source, target, None, MS_BIND | MS_REC)
        remount_writable(target)  # its source may be on the now read-only machine's files
        if mount.get("readonly"):
            readonly.append(target)
    # The image's files below a volume or a cover (the interpreter under an emptyDir at /tmp,
    # or under /root) are bound back, as a real container's image stays whole.
    hiding = targets + view.covers
    for path, pinned in images:
        if not _below(path, hiding):
            continue
        try:
            _mount(pinned, view.ensure(path, True), None, MS_BIND | MS_REC)
        except OSError:
            continue  # a read-only volume source: the path stays hidden, as before
    for target in readonly:
        remount_readonly(target)
    return view.root


def _normal(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


def _below(path: str, targets: list) -> bool:
    """Whether ``path`` lies strictly inside one of the mount targets."""
    return any(path.startswith(t.rstrip("/") + "/") for t in targets)


def _drop_capabilities(kept) -> None:
    """Leave only ``kept`` in the bounding set (None: leave every capability)."""
    if kept is None:
        return
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last = int(handle.read())
    except (OSError, ValueError):
        last = 40
    for capability in range(last + 1):
        if capability in kept or _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) == 0:
            continue
        if ctypes.get_errno() == EPERM:
            return  # not privileged at all (no namespace, not root): nothing to drop
        raise OSError(ctypes.get_errno(), f"dropping capability {capability}")


def _set_identity(spec: dict) -> None:
    if spec["mode"] == "userns" or os.geteuid() != 0:
        return  # a user namespace maps the container's UID and GID; nothing else can change
    uid, gid, groups = spec.get("uid"), spec.get("gid"), spec.get("groups") or []
    if uid is None and gid is None and not groups:
        return
    os.setgroups(groups)
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def _exec(spec: dict) -> None:
    """Become the container's command."""
    for signum in RESET:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    cwd = spec.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise StartError(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {exc.strerror}"
        ) from exc
    _drop_capabilities(spec.get("capabilities"))
    _set_identity(spec)
    if spec.get("no_new_privs"):
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    argv = spec["argv"]
    if not argv:
        raise StartError("no command specified")
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except FileNotFoundError:
        where = "" if "/" in argv[0] else " in $PATH"
        raise StartError(f'exec: "{argv[0]}": executable file not found{where}') from None
    except PermissionError:
        raise StartError(f'exec: "{argv[0]}": permission denied') from None


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _on_signal(signum: int, frame: object) -> None:
    """In the init: pass the signal on to the command if its process group did not carry
    it there. Before the command exists (and in the command, until it execs), end as the
    signal's default action would."""
    command = _COMMAND[0]
    if os.getpid() != 1 or not command:
        os._exit(128 + signum)
    try:
        if os.getpgid(command) != os.getpgrp():
            os.kill(command, signum)
    except OSError:
        pass


def _init(spec: dict) -> None:
    """Process 1 of the container's PID namespace: start the command, reap, end with it."""
    _COMMAND[0] = os.fork()
    if _COMMAND[0] == 0:
        _exec(spec)
    os.close(spec["status_fd"])
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(128)
        if pid == _COMMAND[0]:
            os._exit(_exit_code(status))


def _start(spec: dict) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    if os.getppid() != spec["parent"]:
        os._exit(137)  # the kubelet is already gone
    if spec.get("cgroup"):
        _write(spec["cgroup"], str(os.getpid()))
    if spec["mode"] not in ("root", "userns"):
        _exec(spec)
        return
    pid_namespace = bool(spec.get("pid_namespace"))
    enter_namespace(spec["mode"], uid=spec.get("uid"), gid=spec.get("gid"), pid=pid_namespace)
    if pid_namespace:
        # The init inherits the blocked signals and sees those sent meanwhile once its
        # handler is in place; this first process only waits.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        init = os.fork()
        if init:
            for signum in FORWARDED:
                signal.signal(signum, signal.SIG_IGN)
            os.close(spec["status_fd"])
            while True:
                _, status = os.waitpid(init, 0)
                os._exit(_exit_code(status))
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
        # It holds descriptors of the node's hidden directories until the command runs:
        # not dumpable, so no process of the container may open them through /proc/1/fd.
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl")
        for signum in FORWARDED:
            signal.signal(signum, _on_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    root = assemble(spec)
    if root != "/":
        os.chroot(root)
    if pid_namespace:
        # What assembling held open (the sources of the volumes, whose parents are the
        # state directory) goes before the init starts waiting for the command.
        status = spec["status_fd"]
        os.closerange(3, status)
        os.closerange(status + 1, os.sysconf("SC_OPEN_MAX"))
        _init(spec)
    _exec(spec)


def probe(mode: str, directory: str) -> int:
    """Exit 0 if this mode can bind-mount and remount read-only here."""
    try:
        enter_namespace(mode)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        source, target = os.path.join(directory, "a"), os.path.join(directory, "b")
        os.mkdir(source)
        os.mkdir(target)
        _mount(source, target, None, MS_BIND | MS_REC)
        remount_readonly(target)
        try:
            open(os.path.join(target, "x"), "w").close()
        except OSError:
            return 0
        return 1
    except OSError:
        return 1


def probe_pid(mode: str, directory: str) -> int:
    """Exit 0 if this mode also gives a PID namespace with its own, read-only-settings /proc."""
    try:
        enter_namespace(mode, pid=True)
        child = os.fork()
    except OSError:
        return 1
    if child == 0:
        try:
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            _mount("proc", directory, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            settings = os.path.join(directory, "sys")
            _mount(settings, settings, None, MS_BIND | MS_REC)
            read_only_tree(settings)
            alone = os.getpid() == 1 and os.path.isdir(os.path.join(directory, "1"))
            os._exit(0 if alone else 1)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    return 0 if os.waitstatus_to_exitcode(status) == 0 else 1


def main() -> None:
    if sys.argv[1] == "--probe":
        sys.exit(probe(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "--probe-pid":
        sys.exit(probe_pid(sys.argv[2], sys.argv[3]))
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    status = spec["status_fd"]
    os.set_inheritable(status, False)
    try:
        _start(spec)
    except (OSError, StartError) as exc:
        message = f"failed to create container process: {exc}"
        os.write(status, json.dumps({"message": message}).encode())
        os._exit(128)


if __name__ == "__main__":
    main()
