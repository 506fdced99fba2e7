"""Build the Kubernetes Job for a job request: pure functions, plain dicts, no I/O.

With Swift storage the pod follows the contract the publisher relies on: an init
container ``stage-in`` downloads the input into the ``share`` emptyDir, the
``processor`` runs the request's image and command, and the ``publish`` sidecar waits
for the processor to end and uploads ``/share/outgoing``. Only stage-in and publish see
the Swift credentials; only publish gets a (short-lived) Kubernetes token.

With ``SWIFT_POD_CREDENTIALS=tempurl`` the pod holds no Swift secret at all: no Secret
volume, and stage-in and publish get temporary URLs (:class:`SignedAccess`, made by
:mod:`pman.tempurls`) on their command lines; the stage-in follows a stage-in plan, as for
the pfcon API. The processor sees none of them either way.

In the volume storage modes (``kubernetes_pvc``, ``host``) the client keeps the data in
its storeBase, mounted as upstream pman mounts it: the processor gets the subPath
``input_dir`` read-only at ``/share/incoming`` and ``output_dir`` read-write at
``/share/outgoing``. A job that needs its input first runs ``check-input``, which fails
the job when the input directory does not exist (the kubelet would otherwise create it
empty). No Swift credentials, no token, no publisher: the job ends with its processor.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pman.models import JobRequest
from pman.pod import (
    CHECK_INPUT,
    CREDENTIALS_VOLUME,
    INCOMING,
    INPUT_ANNOTATION,
    OUTGOING,
    OUTPUT_ANNOTATION,
    PROCESSOR,
    PUBLISH,
    SHARE,
    SHARE_VOLUME,
    SHM_VOLUME,
    STAGE_IN,
    STOREBASE_DIR,
    STOREBASE_VOLUME,
    TOKEN_VOLUME,
)
from pman.settings import KUBERNETES_PVC, ContainerUser, Settings

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "pman"
JID_LABEL = "pman.chrisproject.org/jid"
# Which submission of a jid a Job and its pods belong to: a jid may be submitted again after
# its DELETE, while the earlier run's pods are still ending.
RUN_LABEL = "pman.chrisproject.org/run"
AUID_LABEL = "pman.chrisproject.org/auid"
AUID_ANNOTATION = "pman.chrisproject.org/auid"
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"

# Paths inside the job's containers, not temporary files of pman's own.
SHM_DIR = "/dev/shm"  # noqa: S108
HOME_WORKAROUND = "/tmp"  # noqa: S108
CREDENTIALS_DIR = "/etc/swift"
CREDENTIALS_FILE = f"{CREDENTIALS_DIR}/swift-credentials.cfg"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# A short-lived token: the publisher only needs it until its job's pod ends.
TOKEN_SECONDS = 3600
# Small requests so the sidecars schedule in quota-limited namespaces; no limits,
# so a large upload is never OOM-killed after the processor has done its work.
SIDECAR_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}}

Uid = int | None


@dataclass(frozen=True)
class SignedAccess:
    """What a job pod reaches Swift with instead of the Secret (``SWIFT_POD_CREDENTIALS=
    tempurl``): temporary URLs, which its ``kubectl get pod -o yaml`` shows until they
    expire."""

    plan: str
    """GET URL of the stage-in plan (which holds the URLs of the objects to stage)."""
    destination: str
    """PUT URL of the output prefix."""
    temp_urls: tuple[tuple[str, str], ...] = ()
    """(method, URL) the publisher may use besides: replacing an earlier output, the
    segments of large files, the manifest when it goes elsewhere."""
    manifest: str | None = None
    """PUT URL of the manifest, when it does not go under the output (pfcon jobs)."""
    large_objects: str | None = None
    """pman's large-object service (a temporary URL cannot write a Static Large Object)."""

    def publish_options(self) -> list[str]:
        """The publisher's options for these URLs (but the destination)."""
        options = []
        if self.manifest is not None:
            options += ["--manifest-to", self.manifest]
        for method, url in self.temp_urls:
            options += ["--temp-url", f"{method}={url}"]
        if self.large_objects is not None:
            options += ["--large-object-service", self.large_objects]
        return options


def literal(word: str) -> str:
    """``word`` escaped for a container's command or an env value, where Kubernetes expands
    ``$(VAR)`` and reads ``$$`` as ``$``: with every ``$`` doubled, the process gets exactly
    ``word``."""
    return word.replace("$", "$$")


