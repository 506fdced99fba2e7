"""A real OpenStack Swift all-in-one on 127.0.0.1, for trying pman and for the test suite.

`SwiftAIO` writes the configuration and rings for one replica of account, container and
object servers plus a proxy (tempauth, tempurl, slo, dlo, bulk), starts each server as its
own process with a private memcached, and stops every process it started. A second proxy
that authenticates with Keystone (`authtoken keystoneauth`) can be added in front of the
same storage. `main(argv)` is the `localcluster swift --dir DIR` command.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import HOST, ServerProcess, free_port, wait_for_http

ACCOUNT = "test"
USER = "tester"
KEY = "testing"
STORAGE_SERVERS = ("account", "container", "object")

# The middleware the publisher relies on (slo, bulk, tempurl) plus what tempauth needs
# (cache); proxy-logging appears twice as upstream recommends, to log subrequests too.
PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl "
    "formpost {auth} copy slo dlo versioned_writes symlink proxy-logging proxy-server"
)


class SwiftStartError(RuntimeError):
    """A Swift server, or something it needs, did not come up."""


def find_memcached() -> str:
    """Return the memcached binary, installing Debian's package when root and it is missing."""
    found = shutil.which("memcached") or (
        "/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None
    )
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "memcached"]
        if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(cmd, env=env, capture_output=True, check=False)
        found = shutil.which("memcached")
        if found:
            return found
    raise SwiftStartError(
        "memcached is needed by the Swift proxy: install it (apt-get install memcached)"
    )


