"""pman's settings: one typed object, read once from the environment at start.

Names follow upstream pman where a setting existed there (``JOB_NAMESPACE``,
``JOB_LOGS_TAIL``, ...), with the same meaning and value formats. Every other
module receives a :class:`Settings`; only entry points call :meth:`Settings.from_env`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import swiftcreds
from pman import __version__
from pman.errors import SettingsError
from swiftcreds import Credentials

# Matched against whole values (re.fullmatch): "$" would also match before a final newline.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_TRUE = {"1", "true", "yes", "y", "on", "t"}
_FALSE = {"0", "false", "no", "n", "off", "f"}

ONE_DAY = 86400
ONE_WEEK = 7 * ONE_DAY

SWIFT, KUBERNETES_PVC, HOST = "swift", "kubernetes_pvc", "host"
SECRET, TEMPURL = "secret", "tempurl"
POD_CREDENTIALS = (SECRET, TEMPURL)
TEMP_URL_MARGIN = 300
"""Seconds a job's temporary URLs stay good beyond its deadline and grace period: for the
clocks of pman and Swift to differ, and a Job to be created a little after it is signed."""
STORAGE_TYPES = (SWIFT, KUBERNETES_PVC, HOST)
VOLUME_STORAGE = (KUBERNETES_PVC, HOST)
# Upstream pman's other values, for a message that says why they do not apply here.
_UPSTREAM_ONLY = {
    "docker_local_volume": "it names a Docker volume, and pman runs its jobs on Kubernetes",
    "nfs": "mount the NFS export as a PersistentVolume and use kubernetes_pvc",
}


@dataclass(frozen=True)
class ContainerUser:
    """``CONTAINER_USER``: the UID and GID job containers run as, each fixed or a range."""

    uid: int | tuple[int, int] | None = None
    gid: int | tuple[int, int] | None = None


@dataclass(frozen=True)
class Settings:
    """Everything pman can be configured with. Defaults suit a development machine."""

    container_env: str = "kubernetes"
    """``CONTAINER_ENV``: reported by ``GET /api/v1/``; ``kubernetes`` or ``openshift``."""

    job_namespace: str = "default"
    """``JOB_NAMESPACE``: where Jobs are created (upstream default)."""

    job_logs_tail: int = 1000
    """``JOB_LOGS_TAIL``: how many last lines of the processor's log a GET returns."""

    job_logs_max_bytes: int = 1 << 20
    """``JOB_LOGS_MAX_BYTES``: the most of those lines a GET returns, in bytes or with a unit
    (``256K``, ``2M``): a processor may print a line of any length, and a status GET every
    few seconds should stay small. A cut is said in the text."""

    remove_jobs: bool = True
    """``REMOVE_JOBS``: when false, DELETE answers 204 but leaves the Job (for debugging)."""

    job_labels: Mapping[str, str] = field(default_factory=dict)
    """``JOB_LABELS``: ``key=value,...`` labels added to every Job and pod."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    """``NODE_SELECTOR``: ``key=value,...``, the pods' ``nodeSelector``."""

    image_pull_secrets: tuple[str, ...] = ()
    """``IMAGE_PULL_SECRETS``: comma-separated Secret names for pulling images."""

    container_user: ContainerUser | None = None
    """``CONTAINER_USER``: ``UID:GID``, either may be a ``low-high`` range picked at random
    per job; unset lets the cluster choose (OpenShift assigns a UID per namespace)."""

    shm_size_mib: int | None = None
    """``SHM_SIZE``: size of the processor's ``/dev/shm`` in MiB; unset keeps the default."""

    ignore_limits: bool = False
    """``IGNORE_LIMITS``: when true, the processor gets no CPU, memory or GPU limits."""

    enable_home_workaround: bool = False
    """``ENABLE_HOME_WORKAROUND``: when true, the processor gets ``HOME=/tmp``, for images
    that write to a home directory an arbitrary UID does not own."""

    publisher_image: str = f"pman-publisher:{__version__}"
    """``PUBLISHER_IMAGE``: image of the stage-in and publish containers."""

    publisher_segment_size: int | None = None
    """``PUBLISHER_SEGMENT_SIZE``: the publish container's ``--segment-size``, in bytes or
    with a unit (``100MiB``): outputs above it go as Static Large Objects in segments this
    big. Unset keeps the publisher's own default (64 MiB)."""

    swift_secret_name: str = "swift-credentials"
    """``SWIFT_SECRET_NAME``: Secret holding ``swift-credentials.cfg``."""

    swift_pod_credentials: str = SECRET
    """``SWIFT_POD_CREDENTIALS``: what a job pod's stage-in and publish containers reach
    Swift with. ``secret``: the Secret ``SWIFT_SECRET_NAME``, good for the whole account for
    as long as the credential lives. ``tempurl``: no secret at all, only temporary URLs pman
    signs for each job with the account's temp URL key, each good for one method under one
    of the job's prefixes until its deadline and grace period are over (pman then lists
    each job's input when it is submitted, as for the pfcon API). ``secret`` stays the
    default: it is what pman did before the setting existed."""

    pman_service_url: str | None = None
    """``PMAN_SERVICE_URL``: where job pods reach pman (its Service, e.g.
    ``http://pman:5010/``), with ``SWIFT_POD_CREDENTIALS=tempurl``: a temporary URL cannot
    write the manifest of a Static Large Object, so the publisher asks pman to, and pman
    checks the job's own URLs first. Unset: files above the publisher's segment size are
    uploaded as single objects (at most Swift's largest, 5 GiB by default)."""

    publisher_service_account: str = "pman-publisher"
    """``PUBLISHER_SERVICE_ACCOUNT``: service account whose token the publish container
    uses to watch its own pod."""

    job_deadline_seconds: int = ONE_WEEK
    """``JOB_DEADLINE_SECONDS``: ``activeDeadlineSeconds``; upstream's week-long default."""

    job_grace_seconds: int = 30
    """``JOB_GRACE_SECONDS``: ``terminationGracePeriodSeconds`` of each job pod. When a job
    is ended (its deadline, a delete), the publish sidecar has this long to publish what the
    processor left."""

    job_ttl_seconds: int = ONE_DAY
    """``JOB_TTL_SECONDS``: ``ttlSecondsAfterFinished``; clients expect a finished job to
    stay queryable for at least a day."""

    api_token: str | None = None
    """``PMAN_API_TOKEN``: when set, API requests need ``Authorization: Bearer <token>``."""

    max_body_bytes: int = 1024 * 1024
    """``PMAN_MAX_BODY_SIZE``: largest request body accepted, in bytes (larger gets 413);
    a real job request is well under a kilobyte."""

    status_cache: bool = True
    """``PMAN_STATUS_CACHE``: serve status from watches on Jobs and pods instead of asking
    Kubernetes on every GET."""

    swift_credentials: Credentials | None = None
    """Swift account of the data routes: ``SWIFT_CREDENTIALS_FILE`` (a swift-credentials.cfg,
    the same file the publisher reads), else ST_AUTH/ST_USER/ST_KEY, else the OS_* variables;
    none of them leaves the data routes answering 503."""

    swift_credentials_file: Path | None = None
    """The file ``swift_credentials`` came from (``SWIFT_CREDENTIALS_FILE``), if any: read
    again when it changes, so that a rotated Secret reaches pman without a restart."""

    max_data_bytes: int = 5 << 30
    """``PMAN_MAX_DATA_SIZE``: largest upload to the data routes (the body, and its files once
    unpacked), in bytes or with a unit (``500M``, ``2GiB``); Swift's own largest object is
    5 GiB. Up to this much is kept on pman's temporary disk while an upload is checked."""

    upload_wait_seconds: int = 20
    """``PMAN_UPLOAD_WAIT``: how long an upload waits for its files to be in Swift before it
    is answered 202 and finished in the background (its status then at
    ``GET /api/v1/_data/<jid>/input/``). Clients wait 100 s for an answer, routers often 30."""

    swift_timeout: int = 5
    """``PMAN_SWIFT_TIMEOUT``: seconds the data routes wait for Swift to accept a connection
    or to send the next bytes of an answer, its first byte included. A healthy Swift answers
    in milliseconds; one that has hung is a 503 after this, tried three times (about 16 s
    with the default), well inside the 100 s clients wait."""

    kubeconfig: str | None = None
    """``KUBECONFIG``: kubeconfig file used when pman does not run inside a cluster."""

    storage_type: str = SWIFT
    """``STORAGE_TYPE`` (upstream's name and values): where jobs find their data. ``swift``:
    each pod stages its input in from Swift and publishes its output back. ``kubernetes_pvc``
    and ``host``: the client keeps the data in a shared directory (its storeBase, the PVC
    ``VOLUME_NAME`` or the host directory ``STOREBASE``), and the processor gets
    ``<input_dir>`` of it read-only at /share/incoming and ``<output_dir>`` read-write at
    /share/outgoing, with no stage-in or publish container. Swift is the default: it is what
    pman did before the setting existed."""

    volume_name: str | None = None
    """``VOLUME_NAME``: the PersistentVolumeClaim holding the storeBase, with
    ``STORAGE_TYPE=kubernetes_pvc`` only; a ReadWriteMany claim the client mounts too."""

    storebase: Path | None = None
    """``STOREBASE``: the storeBase's absolute path on the nodes, with ``STORAGE_TYPE=host``
    only (a one-node cluster, or a directory every node has at the same path)."""

    server_version: str = __version__
    """Reported by ``GET /api/v1/``; not configurable."""

    # -- the pfcon API (pman as a ChRIS compute resource, :mod:`pman.api.pfcon`) --------

    pfcon_user: str | None = None
    """``PFCON_USER``: the user CUBE logs in as (pfcon's name). The pfcon API is served only
    when it and ``PFCON_PASSWORD`` are set."""

    pfcon_password: str | None = field(default=None, repr=False)
    """``PFCON_PASSWORD``: that user's password (pfcon's name)."""

    pfcon_secret_key: str | None = field(default=None, repr=False)
    """``PFCON_SECRET_KEY``: the key the pfcon API's tokens are signed with (HS256). Every
    replica must have the same one, so that a token one replica made is good on all; at
    least 32 characters. (pfcon calls it ``SECRET_KEY``, a name too general beside pman's
    other secrets.)"""

    pfcon_base: str = "/pfcon/api/v1/"
    """``PFCON_BASE_PATH``: where the pfcon API's routes are (``<base>pluginjobs/``...); CUBE
    is given ``http://<pman>:5010<base>``. Never under ``/api/v1/``, where every name is a
    jid."""

    swift_container_name: str = "users"
    """``SWIFT_CONTAINER_NAME``: CUBE's Swift container (pfcon's name and CUBE's default),
    where the pfcon jobs' ``input_dirs`` and ``output_dir`` are."""

    pfcon_bookkeeping_container: str | None = None
    """``PFCON_BOOKKEEPING_CONTAINER``: where pman keeps what CUBE must never see (the
    stage-in plans and the publisher's manifests); default
    ``<SWIFT_CONTAINER_NAME>_pman``."""

    @property
    def pfcon_enabled(self) -> bool:
        """Whether the pfcon API is served: its user and password are set, and pman has Swift
        credentials or needs them for its jobs anyway (Swift storage). A pman on a shared
        volume for pfcon 5.x, with no Swift credentials, leaves it off (and says so at start)
        rather than refuse to start over a user and password its template generated."""
        configured = bool(self.pfcon_user and self.pfcon_password)
        return configured and not (self.volume_storage and self.swift_credentials is None)

    @property
    def bookkeeping_container(self) -> str:
        """The pfcon API's bookkeeping container (``PFCON_BOOKKEEPING_CONTAINER``)."""
        return self.pfcon_bookkeeping_container or f"{self.swift_container_name}_pman"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from environment variables, reporting every bad one at once."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for variable, (name, parse) in _VARIABLES.items():
            raw = environ.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as error:
                problems.append(f"{variable}={raw!r}: {error}")
        storage_type = values.get("storage_type", SWIFT)
        if "storage_type" in values or not (environ.get("STORAGE_TYPE") or "").strip():
            # (A STORAGE_TYPE that did not parse is reported already, and alone.)
            problems += storage_problems(
                storage_type, values.get("volume_name"), values.get("storebase")
            )
        if storage_type == SWIFT:
            problems += _read_swift_credentials(environ, values)
        elif values.get("pfcon_user") and values.get("pfcon_password"):
            # The pfcon API's jobs always use Swift: read them if the deployment has them.
            problems += _read_swift_credentials(environ, values, missing_ok=True)
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))
        settings = cls(**values)
        check_pfcon(settings)
        check_pod_credentials(settings)
        return settings

    def __post_init__(self) -> None:
        problems = storage_problems(self.storage_type, self.volume_name, self.storebase)
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))

    @property
    def tempurl_pods(self) -> bool:
        """Whether job pods hold temporary URLs instead of the Swift Secret."""
        return self.swift_pod_credentials == TEMPURL

    @property
    def temp_url_seconds(self) -> int:
        """How long a job's temporary URLs are good for, from its submission: its deadline,
        its pods' grace period and a margin (:data:`TEMP_URL_MARGIN`)."""
        return self.job_deadline_seconds + self.job_grace_seconds + TEMP_URL_MARGIN

    @property
    def volume_storage(self) -> bool:
        """Whether jobs mount a storeBase (``kubernetes_pvc``, ``host``) instead of Swift."""
        return self.storage_type in VOLUME_STORAGE

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (for tests and tools)."""
        return dataclasses.replace(self, **changes)


def _read_swift_credentials(
    environ: Mapping[str, str], values: dict[str, Any], *, missing_ok: bool = False
) -> list[str]:
    """pman's own Swift account, for the data routes and the pfcon API (in the volume modes
    the data routes answer 409, so it is read only for the pfcon API, and a file that is
    not there, an optional Secret left out, means none)."""
    variable = "SWIFT_CREDENTIALS_FILE"
    raw = (environ.get(variable) or "").strip()
    if raw and missing_ok and not Path(raw).exists():
        return []
    if raw:
        try:
            values["swift_credentials"] = _parse_credentials_file(raw)
        except ValueError as error:
            return [f"{variable}={raw!r}: {error}"]
        values["swift_credentials_file"] = Path(raw)
        return []
    try:
        values["swift_credentials"] = swiftcreds.from_environment(environ)
    except swiftcreds.CredentialsError as error:
        return [f"Swift credentials: {error}"]
    return []


def storage_problems(
    storage_type: str, volume_name: str | None, storebase: Path | None
) -> list[str]:
    """What is wrong with this combination of ``STORAGE_TYPE``, ``VOLUME_NAME`` and
    ``STOREBASE``, one sentence each naming the variables; empty when it fits.

    A setting of another mode is refused rather than ignored: ``VOLUME_NAME`` given while
    ``STORAGE_TYPE`` was forgotten would otherwise run every job against Swift."""
    if storage_type not in STORAGE_TYPES:
        return [f"STORAGE_TYPE={storage_type!r}: expected one of " + ", ".join(STORAGE_TYPES)]
    problems = []
    if storage_type == KUBERNETES_PVC and not volume_name:
        problems.append(
            "STORAGE_TYPE=kubernetes_pvc needs VOLUME_NAME, the PersistentVolumeClaim "
            "holding the storeBase"
        )
    if storage_type == HOST and storebase is None:
        problems.append("STORAGE_TYPE=host needs STOREBASE, the storeBase's path on the nodes")
    if volume_name and storage_type != KUBERNETES_PVC:
        problems.append(
            f"VOLUME_NAME is set but STORAGE_TYPE={storage_type}: VOLUME_NAME is used with "
            "STORAGE_TYPE=kubernetes_pvc only (set that, or unset VOLUME_NAME)"
        )
    if storebase is not None and storage_type != HOST:
        problems.append(
            f"STOREBASE is set but STORAGE_TYPE={storage_type}: STOREBASE is used with "
            "STORAGE_TYPE=host only (set that, or unset STOREBASE)"
        )
    return problems


def parse_bool(raw: str) -> bool:
    """Upstream's boolean spellings: yes/no, true/false, 1/0, on/off."""
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected yes or no (also true/false, 1/0, on/off)")


