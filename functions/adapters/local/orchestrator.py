"""A small in-process driver for Durable-style orchestrator generators (the local platform).

It implements the subset of DurableOrchestrationContext the workflow uses — call_activity,
create_timer, wait_for_external_event, task_any, current_utc_datetime, get_input, instance_id,
set_custom_status — and runs each orchestration in a thread. While the process lives the driver
keeps the generator alive; it also records every completed task (history.py), as Durable keeps its
history, so that a later owner of the home can rebuild the generator and `replay` that history
(results fed back, `current_utc_datetime` the recorded times) and continue from the last
completed step. Like Durable's, `current_utc_datetime` is deterministic: the time the last
completed task was recorded (the start time before the first), so a replay computes the same
timer fire times and audit timestamps the first run did.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Generator

from functions.adapters.local.history import HistoryUnreadable, OrchestrationHistory


class Interrupted(Exception):
    """The driver is stopping: the orchestration ends where it is (no further activity runs)."""


class NotResumable(Exception):
    """A recorded orchestration cannot be continued (the history is unreadable, or the workflow
    asks for other tasks than the history holds): the reason says which."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Task:
    def __init__(self, kind: str, **spec: Any) -> None:
        self.kind = kind
        self.spec = spec
        self.result: Any = None
        self.is_completed = False
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class LocalContext:
    def __init__(self, instance_id: str, input_: Any, events: "EventBox", clock: datetime | None = None) -> None:
        self.instance_id = instance_id
        self._input = input_
        self._events = events
        self.custom_status: Any = None
        self.clock = clock or _now()  # set by the driver: the time the last completed task was recorded
        self.is_replaying = False

    @property
    def current_utc_datetime(self) -> datetime:
        return self.clock

    def get_input(self) -> Any:
        return self._input

    def set_custom_status(self, status: Any) -> None:
        self.custom_status = status

    def call_activity(self, name: str, input_: Any = None) -> Task:
        return Task("activity", name=name, input=input_)

    def create_timer(self, fire_at: datetime) -> Task:
        return Task("timer", fire_at=fire_at)

    def wait_for_external_event(self, name: str) -> Task:
        return Task("event", name=name)

    def task_any(self, tasks: list[Task]) -> Task:
        return Task("any", tasks=tasks)


class EventBox:
    def __init__(self) -> None:
        self._events: dict[str, list[Any]] = {}
        self._cond = threading.Condition()

    def raise_event(self, name: str, data: Any) -> None:
        with self._cond:
            self._events.setdefault(name, []).append(data)
            self._cond.notify_all()

    def take(self, name: str) -> tuple[bool, Any]:
        with self._cond:
            queue = self._events.get(name)
            if queue:
                return True, queue.pop(0)
            return False, None

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout)


@dataclass
class Instance:
    instance_id: str
    name: str
    input: Any
    status: str = "Pending"  # Pending | Running | Completed | Failed | Interrupted
    output: Any = None
    error: str = ""
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    context: LocalContext | None = None
    thread: threading.Thread | None = None
    events: EventBox = field(default_factory=EventBox)
    done: threading.Event = field(default_factory=threading.Event)
    resumed_at: int = 0  # tasks replayed from the history when a later owner resumed it (0: never)


@dataclass
class Replayed:
    """A recorded orchestration rebuilt by `LocalOrchestrator.replay`, positioned at its first task
    the history does not hold (the next one to run live)."""

    instance: Instance
    generator: Generator[Any, Any, Any]
    task: Any
    completed: int  # tasks in the history (all fed back)


