"""The local driver's orchestration history, kept in the Store as Durable keeps its History table.

    orchestrations/<instance id>/instance.json        the orchestration's name and input, when it started
    orchestrations/<instance id>/tasks/<000001>.json  one create-only record per completed task, in order
    orchestrations/<instance id>/suspended.json       a resuming owner stopped gracefully (who, when, why)
    orchestrations/<instance id>/events/<n>.json      every external event raised to it, in order

A task record is written BEFORE the orchestrator receives the task's value, so after a crash the
history holds every value the generator has seen (and at most one activity ran again: one that
finished after its record could not be written, or that was still running). Records are small
(an activity's `op` and result, never its input: the input is recomputed by the replay) and
versioned (functions/shared/versioned.py): one from a newer modelops is not replayed.

External events are kept as they are raised (Durable keeps them in its history the same way), so
an approval or a control accepted just before the host died is still delivered after the resume:
the replay counts the events the workflow has taken and re-raises the rest.

An instance's history is removed when it completes, fails, or is ended by recovery: nothing is
ever replayed from it again, and the rollout's own records (audit trail, gate report) keep what
an operator reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from functions.ports import Conflict, PlatformError, Store
from functions.shared.versioned import readable_version, stamped

SCHEMA_VERSION = 1
PREFIX = "orchestrations/"


class HistoryUnreadable(Exception):
    """The history cannot be replayed (missing, corrupt, a gap, written by a newer modelops)."""


@dataclass(frozen=True)
class Recorded:
    """What is kept of one orchestration: how it started and its completed tasks, in order."""

    instance_id: str
    name: str
    input: Any
    started: str
    tasks: tuple[dict[str, Any], ...]
    suspended: dict[str, Any] | None = None
    events: tuple[dict[str, Any], ...] = ()  # {"name", "data", "at"}: every external event raised, in order


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(stamped(obj, SCHEMA_VERSION), sort_keys=True, default=str).encode()


class OrchestrationHistory:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _base(instance_id: str) -> str:
        return f"{PREFIX}{instance_id}/"

    def begin(self, instance_id: str, name: str, input_: Any, started: str) -> None:
        """Record how the orchestration started (once: a second start of the same id keeps the first)."""
        record = {"instance_id": instance_id, "name": name, "input": input_, "started": started}
        try:
            self.store.put(self._base(instance_id) + "instance.json", _dump(record), if_absent=True)
        except Conflict:
            pass

    def append(self, instance_id: str, n: int, task: dict[str, Any]) -> None:
        """Record the n-th completed task (1-based). Create-only: a second writer of the same n is a
        bug (two drivers on one instance), and raises."""
        self.store.put(f"{self._base(instance_id)}tasks/{n:06d}.json", _dump({"n": n, **task}), if_absent=True)

    def receive(self, instance_id: str, name: str, data: Any, at: str) -> None:
        """Keep an external event before it is handed to the orchestration (ordered by the time
        it came, then a random tail: two events in one microsecond keep distinct records)."""
        import time
        import uuid

        key = f"{self._base(instance_id)}events/{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        self.store.put(key, _dump({"name": name, "data": data, "at": at}), if_absent=True)

    def suspend(self, instance_id: str, note: dict[str, Any]) -> None:
        self.store.put(self._base(instance_id) + "suspended.json", _dump(note))

    def instances(self) -> list[str]:
        """Ids of every instance with a history."""
        return sorted({key[len(PREFIX):].split("/", 1)[0] for key in self.store.list(PREFIX)})

    def read(self, instance_id: str) -> Recorded:
        """The whole history, or HistoryUnreadable with why."""
        base = self._base(instance_id)
        head = self._load(base + "instance.json")
        if head is None:
            raise HistoryUnreadable(f"no history recorded for {instance_id}")
        tasks = []
        for key in self.store.list(base + "tasks/"):
            task = self._load(key)
            if task is None:
                raise HistoryUnreadable(f"{key} vanished while it was read")
            if task.get("n") != len(tasks) + 1:
                raise HistoryUnreadable(f"{key}: task {task.get('n')!r} where task {len(tasks) + 1} was expected "
                                        "(a gap in the history)")
            tasks.append(task)
        try:
            events = tuple(e for e in (self._load(k) for k in self.store.list(base + "events/")) if e is not None)
            return Recorded(instance_id, str(head["name"]), head.get("input"), str(head.get("started", "")),
                            tuple(tasks), self._load(base + "suspended.json"), events)
        except KeyError as exc:
            raise HistoryUnreadable(f"{base}instance.json has no {exc}") from None

    def remove(self, instance_id: str) -> None:
        for key in reversed(self.store.list(self._base(instance_id))):  # tasks first, instance.json last
            self.store.delete(key)

    def _load(self, key: str) -> dict[str, Any] | None:
        try:
            found = self.store.get(key)
            if found is None:
                return None
            record = json.loads(found[0])
            readable_version(record, key, SCHEMA_VERSION)
        except PlatformError as exc:
            raise HistoryUnreadable(str(exc)) from None
        except ValueError as exc:
            raise HistoryUnreadable(f"{key} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise HistoryUnreadable(f"{key} is not a JSON object")
        return record
