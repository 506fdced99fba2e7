"""The object store: every API object, its resourceVersion, the change history and watches.

One lock guards everything; a commit assigns the next resourceVersion, encodes the object
once (the bytes are served as they are by get, list and watch, which keeps thousands of
objects cheap), appends the change to a bounded history and hands it to the watches and
internal subscribers while still holding the lock, so every observer sees changes in
resourceVersion order. Stored objects are never mutated; updates work on a copy.
"""

from __future__ import annotations

import bisect
import json
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


def encode(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Entry:
    """A stored version of an object: the parsed form (read only) and its JSON bytes."""

    obj: Obj
    raw: bytes

    def copy(self) -> Obj:
        return json.loads(self.raw)

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.obj["metadata"].get("namespace", "")


@dataclass(frozen=True)
class Change:
    rv: int
    resource: str
    type: str
    new: Entry
    old: Entry | None


class NotFound(Exception):
    pass


class AlreadyExists(Exception):
    pass


class Conflict(Exception):
    pass


class TooOld(Exception):
    """A watch asked for changes the history no longer holds."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


_CLOSED = object()


class Watcher:
    """The queue of one watch: events already filtered and typed for its selectors."""

    def __init__(
        self, resource: str, namespace: str | None, predicate: Predicate, name: str | None = None
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.predicate = predicate
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def _filter(self, change: Change) -> tuple[str, Entry] | None:
        if self.namespace and change.new.namespace != self.namespace:
            return None
        new_match = change.type != DELETED and self.predicate(change.new.obj)
        old_match = change.old is not None and self.predicate(change.old.obj)
        if change.type == DELETED:
            return (DELETED, change.new) if old_match else None
        if new_match:
            return (MODIFIED if old_match else ADDED), change.new
        # An object that stops matching leaves the watch as a deletion, like the watch cache.
        return (DELETED, change.new) if old_match else None

    def offer(self, change: Change) -> None:
        event = self._filter(change)
        if event is not None:
            self._queue.put(event)

    def next(self, timeout: float) -> tuple[str, Entry] | None:
        """The next event, or None after ``timeout`` seconds; raises EOFError once closed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._queue.put(_CLOSED)
            raise EOFError
        return item

    def close(self) -> None:
        self._queue.put(_CLOSED)


class Store:
    """All objects of the local cluster, by resource, namespace and name."""

    def __init__(self, *, history: int = 50_000) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[str, dict[str, Entry]]] = {}
        self._rv = 1
        self._history: list[Change] = []
        self._history_limit = history
        self._oldest = 1  # watches from a resourceVersion below this get 410 Expired
        # Watches by resource and, for watches of one object, its name.
        self._watchers: dict[tuple[str, str | None], set[Watcher]] = {}
        self._subscribers: list[tuple[frozenset[str], Callable[[Change], None]]] = []
        # (resource, namespace) -> (label key, value) -> names of the objects carrying it
        self._labels: dict[tuple[str, str], dict[tuple[str, str], set[str]]] = {}
        # Watch events held back (a lagging watch, for tests): which changes, what waits, and
        # the watches that wait (everything after their first held event waits too, so that
        # each watch still sees resourceVersions in order).
        self._holds: list[tuple[str, Predicate]] = []
        self._held: list[tuple[Watcher, Change]] = []
        self._lagging: set[Watcher] = set()

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- reading

    def get(self, resource: str, namespace: str, name: str) -> Entry | None:
        with self.lock:
            return self._objects.get(resource, {}).get(namespace, {}).get(name)

    def list(self, resource: str, namespace: str | None = None) -> tuple[list[Entry], int]:
        """Entries sorted by namespace and name, and the resourceVersion they are valid at."""
        with self.lock:
            spaces = self._objects.get(resource, {})
            if namespace is not None:
                chosen = [(namespace, spaces.get(namespace, {}))]
            else:
                chosen = sorted(spaces.items())
            entries = [entry for _, names in chosen for _, entry in sorted(names.items())]
            return entries, self._rv

    def select(
        self,
        resource: str,
        namespace: str | None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[Entry]:
        """Like ``list``, narrowed through the indexes to objects that may match.

        ``name`` comes from a ``metadata.name`` field selector, ``labels`` from the
        ``key=value`` terms of a label selector; callers still apply their selectors.
        """
        if name is None and not labels:
            return self.list(resource, namespace)[0]
        with self.lock:
            spaces = self._objects.get(resource, {})
            chosen = [namespace] if namespace is not None else sorted(spaces)
            found = []
            for space in chosen:
                names = spaces.get(space, {})
                if name is not None:
                    candidates = [name]
                else:
                    index = self._labels.get((resource, space), {})
                    sets = [index.get(item, set()) for item in (labels or {}).items()]
                    candidates = sorted(set.intersection(*sets))
                found.extend(names[n] for n in candidates if n in names)
            return found

    def _index(
        self, resource: str, namespace: str, name: str, old: Obj | None, new: Obj | None
    ) -> None:
        index = self._labels.setdefault((resource, namespace), {})
        before = (old or {}).get("metadata", {}).get("labels") or {}
        after = (new or {}).get("metadata", {}).get("labels") or {}
        for item in before.items() - after.items():
            index.get(item, set()).discard(name)
            if not index.get(item, True):
                del index[item]
        for item in after.items() - before.items():
            index.setdefault(item, set()).add(name)

    def namespaces(self) -> set[str]:
        with self.lock:
            return {ns for names in self._objects.values() for ns, objs in names.items() if objs}

    # -- writing

    def _commit(self, resource: str, kind: str, obj: Obj, old: Entry | None) -> Entry:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(obj, encode(obj))
        change = Change(self._rv, resource, kind, entry, old)
        self._history.append(change)
        if len(self._history) > 2 * self._history_limit:
            cut = len(self._history) - self._history_limit
            self._oldest = self._history[cut - 1].rv
            del self._history[:cut]
        held = self._is_held(change)
        for key in ((resource, None), (resource, obj["metadata"]["name"])):
            for watcher in self._watchers.get(key, ()):
                if held or watcher in self._lagging:
                    self._held.append((watcher, change))
                    self._lagging.add(watcher)
                else:
                    watcher.offer(change)
        for resources, callback in self._subscribers:
            if resource in resources:
                callback(change)
        return entry

    def create(self, resource: str, obj: Obj) -> Entry:
        meta = obj["metadata"]
        with self.lock:
            names = self._objects.setdefault(resource, {}).setdefault(meta.get("namespace", ""), {})
            if meta["name"] in names:
                raise AlreadyExists(meta["name"])
            entry = self._commit(resource, ADDED, obj, None)
            names[meta["name"]] = entry
            self._index(resource, meta.get("namespace", ""), meta["name"], None, obj)
            return entry

    def update(
        self,
        resource: str,
        namespace: str,
        name: str,
        mutate: Callable[[Obj], Obj | None],
        *,
        expect_rv: str | None = None,
    ) -> Entry:
        """Apply ``mutate`` to a copy of the object and store the result.

        ``mutate`` returns the new object, or None to leave the object as it is (no new
        resourceVersion, no event). Raises NotFound, or Conflict when ``expect_rv`` is
        given and is not the stored resourceVersion.
        """
        with self.lock:
            names = self._objects.get(resource, {}).get(namespace, {})
            old = names.get(name)
            if old is None:
                raise NotFound(name)
            if expect_rv and expect_rv != old.obj["metadata"]["resourceVersion"]:
                raise Conflict(name)
            new = mutate(old.copy())
            if new is None:
                return old
            entry = self._commit(resource, MODIFIED, new, old)
            names[name] = entry
            self._index(resource, namespace, name, old.obj, entry.obj)
            return entry

    def delete(self, resource: str, namespace: str, name: str, *, uid: str | None = None) -> Entry:
        """Remove the object; returns its final state (with the deletion's resourceVersion)."""
        with self.lock:
            names = self._objects.get(resource, {}).get(namespace, {})
            old = names.get(name)
            if old is None or (uid and old.obj["metadata"].get("uid") != uid):
                raise NotFound(name)
            del names[name]
            self._index(resource, namespace, name, old.obj, None)
            return self._commit(resource, DELETED, old.copy(), old)

    # -- observing

    def watch(
        self,
        resource: str,
        namespace: str | None,
        predicate: Predicate,
        *,
        since: int | None,
        name: str | None = None,
    ) -> tuple[Watcher, list[tuple[str, Entry]]]:
        """Register a watch; returns it with the events to send first.

        Without ``since`` those are the current objects as ADDED; with it, the recorded
        changes after that resourceVersion. Raises TooOld when they are no longer held.
        """
        watcher = Watcher(resource, namespace, predicate, name)
        with self.lock:
            if since is None:
                entries = self.select(resource, namespace, name)
                first = [(ADDED, e) for e in entries if predicate(e.obj)]
            else:
                if since < self._oldest:
                    raise TooOld(since, self._oldest)
                start = bisect.bisect_right(self._history, since, key=lambda c: c.rv)
                first = []
                for change in self._history[start:]:
                    if change.resource == resource and name in (None, change.new.name):
                        if watcher in self._lagging or self._is_held(change):
                            self._held.append((watcher, change))
                            self._lagging.add(watcher)
                            continue
                        event = watcher._filter(change)
                        if event is not None:
                            first.append(event)
            self._watchers.setdefault((resource, name), set()).add(watcher)
        return watcher, first

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.get((watcher.resource, watcher.name), set()).discard(watcher)

    def close_watches(self) -> None:
        with self.lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.close()

    def subscribe(self, resources: Iterable[str], callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` for every change of these resources, under the store lock.

        Callbacks must be quick and must not write to the store (they queue work instead).
        """
        with self.lock:
            self._subscribers.append((frozenset(resources), callback))

    def hold(self, resource: str, predicate: Predicate) -> Callable[[], None]:
        """Hold back the watch events of changes to ``resource`` objects that match
        ``predicate``, and every later event of the watches that had one held (as a watch
        that lags behind the others), until the function returned is called; then they are
        delivered, in order. Lists and reads are not held.
        """
        rule = (resource, predicate)
        with self.lock:
            self._holds.append(rule)

        def release() -> None:
            with self.lock:
                self._holds.remove(rule)
                waiting, self._held, self._lagging = self._held, [], set()
                for watcher, change in waiting:
                    if watcher in self._lagging or self._is_held(change):
                        self._held.append((watcher, change))
                        self._lagging.add(watcher)
                    else:
                        watcher.offer(change)

        return release

    def _is_held(self, change: Change) -> bool:
        objects = [change.new.obj] + ([change.old.obj] if change.old is not None else [])
        return any(
            change.resource == resource and any(predicate(obj) for obj in objects)
            for resource, predicate in self._holds
        )

    def compact(self) -> int:
        """Forget the change history, as etcd compaction does; returns the current version."""
        with self.lock:
            self._history.clear()
            self._oldest = self._rv
            return self._rv