@dataclass
class SwiftAIO:
    """One Swift all-in-one whose files all live under `directory`.

    Use as a context manager, or call `start()` and `stop()`. `python` is the interpreter
    of a virtualenv with the `swift` package (by default the running one). `workers` is
    the number of processes each server forks to serve requests: 0 (the default) serves
    from the started process itself, which keeps the suite light; a real deployment runs
    about one per core (Swift's own default when the setting is absent). `ratelimit`, when
    given, puts Swift's ratelimit middleware in the proxy with these settings (for
    example ``{"container_ratelimit_0": "5", "max_sleep_time_seconds": "0.5",
    "rate_buffer_seconds": "0"}``: object writes beyond 5 per second and container wait up
    to half a second, then get "498 Rate Limited"). Swift limits only containers that
    hold objects, by the count in its cached container info; the proxy then keeps that
    info for 1 s instead of 60.
    """

    directory: Path
    python: str = field(default_factory=lambda: sys.executable)
    workers: int = 0
    ratelimit: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    _processes: dict[str, ServerProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()

    # -- what clients need -------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://{HOST}:{self.ports['proxy']}"

    @property
    def auth_url(self) -> str:
        """The tempauth (Swift v1) auth URL."""
        return f"{self.proxy_url}/auth/v1.0"

    @property
    def user(self) -> str:
        return f"{ACCOUNT}:{USER}"

    @property
    def key(self) -> str:
        return KEY

    @property
    def storage_url(self) -> str:
        return f"{self.proxy_url}/v1/AUTH_{ACCOUNT}"

    def environment(self) -> dict[str, str]:
        """The ST_* variables python-swiftclient and the publisher read."""
        return {"ST_AUTH": self.auth_url, "ST_USER": self.user, "ST_KEY": self.key}

    def connection(self):
        """A new python-swiftclient Connection to this server (no retries)."""
        from swiftclient.client import Connection

        return Connection(self.auth_url, self.user, self.key, retries=0)

    def credentials_text(self) -> str:
        """A `swift-credentials.cfg` (Swift v1 form) for this server."""
        return (
            "[AUTHORIZATION]\n"
            f"osAuthUrl = {self.auth_url}\n"
            f"username = {self.user}\n"
            f"password = {self.key}\n"
        )

    def write_credentials(self, path: Path | str) -> Path:
        """Write a `swift-credentials.cfg` (Swift v1 form) for this server and return its path."""
        path = Path(path)
        path.write_text(self.credentials_text())
        path.chmod(0o600)
        return path

    # -- life cycle --------------------------------------------------------------------
    def __enter__(self) -> SwiftAIO:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, timeout: float = 30.0) -> None:
        """Write configs and rings, start memcached and the servers, wait until all answer."""
        try:
            self._prepare()
            for process in self._processes.values():
                process.start()
            self._wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process this object started (proxy first)."""
        for name in reversed(list(self._processes)):
            self._processes[name].stop()

    def restart(self, name: str = "proxy", *, timeout: float = 30.0) -> None:
        """Stop and start one server (e.g. "proxy", "object") and wait until it answers."""
        process = self._processes[name]
        process.stop()
        process.start()
        self._wait_one(name, timeout=timeout)

    def stop_server(self, name: str) -> None:
        """Stop one server; `start_server` brings it back."""
        self._processes[name].stop()

    def start_server(self, name: str, *, timeout: float = 30.0) -> None:
        self._processes[name].start()
        self._wait_one(name, timeout=timeout)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user and system) each process has used so far, its workers included."""
        children = _children_by_parent()
        used = {}
        for name, process in self._processes.items():
            if process.popen is None:
                continue
            pids = [process.popen.pid, *children.get(process.popen.pid, [])]
            used[name] = sum(_cpu_seconds(pid) for pid in pids)
        return used

    def pause(self, name: str = "proxy") -> None:
        """Freeze one server (SIGSTOP): connections hang instead of failing."""
        self._processes[name].pause()

    def resume(self, name: str = "proxy") -> None:
        self._processes[name].resume()

    def add_keystone_proxy(
        self,
        *,
        python: str,
        keystone_url: str,
        service_user: str,
        service_password: str,
        service_project: str,
        timeout: float = 30.0,
    ) -> str:
        """Start a second proxy that authenticates with Keystone; return its URL.

        `python` is an interpreter that has both `swift` and `keystonemiddleware`.
        """
        port = self.ports["keystone-proxy"] = free_port()
        auth = (
            "[filter:authtoken]\n"
            "paste.filter_factory = keystonemiddleware.auth_token:filter_factory\n"
            f"www_authenticate_uri = {keystone_url}\n"
            f"auth_url = {keystone_url}\n"
            "auth_type = password\n"
            "project_domain_id = default\nuser_domain_id = default\n"
            f"project_name = {service_project}\n"
            f"username = {service_user}\npassword = {service_password}\n"
            "delay_auth_decision = True\n"
            "[filter:keystoneauth]\nuse = egg:swift#keystoneauth\n"
            "operator_roles = admin, member\n"
        )
        conf = self._proxy_conf(port, "authtoken keystoneauth", auth)
        path = self._etc / "keystone-proxy-server.conf"
        path.write_text(conf)
        process = ServerProcess(
            "keystone-proxy",
            [python, "-m", "swift.proxy.server", str(path), "-v"],
            self._logs / "keystone-proxy.log",
        )
        self._processes["keystone-proxy"] = process
        process.start()
        self._wait_one("keystone-proxy", timeout=timeout)
        return f"http://{HOST}:{port}"

    # -- configuration -----------------------------------------------------------------
    @property
    def _etc(self) -> Path:
        return self.directory / "etc"

    @property
    def _logs(self) -> Path:
        return self.directory / "log"

    def _prepare(self) -> None:
        for sub in ("etc", "log", "run"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        for name in ("memcached", "proxy", *STORAGE_SERVERS):
            self.ports.setdefault(name, free_port())
        (self._etc / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = pman\nswift_hash_path_prefix = pman\n"
            "[storage-policy:0]\nname = one-replica\ndefault = yes\n"
        )
        self._build_rings()
        self._processes["memcached"] = self._memcached_process()
        for name in STORAGE_SERVERS:
            path = self._etc / f"{name}-server.conf"
            path.write_text(self._storage_conf(name))
            self._processes[name] = self._swift_process(name, f"swift.{_module(name)}.server", path)
        tempauth = (
            f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_{ACCOUNT}_{USER} = {KEY} .admin\n"
        )
        path = self._etc / "proxy-server.conf"
        path.write_text(self._proxy_conf(self.ports["proxy"], "tempauth", tempauth))
        self._processes["proxy"] = self._swift_process("proxy", "swift.proxy.server", path)

    def _memcached_process(self) -> ServerProcess:
        argv = [find_memcached(), "-l", HOST, "-p", str(self.ports["memcached"]), "-U", "0"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        return ServerProcess("memcached", argv, self._logs / "memcached.log")

    def _swift_process(self, name: str, module: str, conf: Path) -> ServerProcess:
        argv = [self.python, "-m", module, str(conf), "-v"]
        return ServerProcess(name, argv, self._logs / f"{name}.log")

    def _build_rings(self) -> None:
        # Built in a child interpreter: importing swift pulls in eventlet, which the caller
        # (often a test runner that forks) should not carry.
        ports = {name: self.ports[name] for name in STORAGE_SERVERS}
        script = (
            "import sys, json\n"
            "from swift.common.ring import RingBuilder\n"
            "etc, host, ports = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n"
            "for name, port in ports.items():\n"
            "    b = RingBuilder(8, 1, 1)\n"
            "    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': host, 'port': port,\n"
            "               'device': 'd0', 'weight': 100})\n"
            "    b.rebalance()\n"
            "    b.get_ring().save(f'{etc}/{name}.ring.gz')\n"
        )
        result = subprocess.run(
            [self.python, "-c", script, str(self._etc), HOST, json.dumps(ports)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SwiftStartError(f"building the rings failed: {result.stderr.strip()}")
        (self.directory / "srv" / "d0").mkdir(parents=True, exist_ok=True)

    def _defaults(self, port: int) -> str:
        return (
            "[DEFAULT]\n"
            f"bind_ip = {HOST}\nbind_port = {port}\nworkers = {self.workers}\n"
            f"user = {getpass.getuser()}\nswift_dir = {self._etc}\n"
            f"devices = {self.directory / 'srv'}\nmount_check = false\n"
            "disable_fallocate = true\nlog_level = INFO\n"
        )

    def _storage_conf(self, name: str) -> str:
        return (
            self._defaults(self.ports[name])
            + f"[pipeline:main]\npipeline = healthcheck {name}-server\n"
            + f"[app:{name}-server]\nuse = egg:swift#{name}\n"
            + "[filter:healthcheck]\nuse = egg:swift#healthcheck\n"
        )

    def _proxy_conf(self, port: int, auth: str, auth_sections: str) -> str:
        filters = [
            "catch_errors",
            "gatekeeper",
            "healthcheck",
            "proxy-logging",
            "listing_formats",
            "bulk",
            "tempurl",
            "formpost",
            "copy",
            "slo",
            "dlo",
            "versioned_writes",
            "symlink",
        ]
        # Section names use dashes, the entry points underscores.
        sections = "".join(
            f"[filter:{f}]\nuse = egg:swift#{f.replace('-', '_')}\n" for f in filters
        )
        pipeline = PIPELINE.format(auth=auth)
        if self.ratelimit:
            # Where upstream's sample puts it: after tempurl, before the auth middleware.
            pipeline = pipeline.replace(" tempurl ", " tempurl ratelimit ")
            sections += "[filter:ratelimit]\nuse = egg:swift#ratelimit\n" + "".join(
                f"{key} = {value}\n" for key, value in self.ratelimit.items()
            )
        return (
            self._defaults(port)
            + f"[pipeline:main]\npipeline = {pipeline}\n"
            + "[app:proxy-server]\nuse = egg:swift#proxy\n"
            + "account_autocreate = true\nallow_account_management = true\n"
            + ("recheck_container_existence = 1\n" if self.ratelimit else "")
            # One node per ring: never stop talking to it for long after it failed.
            + "error_suppression_interval = 1\n"
            + sections
            + "[filter:cache]\nuse = egg:swift#memcache\n"
            + f"memcache_servers = {HOST}:{self.ports['memcached']}\n"
            + auth_sections
        )

    # -- readiness ---------------------------------------------------------------------
    def _wait_healthy(self, *, timeout: float) -> None:
        self._wait_memcached(timeout=timeout)
        for name in (*STORAGE_SERVERS, "proxy"):
            self._wait_one(name, timeout=timeout)

    def _wait_one(self, name: str, *, timeout: float) -> None:
        process = self._processes[name]
        url = f"http://{HOST}:{self.ports[name]}/healthcheck"
        try:
            wait_for_http(url, timeout=timeout, process=process.popen, error=SwiftStartError)
        except SwiftStartError as exc:
            raise SwiftStartError(f"{name} server: {exc} (log: {process.log})") from exc

    def _wait_memcached(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((HOST, self.ports["memcached"]), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise SwiftStartError("memcached did not start") from None
                time.sleep(0.02)


def _proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _proc_stat(entry.name) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _cpu_seconds(pid: int) -> float:
    fields = _proc_stat(pid)
    if not fields:
        return 0.0
    # utime, stime, and the same for children already waited for (fields 14-17 of stat).
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _module(name: str) -> str:
    return "obj" if name == "object" else name


def main(argv: Sequence[str] | None = None) -> int:
    """`localcluster swift --dir DIR`: serve a Swift all-in-one until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="localcluster swift",
        description="Run an OpenStack Swift all-in-one on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="where configs and data go")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes per server; 0 serves from one process per server (default 0)",
    )
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers must be 0 or more")
    swift = SwiftAIO(args.dir, workers=args.workers)
    # SIGINT too: a shell without job control starts background commands with it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    try:
        swift.start()
        env = swift.environment()
        print("export " + " ".join(f"{k}={v}" for k, v in env.items()), flush=True)
        print(f"swift: serving until interrupted; logs in {swift.directory / 'log'}", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    except SwiftStartError as exc:
        print(f"localcluster swift: {exc}", file=sys.stderr)
        return 1
    finally:
        swift.stop()
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