def as_given(word: str) -> str:
    """The word :func:`literal` escaped, as it was given (and as the process gets it)."""
    return word.replace("$$", "$")


def jid_selector(jid: str) -> str:
    """Label selector of the pods (and Job) of one job."""
    return f"{JID_LABEL}={jid}"


def new_run() -> str:
    """A run id: what tells one submission of a jid from the next (labels, the manifest)."""
    return secrets.token_hex(6)


def run_of(obj: Manifest) -> str | None:
    """The run a Job or pod belongs to; None for one created without a run id."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL)


def pick_user(
    user: ContainerUser | None, *, choose: Callable[[int, int], int] = random.randint
) -> tuple[Uid, Uid]:
    """Resolve ``CONTAINER_USER`` ranges to the UID and GID of one job."""
    if user is None:
        return None, None
    return _pick(user.uid, choose), _pick(user.gid, choose)


def _pick(value: int | tuple[int, int] | None, choose: Callable[[int, int], int]) -> Uid:
    return choose(*value) if isinstance(value, tuple) else value


def build_job(
    request: JobRequest,
    settings: Settings,
    *,
    run: str,
    uid: Uid = None,
    gid: Uid = None,
    access: SignedAccess | None = None,
    parts: Manifest | None = None,
) -> Manifest:
    """The batch/v1 Job that runs ``request`` as run ``run`` (see :func:`new_run`); its pod
    holds the temporary URLs ``access`` instead of the Swift Secret when given, and the
    containers and volumes ``parts`` instead of the storage mode's when given."""
    metadata = {"labels": labels(request, settings, run), "annotations": annotations(request)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": request.jid, **metadata},
        "spec": {
            "parallelism": request.number_of_workers,
            "completions": request.number_of_workers,
            # The processor is never re-run: publish retries happen inside the publisher.
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.job_deadline_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {
                "metadata": metadata,
                "spec": pod_spec(
                    request, settings, run=run, uid=uid, gid=gid, access=access, parts=parts
                ),
            },
        },
    }


def labels(request: JobRequest, settings: Settings, run: str) -> dict[str, str]:
    """Operator labels first, so they can never hide pman's own."""
    result = {
        **settings.job_labels,
        MANAGED_BY_LABEL: MANAGED_BY,
        JID_LABEL: request.jid,
        RUN_LABEL: run,
    }
    if _is_label_value(request.auid):
        result[AUID_LABEL] = request.auid
    return result


def _is_label_value(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and value.isascii()
        and value[0].isalnum()
        and value[-1].isalnum()
        and all(c.isalnum() or c in "-_." for c in value)
    )


def annotations(request: JobRequest) -> dict[str, str]:
    """What a label cannot hold: the owner verbatim and where the data lives."""
    return {
        AUID_ANNOTATION: request.auid,
        INPUT_ANNOTATION: str(request.input_dir),
        OUTPUT_ANNOTATION: str(request.output_dir),
    }


