"""The stage-in plan of a pfcon job: which objects of CUBE's container land where under
``/share/incoming``, with ChRIS links (``.chrislink`` objects) resolved as pfcon resolves
them. Pure: it plans from listings and link contents that the caller fetches
(:class:`Source`; pman's is in :mod:`pman.pfconjobs`, through :mod:`pman.swift`).

The layout is pfcon's (its test ``test_post_with_chris_links`` pins it):

- the content of each ``input_dirs`` folder lands at the root of ``/share/incoming``, each
  object at its name relative to the folder (a later folder's file replaces an earlier
  one's of the same name, as pfcon's copy overwrites it);
- a link ``<dir>/<x>.chrislink`` whose content is the path ``T`` makes the content of ``T``
  appear under ``<dir>/<T with '/' replaced by '_'>/``; a ``T`` that is a file stands for
  its parent folder, holding that one file; links found in linked content are resolved in
  turn, where they land; the link objects themselves are not staged;
- a link whose folder is already there (a real folder or an earlier link's) adds nothing,
  as pfcon copies a linked folder only where none exists yet;
- the publisher's manifest at a folder's top (``.publisher-manifest.json``, there when the
  folder was filled with ``publisher upload``) is not staged, as ``publisher download``
  leaves it out.

Where pfcon is loose, this is strict: folders are prefixes with a ``/`` boundary (``a/b``
never takes in ``a/b2``); each prefix is listed and each link read once; a link to a folder
already being expanded above it (a loop) adds nothing, so every loop ends. A link whose
target is the job's ``output_dir`` or a folder above it, is no clean relative path, or
cannot be read, refuses the whole input (:class:`InputRefused`, with a sentence a user
understands): the job then fails with that reason.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pman.pod import MANIFEST

LINK_SUFFIX = ".chrislink"
MAX_LINK_BYTES = 4096
"""A ChRIS link holds one path: anything larger is not one."""
MAX_FILES = 200_000
"""Files one plan may stage: links can multiply an input (a folder linked from many
places is staged at each), and the plan is kept whole in memory by pman and the pod."""
MAX_LINKS = 10_000
"""Links one plan may follow."""
PLAN_FORMAT = "pman-stage-in-plan/1"


class InputRefused(Exception):
    """The job's input cannot be staged; the message says why, for the job's user."""


@dataclass(frozen=True)
class Listed:
    """An object as a container listing shows it."""

    name: str
    etag: str
    size: int
    slo_etag: str = ""
    """The ETag of a Static Large Object (its listing's ``slo_etag``), else empty."""


@dataclass(frozen=True)
class Planned:
    """One file to stage: the object and where it lands, relative to ``/share/incoming``."""

    object: str
    etag: str
    bytes: int
    path: str
    slo_etag: str = ""


@dataclass(frozen=True)
class FollowedLink:
    """What became of one link: ``staged`` (its target is at ``path``), ``loop``,
    ``missing`` (nothing at its target) or ``exists`` (its folder is already there)."""

    link: str
    target: str
    path: str
    outcome: str


@dataclass
class Plan:
    files: list[Planned] = field(default_factory=list)
    links: list[FollowedLink] = field(default_factory=list)


class Source(Protocol):
    """What the planner reads: CUBE's container."""

    def folder(self, prefix: str) -> list[Listed]:
        """Every object whose name starts with ``prefix`` (which ends with ``/``)."""

    def file(self, name: str) -> Listed | None:
        """The object called exactly ``name``, if there is one."""

    def read(self, name: str, *, limit: int) -> bytes:
        """The content of object ``name``; more than ``limit`` bytes is refused."""


def clean_path(value: str) -> str | None:
    """``value`` as a relative object path without trailing ``/``, or None when it is no
    clean one (absolute, empty, with an empty, ``.`` or ``..`` segment, or a NUL)."""
    path = value.rstrip("/")
    if not path or path.startswith("/") or "\x00" in path:
        return None
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        return None
    return path


def plan_stage_in(input_dirs: Sequence[str], output_dir: str, source: Source) -> Plan:
    """The plan that stages ``input_dirs`` (clean relative paths) as pfcon does, for a job
    writing to ``output_dir``; :class:`InputRefused` when it cannot."""
    planner = _Planner(source, output_dir)
    for folder in input_dirs:
        planner.stage(folder, at="", chain=(folder,))
    return Plan(sorted(planner.files.values(), key=lambda f: f.path), planner.links)


def plan_document(
    plan: Plan | None,
    *,
    container: str,
    jid: str,
    run: str,
    input_dirs: Sequence[str],
    output_dir: str,
    error: str | None = None,
) -> dict[str, Any]:
    """The plan as the JSON object the stage-in container reads (``publisher download
    --plan``; format in publisher/README.rst). With ``error``, it stages nothing and the
    stage-in fails with that sentence."""
    return {
        "format": PLAN_FORMAT,
        "container": container,
        "jid": jid,
        "run": run,
        "input_dirs": list(input_dirs),
        "output_dir": output_dir,
        "error": error,
        "files": [_file_entry(f) for f in plan.files] if plan and not error else [],
        "links": [asdict(link) for link in plan.links] if plan and not error else [],
    }


def _file_entry(planned: Planned) -> dict[str, Any]:
    entry = asdict(planned)
    if not planned.slo_etag:
        del entry["slo_etag"]
    return entry


class _Planner:
    def __init__(self, source: Source, output_dir: str) -> None:
        self.source = source
        self.output_dir = output_dir
        self.files: dict[str, Planned] = {}
        self.dirs: set[str] = set()
        self.links: list[FollowedLink] = []
        self._folders: dict[str, list[Listed]] = {}
        self._targets: dict[str, str] = {}
        self._files: dict[str, Listed | None] = {}

    def stage(self, prefix: str, *, at: str, chain: tuple[str, ...]) -> None:
        """Stage the folder ``prefix`` at ``at``; ``chain``: the folders being expanded."""
        links = []
        for listed in self._folder(prefix):
            rel = listed.name[len(prefix) + 1 :]
            # A publisher manifest at a folder's top is not staged, as ``publisher download``
            # does not stage it: a folder filled with ``publisher upload`` holds one.
            if not rel or rel.endswith("/") or rel == MANIFEST:
                continue  # the folder's own marker, a sub-folder's, the publisher's manifest
            if clean_path(rel) is None:
                raise InputRefused(
                    f"the input object {listed.name!r} cannot be a file name under "
                    "/share/incoming (an empty, '.' or '..' segment)"
                )
            if rel.endswith(LINK_SUFFIX):
                links.append((listed, rel))
            else:
                self._add(listed, _join(at, rel))
        for listed, rel in links:
            self._follow(listed, _join(at, posixpath.dirname(rel)), chain)

    def _follow(self, listed: Listed, directory: str, chain: tuple[str, ...]) -> None:
        if len(self.links) >= MAX_LINKS:
            raise InputRefused(f"the input holds more than {MAX_LINKS} ChRIS links to follow")
        link = listed.name
        target = self._target(listed)
        if target in chain:
            self.links.append(FollowedLink(link, target, "", "loop"))
            return
        as_file = None if self._folder(target) else self._file(target)
        parent = posixpath.dirname(target) if as_file else target
        path = _join(directory, parent.replace("/", "_")) if parent else directory
        if as_file is None and not self._folder(target):
            self.links.append(FollowedLink(link, target, "", "missing"))
        elif (path in self.dirs or path in self.files) and parent:
            self.links.append(FollowedLink(link, target, path, "exists"))
        elif as_file is not None:
            self.links.append(FollowedLink(link, target, path, "staged"))
            self._add(as_file, _join(path, posixpath.basename(target)))
        else:
            self.links.append(FollowedLink(link, target, path, "staged"))
            self.stage(target, at=path, chain=(*chain, target))

    def _target(self, listed: Listed) -> str:
        """The clean path a link holds; :class:`InputRefused` for one that cannot be used."""
        link = listed.name
        if link in self._targets:
            return self._targets[link]
        if listed.size > MAX_LINK_BYTES:
            raise InputRefused(
                f"the ChRIS link {link!r} holds {listed.size} bytes, more than a path "
                f"({MAX_LINK_BYTES} at most): it is no link"
            )
        try:
            text = self.source.read(link, limit=MAX_LINK_BYTES).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputRefused(
                f"the ChRIS link {link!r} does not hold a path (not UTF-8)"
            ) from None
        target = clean_path(text)
        if target is None:
            raise InputRefused(
                f"the ChRIS link {link!r} holds {text[:200]!r}, which is not a path in the "
                "container (it must be relative, without empty, '.' or '..' segments)"
            )
        output = self.output_dir.rstrip("/")
        if output == target or output.startswith(target + "/"):
            raise InputRefused(
                f"the ChRIS link {link!r} points to {target!r}, which is this job's output "
                "folder or a folder above it: a plugin may not read its own output"
            )
        self._targets[link] = target
        return target

    def _folder(self, prefix: str) -> list[Listed]:
        if prefix not in self._folders:
            self._folders[prefix] = sorted(self.source.folder(prefix + "/"), key=lambda o: o.name)
        return self._folders[prefix]

    def _file(self, name: str) -> Listed | None:
        if name not in self._files:
            self._files[name] = self.source.file(name)
        return self._files[name]

    def _add(self, listed: Listed, path: str) -> None:
        """Plan ``listed`` at ``path``: it replaces a file planned there before."""
        parents = _parents(path)
        if path in self.dirs or any(parent in self.files for parent in parents):
            raise InputRefused(
                f"the input has {path!r} both as a file and as a folder (from "
                f"{listed.name!r}): it cannot be staged"
            )
        if len(self.files) >= MAX_FILES and path not in self.files:
            raise InputRefused(f"the input (its ChRIS links followed) holds over {MAX_FILES} files")
        self.files[path] = Planned(listed.name, listed.etag, listed.size, path, listed.slo_etag)
        self.dirs.update(parents)


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory and name else directory or name


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
