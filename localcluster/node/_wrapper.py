"""Starts one container process for the kubelet: mounts, cgroup, identity, then exec.

Run as ``python -S _wrapper.py SPEC.json`` (standard library only, so it starts in a few
milliseconds). It asks the kernel to kill it when the kubelet thread that started it goes
(``PR_SET_PDEATHSIG``), joins the container's memory cgroup, and in the namespace modes
enters a private mount namespace (as root, or inside an unprivileged user namespace),
makes ``/`` private and bind-mounts each volume at its ``mountPath``, read-only where asked.

A mount point that does not exist is never created on the host: the directory that should
hold it is shadowed by a tmpfs holding bind mounts of its entries plus the new mount point
(for ``/`` itself the process then ``chroot``s into such a shadow), all of it visible to
this container only.

Success is reported by the status pipe closing on ``exec`` (it is close-on-exec); a
failure writes a JSON message to it and exits with 128, which the kubelet reports as a
``StartError``. ``--probe MODE DIR`` checks whether a mode works on this machine.
"""

import ctypes
import json
import os
import signal
import sys
import warnings  # noqa: F401  os.execvpe imports it: do it before dropping privileges

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
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
PR_SET_NO_NEW_PRIVS = 38
# statvfs f_flag bits and the mount flags a remount must keep (locked in user namespaces).
_KEEP_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]


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


def enter_namespace(mode: str) -> None:
    if mode == "userns":
        uid, gid = os.getuid(), os.getgid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    else:
        _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def remount_readonly(target: str) -> None:
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    current = os.statvfs(target).f_flag
    for stat_flag, mount_flag in _KEEP_FLAGS:
        if current & stat_flag:
            flags |= mount_flag
    _mount(None, target, None, flags)


class View:
    """The file system as the container will see it, while it is being assembled."""

    def __init__(self, scratch: str, volumes: list[str]) -> None:
        self.root = "/"
        self.scratch = scratch
        # Directories on our own tmpfs (shadows and what was created in them) may get new
        # entries. Below a shadow, directories are bind mounts of the host's: they may not.
        self.ours: set[str] = set()
        # Below a volume's mount point everything belongs to the pod.
        self.volumes = [v.rstrip("/") or "/" for v in volumes]
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


def _pin(path: str) -> str:
    """A path that reaches ``path`` even once a mount hides it (closed on exec)."""
    return f"/proc/self/fd/{os.open(path, os.O_PATH)}"


def assemble(spec: dict) -> str:
    """Mount the volumes; returns the directory to chroot into, or "/"."""
    enter_namespace(spec["mode"])
    _mount("tmpfs", spec["scratch"], "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    mounts = sorted(spec["mounts"], key=lambda m: m["target"].rstrip("/").count("/"))
    # The scratch tmpfs and the volumes' sources live under the cluster's state directory:
    # a volume mounted over a directory holding it (an emptyDir at /tmp while the state is
    # under /tmp) would hide them by path, so they are reached through descriptors.
    sources = [_pin(mount["source"]) for mount in mounts]
    targets = [_normal(m["target"]) for m in mounts]
    # The image's files below a volume (the interpreter under an emptyDir at /tmp) are
    # bound back over it, as a real container's image stays whole beside its volumes.
    kept = [(path, _pin(path)) for path in spec.get("keep", []) if _below(path, targets)]
    view = View(_pin(spec["scratch"]), targets)
    readonly = []
    for mount, source in zip(mounts, sources, strict=True):
        target = view.ensure(mount["target"], os.path.isdir(source))
        _mount(source, target, None, MS_BIND | MS_REC)
        if mount.get("readonly"):
            readonly.append(target)
    for path, pinned in kept:
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


def _set_identity(spec: dict) -> None:
    uid, gid = spec.get("uid"), spec.get("gid")
    if os.geteuid() != 0 or (uid is None and gid is None):
        return
    os.setgroups(spec.get("groups") or [])
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def _start(spec: dict) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    if os.getppid() != spec["parent"]:
        os._exit(137)  # the kubelet is already gone
    if spec.get("cgroup"):
        _write(spec["cgroup"], str(os.getpid()))
    root = "/"
    if spec["mode"] in ("root", "userns"):
        root = assemble(spec)
    if root != "/":
        os.chroot(root)
    cwd = spec.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise StartError(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {exc.strerror}"
        ) from exc
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


def probe(mode: str, directory: str) -> int:
    """Exit 0 if this mode can bind-mount and remount read-only here."""
    try:
        enter_namespace(mode)
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


def main() -> None:
    if sys.argv[1] == "--probe":
        sys.exit(probe(sys.argv[2], sys.argv[3]))
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
