"""A small in-process driver for Durable-style orchestrator generators (the local platform).

It implements the subset of DurableOrchestrationContext the workflow uses — call_activity,
create_timer, wait_for_external_event, task_any, current_utc_datetime, get_input, instance_id,
set_custom_status — and runs each orchestration in a thread. No replay is needed: the driver keeps
the generator alive, so the same workflow code runs here and under Durable Functions.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable


class Interrupted(Exception):
    """The driver is stopping: the orchestration ends where it is (no further activity runs)."""


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
    def __init__(self, instance_id: str, input_: Any, events: "EventBox") -> None:
        self.instance_id = instance_id
        self._input = input_
        self._events = events
        self.custom_status: Any = None

    @property
    def current_utc_datetime(self) -> datetime:
        return datetime.now(timezone.utc)

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


class LocalOrchestrator:
    """Starts orchestrations by instance id (idempotent) and runs them in daemon threads."""

    def __init__(self, orchestrators: dict[str, Callable], activities: dict[str, Callable[[Any], Any]]) -> None:
        self.orchestrators = orchestrators
        self.activities = activities
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
        instance.thread = threading.Thread(target=self._run, args=(instance,), name=f"orch-{instance_id}",
                                           daemon=True)
        instance.thread.start()
        return True

    def raise_event(self, instance_id: str, name: str, data: Any) -> bool:
        instance = self.instances.get(instance_id)
        if instance is None or instance.done.is_set():
            return False
        instance.events.raise_event(name, data)
        return True

    def running(self) -> list[Instance]:
        return [i for i in list(self.instances.values()) if not i.done.is_set()]

    def stop(self, timeout: float = 30.0) -> list[Instance]:
        """Stop every orchestration at its next step (an activity already running finishes first)
        and return the ones that were interrupted. Their records still say `running`: the owner
        reconciles them (functions/domain/reconcile.py) once their activities have stopped."""
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

    def _run(self, instance: Instance) -> None:
        context = LocalContext(instance.instance_id, instance.input, instance.events)
        instance.context = context
        instance.status = "Running"
        generator = self.orchestrators[instance.name](context)
        try:
            task = next(generator)
            while True:
                if self._stopping.is_set():
                    raise Interrupted("stopped before its next step")
                try:
                    value = self._resolve(task, instance)
                except Interrupted:
                    raise
                except Exception as exc:  # activity failures are thrown into the orchestrator, as Durable does
                    task = generator.throw(exc)
                else:
                    task = generator.send(value)
        except Interrupted as exc:
            generator.close()  # GeneratorExit inside: the workflow's `except Exception` does not run
            instance.error = str(exc)
            instance.status = "Interrupted"
        except StopIteration as stop:
            instance.output = stop.value
            instance.status = "Completed"
        except Exception as exc:
            instance.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            instance.status = "Failed"
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