def pod_spec(
    request: JobRequest,
    settings: Settings,
    *,
    run: str,
    uid: Uid,
    gid: Uid,
    access: SignedAccess | None = None,
    parts: Manifest | None = None,
) -> Manifest:
    """The pod: the containers and volumes of the storage mode (or ``parts``, which always
    reach Swift), and what every pod has."""
    shared_volume = parts is None and settings.volume_storage
    if parts is None:
        parts = (
            volume_parts(request, settings)
            if settings.volume_storage
            else swift_parts(request, settings, run=run, access=access)
        )
    spec: Manifest = {
        "restartPolicy": "Never",
        # Also the publish sidecar's time to publish when the pod is ended (its deadline).
        "terminationGracePeriodSeconds": settings.job_grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(uid=uid, gid=gid, shared_volume=shared_volume),
        **parts,
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    return spec


def swift_parts(
    request: JobRequest, settings: Settings, *, run: str, access: SignedAccess | None = None
) -> Manifest:
    """Stage-in, then the processor beside the publish sidecar, sharing an emptyDir; the
    manifest names run ``run``. With ``access``, no Secret: the stage-in follows the plan
    and both reach Swift through the temporary URLs."""
    if access is not None:
        image = settings.publisher_image
        return {
            "serviceAccountName": settings.publisher_service_account,
            "initContainers": [plan_stage_in_container(image, access.plan, credentials=False)],
            "containers": [
                processor_container(request, settings),
                publish_container(
                    image,
                    access.destination,
                    options=["--run-id", run, *segments(settings), *access.publish_options()],
                    credentials=False,
                ),
            ],
            "volumes": volumes(settings, credentials=False),
        }
    return {
        "serviceAccountName": settings.publisher_service_account,
        "initContainers": [
            stage_in_container(
                settings.publisher_image,
                f"swift://{request.input_dir}",
                # An fs plugin's input may legitimately be empty.
                allow_empty=request.type == "fs",
            )
        ],
        "containers": [
            processor_container(request, settings),
            publish_container(
                settings.publisher_image,
                f"swift://{request.output_dir}",
                options=["--run-id", run, *segments(settings)],
            ),
        ],
        "volumes": volumes(settings),
    }


def volume_parts(request: JobRequest, settings: Settings) -> Manifest:
    """The processor alone on two subPaths of the storeBase, after check-input when the job
    needs its input (as with Swift, an fs plugin's input may be missing). No service
    account is named: the pod holds no token, so the namespace's default one serves."""
    mounts = storebase_mounts(str(request.input_dir), str(request.output_dir))
    parts: Manifest = {}
    if request.type != "fs":
        parts["initContainers"] = [
            check_input_container(settings.publisher_image, str(request.input_dir))
        ]
    parts["containers"] = [processor_container(request, settings, mounts=mounts)]
    parts["volumes"] = [storebase_volume(settings), *shm_volumes(settings)]
    return parts


def pod_security_context(*, uid: Uid, gid: Uid, shared_volume: bool = False) -> Manifest:
    """What OpenShift's restricted policy requires; the UID is the cluster's unless set.

    On a storeBase shared by every job, the kubelet would otherwise change the group of
    the whole volume at each pod's start: only when its top directory does not match. The
    policy is set without a GID too, for the ``fsGroup`` OpenShift's restricted policy gives
    a pod that names none."""
    context: Manifest = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if uid is not None:
        context["runAsUser"] = uid
    if gid is not None:
        context["runAsGroup"] = gid
        context["fsGroup"] = gid
    if shared_volume:
        context["fsGroupChangePolicy"] = "OnRootMismatch"
    return context


def container_security_context() -> Manifest:
    """No privilege escalation and no capabilities, in every container."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def stage_in_container(
    image: str, source: str, *, allow_empty: bool = False, credentials: bool = True
) -> Manifest:
    """``publisher download`` of ``source`` (``swift://container/prefix``) into
    ``/share/incoming``, with the Secret's credentials (or, not ``credentials``, the
    temporary URLs on its command line, and no Secret mounted).

    It also creates ``/share/outgoing``, writable by any UID: processors expect their
    output directory to exist, and nothing else in the pod creates it.
    """
    command = ["publisher", "download"]
    if credentials:
        command += ["--credentials", CREDENTIALS_FILE]
    command += ["--make-dir", OUTGOING]
    if allow_empty:
        command.append("--allow-empty")
    command += [source, INCOMING]
    mounts = [share_mount(), credentials_mount()] if credentials else [share_mount()]
    return {
        "name": STAGE_IN,
        "image": image,
        "command": [literal(word) for word in command],
        "resources": SIDECAR_RESOURCES,
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


def check_input_container(image: str, input_dir: str) -> Manifest:
    """Fails (exit 1) unless ``input_dir`` is a directory of the storeBase, which it sees
    whole and read-only: the kubelet would create a missing subPath for the processor, which
    would then run on an empty input. Runs in the publisher image, which has ``test``."""
    # "$$" is how a command keeps a "$" through Kubernetes' $(VAR) expansion.
    path = literal(f"{STOREBASE_DIR}/{input_dir}")
    return {
        "name": CHECK_INPUT,
        "image": image,
        "command": ["test", "-d", path],
        "resources": SIDECAR_RESOURCES,
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": STOREBASE_VOLUME, "mountPath": STOREBASE_DIR, "readOnly": True}],
    }


def processor_container(
    request: JobRequest, settings: Settings, *, mounts: Sequence[Manifest] | None = None
) -> Manifest:
    """The request's image and command, its resources and environment; its data where
    ``mounts`` say (the shared emptyDir at /share by default)."""
    container: Manifest = {
        "name": PROCESSOR,
        "image": request.image,
        "command": [literal(word) for word in request.command],
        "env": processor_env(request, settings),
        "securityContext": container_security_context(),
        "volumeMounts": list(mounts) if mounts is not None else [share_mount()],
    }
    if not settings.ignore_limits:
        container["resources"] = {"limits": processor_limits(request)}
    if settings.shm_size_mib:
        container["volumeMounts"].append({"name": SHM_VOLUME, "mountPath": SHM_DIR})
    return container


def processor_env(request: JobRequest, settings: Settings) -> list[Manifest]:
    """The request's ``env``, plus ``HOME=/tmp`` when the workaround is on."""
    env = [{"name": name, "value": literal(value)} for name, value in request.env_pairs]
    if settings.enable_home_workaround:
        env.append({"name": "HOME", "value": HOME_WORKAROUND})
    return env


def processor_limits(request: JobRequest) -> dict[str, str]:
    """CPU in millicores, memory in MiB, GPUs as ``nvidia.com/gpu``."""
    limits = {"cpu": f"{request.cpu_limit}m", "memory": f"{request.memory_limit}Mi"}
    if request.gpu_limit:
        limits["nvidia.com/gpu"] = str(request.gpu_limit)
    return limits


def publish_container(
    image: str, destination: str, *, options: Sequence[str] = (), credentials: bool = True
) -> Manifest:
    """``publisher publish``: waits for the processor, then uploads ``/share/outgoing`` to
    ``destination`` (``swift://container/prefix``, or without ``credentials`` a temporary
    URL, and no Secret mounted); ``options`` go before the paths."""
    command = ["publisher", "publish", "--wait-container", PROCESSOR]
    if credentials:
        command += ["--credentials", CREDENTIALS_FILE]
    command += [*options, OUTGOING, destination]
    mounts = [share_mount(), credentials_mount(), token_mount()]
    return {
        "name": PUBLISH,
        "image": image,
        "command": [literal(word) for word in command],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        "resources": SIDECAR_RESOURCES,
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts if credentials else [share_mount(), token_mount()],
    }


def segments(settings: Settings) -> list[str]:
    """The publisher's ``--segment-size``, when ``PUBLISHER_SEGMENT_SIZE`` sets one."""
    size = settings.publisher_segment_size
    return [] if size is None else ["--segment-size", str(size)]


def _field_env(name: str, path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def share_mount() -> Manifest:
    return {"name": SHARE_VOLUME, "mountPath": SHARE}


def credentials_mount() -> Manifest:
    return {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_DIR, "readOnly": True}


def token_mount() -> Manifest:
    return {"name": TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}


def storebase_mounts(input_dir: str, output_dir: str) -> list[Manifest]:
    """Upstream pman's two mounts of the storeBase: the input read-only, the output not."""
    return [
        {"name": STOREBASE_VOLUME, "mountPath": INCOMING, "subPath": input_dir, "readOnly": True},
        {"name": STOREBASE_VOLUME, "mountPath": OUTGOING, "subPath": output_dir},
    ]


def storebase_volume(settings: Settings) -> Manifest:
    """The client's storeBase: the claim ``VOLUME_NAME``, or the host directory ``STOREBASE``
    (which must exist: a typo should keep the pod waiting, not create an empty tree)."""
    if settings.storage_type == KUBERNETES_PVC:
        return {
            "name": STOREBASE_VOLUME,
            "persistentVolumeClaim": {"claimName": settings.volume_name},
        }
    return {
        "name": STOREBASE_VOLUME,
        "hostPath": {"path": str(settings.storebase), "type": "Directory"},
    }


def volumes(settings: Settings, *, credentials: bool = True) -> list[Manifest]:
    """The shared emptyDir, the Swift Secret (unless not ``credentials``), the publisher's
    token, and /dev/shm."""
    secret = [credentials_volume(settings.swift_secret_name)] if credentials else []
    return [share_volume(), *secret, token_volume(), *shm_volumes(settings)]


def shm_volumes(settings: Settings) -> list[Manifest]:
    """The processor's /dev/shm, when ``SHM_SIZE`` is set."""
    if not settings.shm_size_mib:
        return []
    return [
        {
            "name": SHM_VOLUME,
            "emptyDir": {"medium": "Memory", "sizeLimit": f"{settings.shm_size_mib}Mi"},
        }
    ]


def share_volume() -> Manifest:
    """The pod's ``/share``: an emptyDir, gone with the pod."""
    return {"name": SHARE_VOLUME, "emptyDir": {}}


def credentials_volume(secret_name: str) -> Manifest:
    """The Secret holding ``swift-credentials.cfg``."""
    return {"name": CREDENTIALS_VOLUME, "secret": {"secretName": secret_name}}


def token_volume() -> Manifest:
    """What the publish container reads as its in-cluster configuration: a short-lived
    service account token, the cluster's CA and the namespace (as the kubelet's own
    ``kube-api-access`` volume holds them)."""
    return {"name": TOKEN_VOLUME, "projected": {"sources": _token_sources()}}


def _token_sources() -> list[Manifest]:
    return [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {
            "downwardAPI": {
                "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
            }
        },
    ]


# -- jobs of the pfcon API (pman.api.pfcon): the same pod, its data in CUBE's container ------

FRONT_END_LABEL = "pman.chrisproject.org/front-end"
PFCON_FRONT_END = "pfcon"
PLAN_ANNOTATION = "pman.chrisproject.org/stage-in-plan"
MANIFEST_ANNOTATION = "pman.chrisproject.org/manifest"


def build_pfcon_job(
    request: JobRequest,
    settings: Settings,
    *,
    run: str,
    plan: str,
    manifest: str,
    uid: Uid = None,
    gid: Uid = None,
    access: SignedAccess | None = None,
) -> Manifest:
    """The Job of a pfcon job, run ``run``: its stage-in downloads what the stage-in plan
    ``plan`` (``container/object``) lists, its publish uploads to ``request.output_dir``
    (in CUBE's container) and writes the manifest to ``manifest`` (``container/object``),
    so that nothing but the plugin's files lands in the output. Always Swift-shaped; its pod
    holds the temporary URLs ``access`` instead of the Swift Secret when given."""
    parts = pfcon_parts(request, settings, run=run, plan=plan, manifest=manifest, access=access)
    job = build_job(request, settings, run=run, uid=uid, gid=gid, parts=parts)
    extra = {
        "labels": {FRONT_END_LABEL: PFCON_FRONT_END},
        "annotations": {PLAN_ANNOTATION: plan, MANIFEST_ANNOTATION: manifest},
    }
    for metadata in (job["metadata"], job["spec"]["template"]["metadata"]):
        for key, values in extra.items():
            metadata[key] = {**metadata[key], **values}
    return job


def pfcon_parts(
    request: JobRequest,
    settings: Settings,
    *,
    run: str,
    plan: str,
    manifest: str,
    access: SignedAccess | None = None,
) -> Manifest:
    """The containers and volumes of a pfcon job: stage-in from the plan, the processor, the
    publish sidecar; through the temporary URLs ``access``, with no Secret, when given."""
    image, signed = settings.publisher_image, access is not None
    if access is None:
        plan_source, destination = f"swift://{plan}", f"swift://{request.output_dir}"
        publish_options = ["--run-id", run, *segments(settings)]
        publish_options += ["--manifest-to", f"swift://{manifest}"]
    else:
        plan_source, destination = access.plan, access.destination
        publish_options = ["--run-id", run, *segments(settings), *access.publish_options()]
    publish_options.append("--skip-chris-links")  # a plugin's links could reach others' data
    return {
        "serviceAccountName": settings.publisher_service_account,
        "initContainers": [plan_stage_in_container(image, plan_source, credentials=not signed)],
        "containers": [
            processor_container(request, settings),
            publish_container(image, destination, options=publish_options, credentials=not signed),
        ],
        "volumes": volumes(settings, credentials=not signed),
    }


def plan_stage_in_container(image: str, plan: str, *, credentials: bool = True) -> Manifest:
    """``publisher download --plan``: the objects the stage-in plan ``plan``
    (``swift://container/object``, or without ``credentials`` its temporary URL) lists into
    ``/share/incoming``, and ``/share/outgoing`` made writable by any UID (see
    :func:`stage_in_container`)."""
    container = stage_in_container(image, plan, credentials=credentials)
    command = ["publisher", "download"]
    if credentials:
        command += ["--credentials", CREDENTIALS_FILE]
    command += ["--make-dir", OUTGOING, "--plan", plan, INCOMING]
    container["command"] = [literal(word) for word in command]
    return container