def _parse_int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def parse_size(raw: str) -> int:
    """A positive number of bytes, or with a binary unit: ``1048576``, ``500M``, ``2GiB``."""
    match = _SIZE.fullmatch(raw)
    if not match or int(match.group(1)) == 0:
        raise ValueError("expected a size in bytes, or with a unit such as 500M or 2GiB")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _parse_credentials_file(raw: str) -> Credentials:
    return swiftcreds.load_file(Path(raw))


def _parse_storage_type(raw: str) -> str:
    if raw in _UPSTREAM_ONLY:
        raise ValueError(
            f"{raw} is not supported: {_UPSTREAM_ONLY[raw]}; expected one of "
            + ", ".join(STORAGE_TYPES)
        )
    return _parse_choice(*STORAGE_TYPES)(raw)


def _parse_storebase(raw: str) -> Path:
    path = Path(raw)
    if not path.is_absolute():
        raise ValueError("must be an absolute path (the storeBase's path on the nodes)")
    if ".." in path.parts:
        raise ValueError("must not contain '..'")
    return Path(os.path.normpath(path))


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return raw

    return parse


def _parse_name(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise ValueError(f"not a valid {what}")
        return raw

    return parse


def parse_labels(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (upstream's format) into a dict of valid labels."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not key=value")
        if not _valid_label_key(key):
            raise ValueError(f"{key!r} is not a valid label key")
        if not _LABEL_VALUE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid label value")
        labels[key] = value
    return labels


def _valid_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def _parse_secret_names(raw: str) -> tuple[str, ...]:
    names = tuple(filter(None, (part.strip() for part in raw.split(","))))
    for name in names:
        if not _DNS_SUBDOMAIN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid Secret name")
    return names


def parse_container_user(raw: str) -> ContainerUser:
    """``UID:GID`` where each side is empty, a number, or a ``low-high`` range."""
    uid, sep, gid = raw.partition(":")
    if not sep or ":" in gid:
        raise ValueError("expected UID:GID, e.g. 1001:0 or 1000000000-1000009999:0")
    return ContainerUser(uid=_parse_id(uid), gid=_parse_id(gid))


def _parse_id(raw: str) -> int | tuple[int, int] | None:
    if not raw:
        return None
    low, sep, high = raw.partition("-")
    try:
        if sep:
            bounds = (int(low), int(high))
            if not 0 <= bounds[0] <= bounds[1]:
                raise ValueError
            return bounds
        value = int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a non-negative number or low-high range") from None
    if value < 0:
        raise ValueError(f"{raw!r} is negative")
    return value


MIN_SECRET_KEY = 32
"""Characters of ``PFCON_SECRET_KEY`` at least: an HS256 key shorter than its 32-byte hash
is guessed more easily than the hash is broken."""
_API_V1 = "/api/v1/"


def check_pfcon(settings: Settings) -> None:
    """Raise :class:`SettingsError` naming every problem of the pfcon API's settings."""
    if problems := pfcon_problems(settings):
        raise SettingsError("invalid settings: " + "; ".join(problems))


def pfcon_problems(settings: Settings) -> list[str]:
    """What keeps the pfcon API's settings from working together (none when it is off)."""
    if bool(settings.pfcon_user) != bool(settings.pfcon_password):
        return ["PFCON_USER and PFCON_PASSWORD go together: set both to serve the pfcon API"]
    if not settings.pfcon_enabled:
        return []
    problems = []
    key = settings.pfcon_secret_key or ""
    if len(key) < MIN_SECRET_KEY:
        problems.append(
            f"the pfcon API needs PFCON_SECRET_KEY, at least {MIN_SECRET_KEY} characters, the "
            "key its tokens are signed with (the same on every pman replica)"
        )
    if settings.swift_credentials is None:
        problems.append(
            "the pfcon API needs pman's Swift credentials (SWIFT_CREDENTIALS_FILE, or "
            "ST_AUTH/ST_USER/ST_KEY, or the OS_* variables): pman reads each job's inputs in "
            "CUBE's container when it is submitted (or leave PFCON_USER and PFCON_PASSWORD "
            "empty to turn the pfcon API off)"
        )
    if settings.bookkeeping_container == settings.swift_container_name:
        problems.append(
            "PFCON_BOOKKEEPING_CONTAINER must not be CUBE's container (SWIFT_CONTAINER_NAME): "
            "CUBE must never see pman's bookkeeping"
        )
    return problems


def check_pod_credentials(settings: Settings) -> None:
    """Raise :class:`SettingsError` when ``SWIFT_POD_CREDENTIALS=tempurl`` cannot work (in
    the volume modes, a pman with no Swift credentials runs no job that uses Swift)."""
    if settings.tempurl_pods and settings.swift_credentials is None and not settings.volume_storage:
        raise SettingsError(
            "invalid settings: SWIFT_POD_CREDENTIALS=tempurl needs pman's own Swift "
            "credentials (SWIFT_CREDENTIALS_FILE, or ST_AUTH/ST_USER/ST_KEY, or the OS_* "
            "variables): pman signs the job pods' temporary URLs, and lists their inputs"
        )


def parse_service_url(raw: str) -> str:
    """An http(s) URL with a host, ending in ``/``: where job pods reach pman."""
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query:
        raise ValueError("expected an http(s) URL such as http://pman:5010/")
    return raw if raw.endswith("/") else raw + "/"


def parse_base_path(raw: str) -> str:
    """A URL path such as ``/pfcon/api/v1/``: absolute, ending in ``/``, plain segments, and
    not ``/api/v1/`` or under it (every name there is a jid)."""
    segments = raw.strip("/").split("/")
    if not raw.startswith("/") or not raw.endswith("/") or raw == "/":
        raise ValueError("expected a path that starts and ends with '/', e.g. /pfcon/api/v1/")
    if any(not _PATH_SEGMENT.match(segment) for segment in segments):
        raise ValueError("each segment must be letters, digits, '-', '_' or '.', not . or ..")
    if raw.startswith(_API_V1):
        raise ValueError("must not be /api/v1/ or under it: pman's own routes are there")
    return raw


def _parse_container_name(raw: str) -> str:
    if "/" in raw or len(raw) > 256:
        raise ValueError("not a Swift container name (no '/', at most 256 characters)")
    return raw


_PATH_SEGMENT = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]+$")

_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "CONTAINER_ENV": ("container_env", _parse_choice("kubernetes", "openshift")),
    "JOB_NAMESPACE": ("job_namespace", _parse_name(_DNS_LABEL, "namespace name")),
    "JOB_LOGS_TAIL": ("job_logs_tail", _parse_int(1)),
    "JOB_LOGS_MAX_BYTES": ("job_logs_max_bytes", parse_size),
    "REMOVE_JOBS": ("remove_jobs", parse_bool),
    "JOB_LABELS": ("job_labels", parse_labels),
    "NODE_SELECTOR": ("node_selector", parse_labels),
    "IMAGE_PULL_SECRETS": ("image_pull_secrets", _parse_secret_names),
    "CONTAINER_USER": ("container_user", parse_container_user),
    "SHM_SIZE": ("shm_size_mib", _parse_int(1)),
    "IGNORE_LIMITS": ("ignore_limits", parse_bool),
    "ENABLE_HOME_WORKAROUND": ("enable_home_workaround", parse_bool),
    "PUBLISHER_IMAGE": ("publisher_image", str),
    "SWIFT_SECRET_NAME": ("swift_secret_name", _parse_name(_DNS_SUBDOMAIN, "Secret name")),
    "SWIFT_POD_CREDENTIALS": ("swift_pod_credentials", _parse_choice(*POD_CREDENTIALS)),
    "PUBLISHER_SEGMENT_SIZE": ("publisher_segment_size", parse_size),
    "PMAN_SERVICE_URL": ("pman_service_url", parse_service_url),
    "PUBLISHER_SERVICE_ACCOUNT": (
        "publisher_service_account",
        _parse_name(_DNS_SUBDOMAIN, "service account name"),
    ),
    "JOB_DEADLINE_SECONDS": ("job_deadline_seconds", _parse_int(1)),
    "JOB_GRACE_SECONDS": ("job_grace_seconds", _parse_int(0)),
    "JOB_TTL_SECONDS": ("job_ttl_seconds", _parse_int(0)),
    "PMAN_API_TOKEN": ("api_token", str),
    "PMAN_MAX_BODY_SIZE": ("max_body_bytes", _parse_int(1024)),
    "PMAN_STATUS_CACHE": ("status_cache", parse_bool),
    "PMAN_MAX_DATA_SIZE": ("max_data_bytes", parse_size),
    "PMAN_UPLOAD_WAIT": ("upload_wait_seconds", _parse_int(0)),
    "PMAN_SWIFT_TIMEOUT": ("swift_timeout", _parse_int(1)),
    "KUBECONFIG": ("kubeconfig", str),
    "STORAGE_TYPE": ("storage_type", _parse_storage_type),
    "VOLUME_NAME": ("volume_name", _parse_name(_DNS_SUBDOMAIN, "PersistentVolumeClaim name")),
    "STOREBASE": ("storebase", _parse_storebase),
    # The pfcon API.
    "PFCON_USER": ("pfcon_user", str),
    "PFCON_PASSWORD": ("pfcon_password", str),
    "PFCON_SECRET_KEY": ("pfcon_secret_key", str),
    "PFCON_BASE_PATH": ("pfcon_base", parse_base_path),
    "SWIFT_CONTAINER_NAME": ("swift_container_name", _parse_container_name),
    "PFCON_BOOKKEEPING_CONTAINER": ("pfcon_bookkeeping_container", _parse_container_name),
}
