"""Checks of a Dockerfile, read with buildkit's own parser (the ``dockerfile`` package).

Each check takes the parsed instructions and returns its problems in words:

- ``base_images``: every base image pinned by a tag other than ``latest`` (or a digest);
- ``user``: the final stage ends with a numeric, non-root ``USER`` (OpenShift's
  ``runAsNonRoot`` can only be verified for a numeric UID) in group 0, the group of
  OpenShift's random UID, so that what the image makes group-0 writable works under it;
- ``secrets``: no ``ENV`` or ``ARG`` default named like a secret, and no ``COPY``/``ADD``
  of a credentials file, nor of a directory whose tracked files include one;
- ``entrypoint``: the command is in exec form and is a console script of the project
  (whose target imports) or gunicorn with a config module that imports, and the image
  installs what provides it;
- ``copied_code``: every package of the project that the entrypoint's package imports,
  directly or through another, is copied into the image (an import that works here, where
  the whole tree is installed, would fail in the image).
"""

from __future__ import annotations

import ast
import importlib
import itertools
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from dockerfile import Command

SECRET_NAME = re.compile(
    r"PASSW(OR)?D|SECRET|TOKEN|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|(^|_)KEY($|_)",
    re.IGNORECASE,
)
CREDENTIAL_FILE = re.compile(
    r"(^|/)(swift-credentials\.cfg|kubeconfig|\.env|id_rsa|id_ed25519|\.netrc|\.pypirc)$"
    r"|\.(pem|key|p12|pfx)$",
    re.IGNORECASE,
)


def stages(commands: list[Command]) -> list[list[Command]]:
    """The instructions of each build stage, each starting with its FROM."""
    result: list[list[Command]] = []
    for command in commands:
        if command.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(command)
    return result


def base_images(commands: list[Command]) -> list[str]:
    problems, aliases = [], set()
    for command in (c for c in commands if c.cmd == "FROM"):
        image = command.value[0]
        if len(command.value) == 3 and command.value[1].upper() == "AS":
            aliases.add(command.value[2].lower())
        if image.lower() in aliases or image == "scratch":
            continue
        problems += _pin_problems(image, command.start_line)
        aliases.add(image.lower())
    return problems


def _pin_problems(image: str, line: int) -> list[str]:
    if "$" in image:
        return [f"line {line}: base image {image} depends on a build argument"]
    if "@sha256:" in image:
        return []
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return [f"line {line}: base image {image} is not pinned by a tag"]
    if tag == "latest":
        return [f"line {line}: base image {image} uses the moving tag latest"]
    return []


def user(commands: list[Command]) -> list[str]:
    final = stages(commands)[-1] if stages(commands) else []
    users = [c for c in final if c.cmd == "USER"]
    if not users:
        return ["the final stage sets no USER: the image runs as root"]
    last = users[-1]
    uid = last.value[0].split(":")[0]
    if not uid.isdigit():
        return [f"line {last.start_line}: USER {last.value[0]} is not a numeric UID"]
    if int(uid) == 0:
        return [f"line {last.start_line}: USER {last.value[0]} is root"]
    group = last.value[0].partition(":")[2]
    if group != "0":
        return [f"line {last.start_line}: USER {last.value[0]} is not in group 0"]
    return []


def secrets(commands: list[Command], *, context: Path) -> list[str]:
    problems = []
    for command in commands:
        if command.cmd == "ENV":
            names = command.value[0::2]
            problems += [
                f"line {command.start_line}: ENV {name} looks like a secret"
                for name in names
                if SECRET_NAME.search(name)
            ]
        elif command.cmd == "ARG":
            for item in command.value:
                name, has_default, _ = item.partition("=")
                if has_default and SECRET_NAME.search(name):
                    problems.append(f"line {command.start_line}: ARG {name} has a secret default")
        elif command.cmd in ("COPY", "ADD") and not _from_stage(command):
            for source in command.value[:-1]:
                problems += [
                    f"line {command.start_line}: {command.cmd} brings in {found}"
                    for found in _credential_files(source, context)
                ]
    return problems