class LocalOrchestrator:
    """Starts orchestrations by instance id (idempotent) and runs them in daemon threads. With a
    `history`, every completed task is recorded before the orchestrator receives its value, and a
    recorded orchestration can be `replay`ed and `resume`d by a later process."""

    def __init__(self, orchestrators: dict[str, Callable], activities: dict[str, Callable[[Any], Any]],
                 history: OrchestrationHistory | None = None) -> None:
        self.orchestrators = orchestrators
        self.activities = activities
        self.history = history
        self.instances: dict[str, Instance] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self, name: str, instance_id: str, input_: Any) -> bool:
        """Start unless an instance with this id exists; returns whether it started."""
        with self._lock:
            if self._stopping.is_set():
                raise Interrupted("the orchestration driver is stopping")
            if instance_id in self.instances:
                return False
            instance = Instance(instance_id, name, input_)
            self.instances[instance_id] = instance
        if self.history is not None:  # before it runs: a crash from here on leaves a replayable history
            self.history.begin(instance_id, name, input_, instance.created.isoformat())
        self._launch(instance, None)
        return True

    def replay(self, instance_id: str) -> Replayed:
        """Rebuild a recorded orchestration: its generator from the recorded input, every recorded
        task's value fed back in order (`current_utc_datetime` the recorded times). NotResumable
        when there is no readable history or the workflow diverges from it. Runs no activity."""
        if self.history is None:
            raise NotResumable("this driver keeps no history")
        try:
            recorded = self.history.read(instance_id)
        except HistoryUnreadable as exc:
            raise NotResumable(f"its history is unreadable: {exc}") from None
        orchestrator = self.orchestrators.get(recorded.name)
        if orchestrator is None:
            raise NotResumable(f"its orchestration {recorded.name!r} is not registered here")
        instance = Instance(instance_id, recorded.name, recorded.input, created=_parse_time(recorded.started))
        context = LocalContext(instance_id, recorded.input, instance.events, clock=instance.created)
        instance.context = context
        generator, task = replay_tasks(orchestrator, context, recorded.tasks)
        for name, data in untaken_events(recorded):  # raised, never taken: delivered after the resume
            instance.events.raise_event(name, data)
        return Replayed(instance, generator, task, len(recorded.tasks))

    def resume(self, replayed: Replayed) -> None:
        """Continue a replayed orchestration live, from its next task."""
        instance = replayed.instance
        with self._lock:
            if self._stopping.is_set():
                raise Interrupted("the orchestration driver is stopping")
            if instance.instance_id in self.instances:
                raise ValueError(f"orchestration {instance.instance_id} is already running here")
            instance.resumed_at = replayed.completed
            self.instances[instance.instance_id] = instance
        self._launch(instance, replayed)

    def _launch(self, instance: Instance, replayed: Replayed | None) -> None:
        instance.thread = threading.Thread(target=self._run, args=(instance, replayed),
                                           name=f"orch-{instance.instance_id}", daemon=True)
        instance.thread.start()

    def raise_event(self, instance_id: str, name: str, data: Any) -> bool:
        """Hand an external event to a running orchestration; kept in its history first, so a host
        that dies before the workflow takes it delivers it after the resume."""
        instance = self.instances.get(instance_id)
        if instance is None or instance.done.is_set():
            return False
        if self.history is not None:
            self.history.receive(instance_id, name, _json_copy(data), _now().isoformat())
        instance.events.raise_event(name, data)
        return True

    def running(self) -> list[Instance]:
        return [i for i in list(self.instances.values()) if not i.done.is_set()]

    def stop(self, timeout: float = 30.0) -> list[Instance]:
        """Stop every orchestration at its next step (an activity already running finishes first)
        and return the ones that were interrupted. Their records still say `running` and their
        histories stay: the owner reconciles them (functions/domain/reconcile.py) or leaves them
        for the next host to resume."""
        self._stopping.set()
        for instance in list(self.instances.values()):
            instance.events.raise_event("__stop__", None)  # wakes a wait for an external event
        interrupted = []
        for instance in list(self.instances.values()):
            if instance.thread is not None:
                instance.thread.join(timeout)
            if instance.status == "Interrupted":
                interrupted.append(instance)
        return interrupted

    def wait_all(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for every orchestration started so far; their outputs (a failed or interrupted one
        as {"id", "state": "failed" | "interrupted", "reason"})."""
        outputs = []
        for instance_id in list(self.instances):
            instance = self.wait(instance_id, timeout)
            state = "interrupted" if instance.status == "Interrupted" else "failed"
            outputs.append(instance.output or {"id": instance_id, "state": state, "reason": instance.error})
        return outputs

    def wait(self, instance_id: str, timeout: float | None = None) -> Instance:
        instance = self.instances[instance_id]
        if not instance.done.wait(timeout):
            raise TimeoutError(f"orchestration {instance_id} still {instance.status} after {timeout} s")
        return instance

    def _run(self, instance: Instance, replayed: Replayed | None) -> None:
        instance.status = "Running"
        try:
            if replayed is None:
                context = LocalContext(instance.instance_id, instance.input, instance.events, clock=instance.created)
                instance.context = context
                generator = self.orchestrators[instance.name](context)
                task, completed = next(generator), 0
            else:
                context, generator, task, completed = instance.context, replayed.generator, replayed.task, \
                    replayed.completed
        except StopIteration as stop:
            instance.output, instance.status = stop.value, "Completed"
            self._finished(instance)
            return
        except Exception as exc:
            instance.error, instance.status = _describe(exc), "Failed"
            self._finished(instance)
            return
        try:
            while True:
                if self._stopping.is_set():
                    raise Interrupted("stopped before its next step")
                try:
                    value = self._resolve(task, instance)
                except Interrupted:
                    raise
                except Exception as exc:  # activity failures are thrown into the orchestrator, as Durable does
                    if self._stopping.is_set():  # it may have failed because the platform is closing under it:
                        raise Interrupted(f"stopped while an activity ran ({_describe(exc)[:300]})") from exc
                    completed = self._record(instance, completed, task, error=exc)
                    task = generator.throw(exc)
                else:
                    completed = self._record(instance, completed, task, value=value)
                    if task.kind == "activity" and self.history is not None:
                        value = task.result = _json_copy(value)  # what a replay feeds back
                    task = generator.send(value)
        except Interrupted as exc:
            generator.close()  # GeneratorExit inside: the workflow's `except Exception` does not run
            instance.error = str(exc)
            instance.status = "Interrupted"
        except StopIteration as stop:
            instance.output = stop.value
            instance.status = "Completed"
        except Exception as exc:
            instance.error = _describe(exc)
            instance.status = "Failed"
        finally:
            self._finished(instance)

    def _record(self, instance: Instance, completed: int, task: Task, value: Any = None,
                error: Exception | None = None) -> int:
        """Write the completed task to the history (before the generator sees it) and move the
        orchestration's clock to the time it was recorded. A history that cannot be written stops
        the orchestration where it is (Interrupted: its owner ends it as an interrupted rollout)."""
        at = _now()
        instance.context.clock = at
        if self.history is None:
            return completed + 1
        record = {**describe_task(task), "at": at.isoformat()}
        if task.kind == "activity":
            if error is not None:
                record["error"] = {"type": type(error).__name__, "message": str(error)[:2000]}
            else:
                record["result"] = value
        elif task.kind == "event":
            record["data"] = value
        elif task.kind == "any":
            record["winner"] = task.spec["tasks"].index(value)
            record["result"] = value.result
        try:
            self.history.append(instance.instance_id, completed + 1, json.loads(json.dumps(record, default=str)))
        except Exception as exc:  # noqa: BLE001 - a full disk, a lost store: nothing more may run unrecorded
            raise Interrupted(f"could not record its history: {type(exc).__name__}: {str(exc)[:300]}") from exc
        return completed + 1

    def _finished(self, instance: Instance) -> None:
        """Done for good: the history is never replayed again (an interrupted one stays for the owner)."""
        try:
            if self.history is not None and instance.status in ("Completed", "Failed"):
                self.history.remove(instance.instance_id)
        finally:
            instance.done.set()

    def _resolve(self, task: Task, instance: Instance) -> Any:
        if task.kind == "activity":
            result = self.activities[task.spec["name"]](task.spec["input"])
            task.result, task.is_completed = result, True
            return result
        if task.kind == "timer":
            delay = (task.spec["fire_at"] - datetime.now(timezone.utc)).total_seconds()
            if delay > 0 and self._stopping.wait(delay):
                raise Interrupted("stopped while waiting on a timer")
            task.is_completed = True
            return None
        if task.kind == "event":
            while True:
                if self._stopping.is_set():
                    raise Interrupted("stopped while waiting for an event")
                found, data = instance.events.take(task.spec["name"])
                if found:
                    task.result, task.is_completed = data, True
                    return data
                instance.events.wait(0.5)
        if task.kind == "any":
            while True:
                if self._stopping.is_set():
                    raise Interrupted("stopped while waiting for an event or a timer")
                for child in task.spec["tasks"]:
                    if child.kind == "event":
                        found, data = instance.events.take(child.spec["name"])
                        if found:
                            child.result, child.is_completed = data, True
                            return child
                    elif child.kind == "timer" and not child.cancelled:
                        if datetime.now(timezone.utc) >= child.spec["fire_at"]:
                            child.is_completed = True
                            return child
                    elif child.kind == "activity":
                        self._resolve(child, instance)
                        return child
                instance.events.wait(0.05)
        raise ValueError(f"unknown task kind {task.kind}")


def describe_task(task: Task) -> dict[str, Any]:
    """What identifies a task in the history (compared on replay to detect divergence)."""
    if task.kind == "activity":
        payload = task.spec.get("input")
        op = payload.get("op") if isinstance(payload, dict) else None
        return {"kind": "activity", "name": task.spec["name"], "op": op}
    if task.kind == "timer":
        return {"kind": "timer", "fire_at": task.spec["fire_at"].isoformat()}
    if task.kind == "event":
        return {"kind": "event", "name": task.spec["name"]}
    if task.kind == "any":
        return {"kind": "any", "tasks": [describe_task(child) for child in task.spec["tasks"]]}
    return {"kind": task.kind}


def untaken_events(recorded: Any) -> list[tuple[str, Any]]:
    """The events raised to a recorded orchestration that its history shows it never took: per
    name, those past the number it took (an `event` task, or an event that won a `task_any`), in
    the order they were raised."""
    taken: dict[str, int] = {}
    for record in recorded.tasks:
        if record.get("kind") == "event":
            taken[record["name"]] = taken.get(record["name"], 0) + 1
        elif record.get("kind") == "any":
            child = record["tasks"][int(record["winner"])]
            if child.get("kind") == "event":
                taken[child["name"]] = taken.get(child["name"], 0) + 1
    seen: dict[str, int] = {}
    out = []
    for event in recorded.events:
        name = str(event.get("name"))
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > taken.get(name, 0):
            out.append((name, event.get("data")))
    return out


def replay_tasks(orchestrator: Callable, context: LocalContext,
                 tasks: tuple[dict[str, Any], ...]) -> tuple[Generator[Any, Any, Any], Task]:
    """Run `orchestrator` over recorded `tasks`: each task the workflow asks for must be the one
    recorded at that place (kind, activity op, timer fire time, event name, the children of a
    task_any), and gets the recorded value. Returns the generator and the first task past the
    history. NotResumable on a divergence, a recorded value the workflow cannot take, or a
    workflow that finishes inside its history. Runs no activity: replay is pure."""
    context.is_replaying = True
    generator = orchestrator(context)
    try:
        task = next(generator)
        for record in tasks:
            expected = {k: v for k, v in record.items() if k in ("kind", "name", "op", "fire_at", "tasks")}
            asked = describe_task(task)
            if asked != expected:
                raise NotResumable(f"the workflow diverges from its history at task {record['n']}: it asks for "
                                   f"{_summary(asked)} where the history holds {_summary(expected)}")
            context.clock = _parse_time(record["at"])
            task = _feed(generator, task, record)
    except StopIteration:
        raise NotResumable("the workflow finished inside its recorded history (nothing left to resume)") from None
    except NotResumable:
        generator.close()
        raise
    except Exception as exc:  # noqa: BLE001 - the workflow cannot take what was recorded
        generator.close()
        raise NotResumable(f"the workflow failed while replaying its history: {_describe(exc)}") from None
    finally:
        context.is_replaying = False
    return generator, task


def _feed(generator: Generator[Any, Any, Any], task: Task, record: dict[str, Any]) -> Any:
    if task.kind == "activity":
        if "error" in record:
            return generator.throw(replayed_error(record["error"]))
        task.result, task.is_completed = record.get("result"), True
        return generator.send(task.result)
    if task.kind == "timer":
        task.is_completed = True
        return generator.send(None)
    if task.kind == "event":
        task.result, task.is_completed = record.get("data"), True
        return generator.send(task.result)
    winner = task.spec["tasks"][int(record["winner"])]
    winner.result, winner.is_completed = record.get("result"), True
    return generator.send(winner)


def replayed_error(error: dict[str, Any]) -> Exception:
    """The recorded failure of an activity, as an exception of the same type name and message
    (the workflow words its reason from both; Durable rethrows a generic one with the message)."""
    name = re.sub(r"\W", "_", str(error.get("type") or "ActivityFailed")) or "ActivityFailed"
    return type(name, (Exception,), {})(str(error.get("message", "")))


def _summary(described: dict[str, Any]) -> str:
    kind = described.get("kind")
    if kind == "activity":
        return f"activity {described.get('op')!r}"
    if kind == "timer":
        return f"a timer firing at {described.get('fire_at')}"
    if kind == "event":
        return f"the event {described.get('name')!r}"
    if kind == "any":
        return "the first of [" + ", ".join(_summary(c) for c in described.get("tasks", [])) + "]"
    return str(kind)


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise NotResumable(f"its history holds an unreadable time {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class LocalOrchestrations:
    """ports.Orchestrations on the local driver (async like the Durable client it stands in for)."""

    def __init__(self, driver: LocalOrchestrator) -> None:
        self.driver = driver

    async def exists(self, instance_id: str) -> bool:
        return instance_id in self.driver.instances

    async def start(self, name: str, instance_id: str, input_: Any) -> None:
        self.driver.start(name, instance_id, input_)

    async def raise_event(self, instance_id: str, event: str, data: Any) -> bool:
        return self.driver.raise_event(instance_id, event, data)
