"""The REST API's data: job requests parsed and validated, answers, and their JSON schemas.

One set of pydantic definitions both validates ``POST /api/v1/`` bodies and
produces the OpenAPI document, so the two cannot drift apart. Validation reports
every bad field at once, each with a sentence a client developer can act on.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from pman.errors import BadRequest
from pman.pod import INCOMING, OUTGOING

# The JSON Schema patterns are ECMA-262, where "$" is the end of the input. Python's "$" also
# matches before a final newline, so Python code matches whole strings (re.fullmatch) with
# the patterns' bodies instead.
JID_PATTERN = r"^/?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# A jid in a URL path: as submitted, without the leading "/" (what is_jid accepts).
PATH_JID_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# A path segment must contain something besides dots, so "." and ".." never pass.
_SEGMENT = r"[^/\x00]*[^/.\x00][^/\x00]*"
STORAGE_PATH_PATTERN = rf"^/?{_SEGMENT}(/{_SEGMENT})*/*$"
ENV_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*=[^\x00]*$"
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
MAX_PATH_LENGTH = 1024
# Swift's limits (its defaults, in bytes of UTF-8): a container name of at most 256 bytes,
# an object name of at most 1024. An object prefix must leave room for "/" and the names
# under it, the publisher's manifest (".publisher-manifest.json", 24 bytes) among them.
MAX_CONTAINER_BYTES = 256
MAX_PREFIX_BYTES = 1024 - len("/.publisher-manifest.json")
# No spaces or control characters: the same class in Python and in ECMA-262 (JSON Schema).
IMAGE_PATTERN = r"^[^\x00-\x20\x7f]+$"
_IMAGE = re.compile(r"[^\x00-\x20\x7f]+")
# The longest reference the distribution spec's grammar allows: a name of at most 255
# characters (registry included), a tag of at most 128, and a sha512 digest.
MAX_IMAGE_LENGTH = 255 + len(":") + 128 + len("@sha512:") + 128


def _integer(minimum: int, digits: int) -> Any:
    """An integer field that also takes numeric strings (pfcon sends ``"1000"``)."""
    maximum = 10**digits - 1
    first = "[1-9]" if minimum else "[0-9]"
    schema = {
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": maximum},
            {"type": "string", "pattern": f"^0*{first}[0-9]{{0,{digits - 1}}}$"},
        ]
    }
    if minimum == 0:
        schema["anyOf"][1]["pattern"] = f"^0*[0-9]{{1,{digits}}}$"

    def check(value: Any) -> int:
        number = _as_integer(value)
        if not minimum <= number <= maximum:
            raise ValueError(f"must be an integer from {minimum} to {maximum}")
        return number

    return Annotated[int, BeforeValidator(check), WithJsonSchema(schema)]


def _as_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        # Python converts at most 4300 digits; far fewer are beyond every range of pman's.
        return int(digits) if len(digits) <= 100 else 10**100
    raise ValueError("must be a whole number, as a JSON number or a string of digits")


def is_jid(value: str) -> bool:
    """Whether ``value`` is a jid pman could have accepted (without the leading /)."""
    return len(value) <= 63 and bool(_DNS_LABEL.fullmatch(value))


def _check_jid(value: str) -> str:
    jid = value.removeprefix("/")
    if not jid:
        raise ValueError("must not be empty")
    if len(jid) > 63:
        raise ValueError("must be at most 63 characters: it becomes the Kubernetes Job name")
    if not _DNS_LABEL.fullmatch(jid):
        raise ValueError(
            "must be a DNS-1123 label (lower-case letters, digits and '-', starting and "
            "ending with a letter or digit): it becomes the Kubernetes Job name"
        )
    return jid


def _volume_storage(info: ValidationInfo) -> bool:
    """Whether the request is for a pman in a volume storage mode (the validation context
    says so), where a data path is relative to the client's storeBase."""
    return bool((info.context or {}).get("volume_storage"))


def _check_storage_path(value: str, info: ValidationInfo) -> str:
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"must be at most {MAX_PATH_LENGTH} characters")
    path = _text(value).removeprefix("/").rstrip("/")
    form = (
        "a path relative to the storeBase"
        if _volume_storage(info)
        else ("<swift container>/<prefix>")
    )
    if not path:
        raise ValueError(f"must be {form}, not empty")
    if path.startswith("/"):
        raise ValueError(f"must be {form}, not absolute")
    segments = path.split("/")
    if not segments[0]:
        raise ValueError("must start with a Swift container name")
    if any(not segment for segment in segments):
        raise ValueError("must not contain empty path segments ('//')")
    if any(set(segment) == {"."} for segment in segments):
        raise ValueError("must not contain '.' or '..' segments")
    container, _, prefix = path.partition("/")
    if len(container.encode()) > MAX_CONTAINER_BYTES:
        raise ValueError(
            f"its Swift container name must be at most {MAX_CONTAINER_BYTES} bytes "
            f"(UTF-8), not {len(container.encode())}"
        )
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise ValueError(
            f"its object prefix must be at most {MAX_PREFIX_BYTES} bytes (UTF-8), not "
            f"{len(prefix.encode())}: Swift's object names (at most 1024 bytes) must hold "
            "it and the names of the files under it"
        )
    return path