def _from_stage(command: Command) -> bool:
    return any(flag.startswith("--from=") for flag in command.flags)


def _credential_files(source: str, context: Path) -> list[str]:
    if CREDENTIAL_FILE.search(source):
        return [source]
    listed = subprocess.run(
        ["git", "ls-files", "--", source],
        cwd=context,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in listed if CREDENTIAL_FILE.search(name)]


def entrypoint(commands: list[Command], scripts: Mapping[str, str]) -> list[str]:
    final = stages(commands)[-1] if stages(commands) else []
    chosen = [c for c in final if c.cmd == "ENTRYPOINT"] or [c for c in final if c.cmd == "CMD"]
    if not chosen:
        return ["the image has no ENTRYPOINT or CMD"]
    command = chosen[-1]
    if not command.json:
        return [f"line {command.start_line}: {command.cmd} is in shell form, not exec form"]
    program, *args = command.value
    installs = " ".join(c.value[0] for c in final if c.cmd == "RUN")
    if program in scripts:
        problems = _import_problems(scripts[program], command.start_line)
        if "pip install" not in installs:
            problems.append(f"line {command.start_line}: nothing installs the {program} script")
        return problems
    if program == "gunicorn":
        return _gunicorn_problems(args, installs, command.start_line)
    return [f"line {command.start_line}: {program} is not a console script of the project"]


def _gunicorn_problems(args: list[str], installs: str, line: int) -> list[str]:
    problems = []
    if not re.search(r"pip install\s+\S*(\[server\]|gunicorn)", installs):
        problems.append(f"line {line}: gunicorn is run but not installed")
    configs = [value for flag, value in itertools.pairwise(args) if flag in ("-c", "--config")]
    for config in configs:
        if config.startswith("python:"):
            problems += _import_problems(config.removeprefix("python:"), line)
    if not configs:
        problems.append(f"line {line}: gunicorn is run without the project's config")
    return problems


def _import_problems(target: str, line: int) -> list[str]:
    module, _, attribute = target.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        return [f"line {line}: {target} does not import: {error}"]
    if attribute and not hasattr(loaded, attribute):
        return [f"line {line}: {module} has no {attribute}"]
    return []


def copied_code(commands: list[Command], scripts: Mapping[str, str], *, context: Path) -> list[str]:
    final = stages(commands)[-1] if stages(commands) else []
    chosen = [c for c in final if c.cmd == "ENTRYPOINT"] or [c for c in final if c.cmd == "CMD"]
    if not chosen or not chosen[-1].json:
        return []  # ``entrypoint`` reports it
    program, *args = chosen[-1].value
    target = scripts.get(program, "")
    if program == "gunicorn":
        configs = [v for flag, v in itertools.pairwise(args) if flag in ("-c", "--config")]
        target = configs[0].removeprefix("python:") if configs else ""
    if not target:
        return []
    ours = _project_packages(context)
    needed = _imported_packages(target.split(".")[0], ours, context)
    copied = {
        Path(source).parts[0]
        for command in commands
        if command.cmd in ("COPY", "ADD") and not _from_stage(command)
        for source in command.value[:-1]
    }
    return [
        f"line {chosen[-1].start_line}: {program} needs the package {name}, which is not copied"
        for name in sorted(needed - copied)
    ]


def _project_packages(context: Path) -> set[str]:
    return {path.parent.name for path in context.glob("*/__init__.py")} - {"tests", "bench"}


def _imported_packages(start: str, ours: set[str], context: Path) -> set[str]:
    needed, pending = set(), [start]
    while pending:
        package = pending.pop()
        if package in needed:
            continue
        needed.add(package)
        for source in (context / package).rglob("*.py"):
            pending += [name for name in _top_level_imports(source) if name in ours]
    return needed


def _top_level_imports(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names