def _check_env(value: str) -> str:
    name, sep, _ = _text(value).partition("=")
    if not sep:
        raise ValueError(f"{value!r} is not KEY=VALUE")
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid environment variable name")
    return value


def _text(value: str) -> str:
    """``value`` unless it holds what no process can be given: NUL, or an unpaired
    surrogate (a JSON escape such as \\ud800 that no UTF-8 can carry)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode: it holds an unpaired surrogate") from None
    return value


def _check_entrypoint(value: list[str]) -> list[str]:
    if value and not value[0]:
        raise ValueError("item 0: the program must not be empty")
    return value


def _check_image(value: str) -> str:
    if len(value) > MAX_IMAGE_LENGTH:
        raise ValueError(
            f"must be at most {MAX_IMAGE_LENGTH} characters: longer image references do not exist"
        )
    if not _IMAGE.fullmatch(_text(value)):
        raise ValueError("must be an image reference without spaces, e.g. docker.io/org/app:1.0")
    return value


_TEXT_SCHEMA = {"type": "string", "pattern": "^[^\\x00]*$"}
# The entrypoint's first word, the program: not empty.
_PROGRAM_SCHEMA = {**_TEXT_SCHEMA, "minLength": 1}
Text = Annotated[StrictStr, AfterValidator(_text), WithJsonSchema(_TEXT_SCHEMA)]
Auid = Annotated[
    StrictStr,
    AfterValidator(_text),
    Field(max_length=256),
    WithJsonSchema({**_TEXT_SCHEMA, "maxLength": 256}),
]
Jid = Annotated[
    StrictStr,
    AfterValidator(_check_jid),
    WithJsonSchema({"type": "string", "pattern": JID_PATTERN, "maxLength": 64}),
]
StoragePath = Annotated[
    StrictStr,
    AfterValidator(_check_storage_path),
    WithJsonSchema(
        {"type": "string", "pattern": STORAGE_PATH_PATTERN, "maxLength": MAX_PATH_LENGTH}
    ),
]
EnvItem = Annotated[
    StrictStr,
    AfterValidator(_check_env),
    WithJsonSchema({"type": "string", "pattern": ENV_PATTERN}),
]
Image = Annotated[
    StrictStr,
    AfterValidator(_check_image),
    WithJsonSchema({"type": "string", "pattern": IMAGE_PATTERN, "maxLength": MAX_IMAGE_LENGTH}),
]
Workers = _integer(1, 3)
Millicores = _integer(1, 7)
Mebibytes = _integer(1, 8)
Gpus = _integer(0, 3)
JobType = Literal["ds", "fs", "ts"]
JobStatus = Literal[
    "notstarted", "started", "finishedSuccessfully", "finishedWithError", "undefined"
]
JobPhase = Literal["pending", "staging-in", "running", "publishing", "done"]


class JobRequest(BaseModel):
    """The body of POST /api/v1/: the pman v6 job request."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="JobRequest")

    jid: Jid = Field(description="Job id; becomes the Kubernetes Job name. A leading / is dropped.")
    args: list[Text] = Field(description="Arguments after the entrypoint; may be empty.")
    args_path_flags: list[Text] = Field(
        default=[], description="Flags whose following argument is replaced by /share/incoming."
    )
    auid: Auid = Field(description="Owner's user name.")
    number_of_workers: Workers = Field(description="Parallelism and completions.")
    cpu_limit: Millicores = Field(description="CPU limit in millicores.")
    memory_limit: Mebibytes = Field(description="Memory limit in MiB.")
    gpu_limit: Gpus = Field(description="Number of nvidia.com/gpu.")
    image: Image = Field(description="Image of the processor.")
    entrypoint: Annotated[
        list[Text],
        Field(min_length=1, json_schema_extra={"prefixItems": [_PROGRAM_SCHEMA]}),
        AfterValidator(_check_entrypoint),
    ] = Field(description="Command of the processor; must not be empty.")
    type: JobType = Field(description="ds, fs or ts.")
    env: list[EnvItem] = Field(default=[], description="KEY=VALUE environment of the processor.")
    input_dir: StoragePath | None = Field(
        default=None,
        description="<swift container>/<prefix> of the input (with a volume STORAGE_TYPE, a "
        "path relative to the storeBase); default key-<jid>/incoming.",
    )
    output_dir: StoragePath | None = Field(
        default=None,
        description="<swift container>/<prefix> of the output (with a volume STORAGE_TYPE, a "
        "path relative to the storeBase); default key-<jid>/outgoing.",
    )

    @model_validator(mode="after")
    def _default_dirs(self) -> JobRequest:
        # Older clients omit the directories; the original layout puts them under key-<jid>.
        if self.input_dir is None:
            object.__setattr__(self, "input_dir", f"key-{self.jid}/incoming")
        if self.output_dir is None:
            object.__setattr__(self, "output_dir", f"key-{self.jid}/outgoing")
        return self

    @property
    def env_pairs(self) -> list[tuple[str, str]]:
        """``env`` split at the first ``=``."""
        return [tuple(item.split("=", 1)) for item in self.env]  # type: ignore[misc]

    @property
    def command(self) -> list[str]:
        """The processor's full command line (CONTRACT.md, "Command the processor runs")."""
        command = [*self.entrypoint, *localize(self.args, set(self.args_path_flags))]
        if self.type == "ds":
            command.append(INCOMING)
        command.append(OUTGOING)
        return command


def localize(args: list[str], path_flags: set[str]) -> list[str]:
    """Replace the value after each path flag with the input directory."""
    result: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        result.append(arg)
        if arg in path_flags:
            result.append(INCOMING)
            skip = True
    return result


class JobObject(BaseModel):
    """A job as pman reports it (POST 201, GET 200)."""

    model_config = ConfigDict(title="Job")

    jid: str
    image: str
    cmd: str = Field(description="The processor's command, words joined by spaces.")
    status: JobStatus
    message: str = Field(description="Human-readable detail of the status.")
    timestamp: str = Field(description="ISO-8601 completion time, or empty while not finished.")
    logs: str = Field(description="Last lines of the processor's output, or why there are none.")
    phase: JobPhase = Field(description="Where the job is: pending ... done.")
    reason: str = Field(description="Why it failed or waits (e.g. OOMKilled), or empty.")


class ServerInfo(BaseModel):
    """GET /api/v1/: what this server is."""

    server_version: str
    container_env: str
    storage_type: str = Field(
        description="Where jobs find their data (STORAGE_TYPE): swift, kubernetes_pvc or host."
    )


class JobList(BaseModel):
    """GET /api/v1/_jobs/: every job pman manages in its namespace (logs left empty)."""

    jobs: list[JobObject]


class UploadResult(BaseModel):
    """POST /api/v1/_data/<jid>/input/: what was written to Swift."""

    jid: str
    input_dir: str = Field(description="<swift container>/<prefix> the files went to.")
    files: int = Field(description="Number of files (objects) written.")
    bytes: int = Field(description="Their total size.")


class ErrorBody(BaseModel):
    """Every error: a sentence, or for invalid fields one sentence per field."""

    model_config = ConfigDict(title="Error")

    message: str | dict[str, str]


def parse_job_request(body: Any, *, volume_storage: bool = False) -> JobRequest:
    """Validate a decoded JSON body; raise :class:`BadRequest` naming every bad field.

    With ``volume_storage`` the directories are paths of the client's storeBase (the
    volume storage modes), which must not overlap."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        request = JobRequest.model_validate(body, context={"volume_storage": volume_storage})
    except ValidationError as error:
        raise BadRequest(field_messages(error)) from None
    if volume_storage and (overlap := _overlap(str(request.input_dir), str(request.output_dir))):
        raise BadRequest(overlap)
    return request


def _overlap(input_dir: str, output_dir: str) -> dict[str, str]:
    """In a storeBase the two directories must not hold one another: the input would be
    writable through the output's mount, or the output would land in the input."""
    if input_dir == output_dir:
        return {"output_dir": "must not be input_dir: the input would be writable"}
    if output_dir.startswith(input_dir + "/"):
        return {"output_dir": f"must not be inside input_dir ({input_dir!r})"}
    if input_dir.startswith(output_dir + "/"):
        return {
            "input_dir": f"must not be inside output_dir ({output_dir!r}): it would be writable"
        }
    return {}


def field_messages(error: ValidationError) -> dict[str, str]:
    """One sentence per field from pydantic's error list."""
    messages: dict[str, list[str]] = {}
    for item in error.errors():
        location = item["loc"]
        name = str(location[0]) if location else "body"
        text = _describe(item)
        if len(location) > 1 and isinstance(location[1], int):
            text = f"item {location[1]}: {text}"
        messages.setdefault(name, []).append(text)
    return {name: "; ".join(texts) for name, texts in messages.items()}


def _describe(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "is required"
    if kind == "string_type":
        return "must be a string"
    if kind == "list_type":
        return "must be an array of strings"
    if kind == "too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {item['ctx']['max_length']} characters"
    if kind == "literal_error":
        return "must be one of 'ds', 'fs', 'ts'"
    if kind == "string_unicode":
        return "is not valid Unicode: it holds an unpaired surrogate"
    if kind == "value_error":
        return str(item["ctx"]["error"])
    return item["msg"]
