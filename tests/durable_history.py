"""Host-shaped Durable Functions histories and a small stand-in for the host's replay loop.

An out-of-process (Python) orchestrator never keeps a generator alive between steps: for every
step, the Functions host sends the *whole* history as JSON, the azure-functions-durable library
(`Orchestrator.create(fn)` → `handle(context)`, the function the Python worker calls) re-runs the
generator from the start against it, and returns a JSON state whose `actions` lists every task the
orchestrator has scheduled so far. The host then replays those actions against the history and
schedules the new ones. `ReplayHost` does that loop in-process, so a workflow that is not
deterministic fails a local test instead of a production rollout.

What the shapes were checked against:

* the library's parser — `DurableOrchestrationContext(**json)` (`history`, `input`, `instanceId`,
  `isReplaying`, `parentInstanceId`, `upperSchemaVersion`, `upperSchemaVersionNew`,
  `maximumShortTimerDuration`, `longRunningTimerIntervalDuration`), `HistoryEvent(EventType,
  EventId, IsPlayed, Timestamp, **rest)` and the attributes `TaskOrchestrationExecutor` reads
  (`TaskScheduledId`, `TimerId`, `Name`, `Input`, `Result`, `Reason`, `Details`), azure-functions-
  durable 1.7.0 in .venv;
* a payload recorded from the host in Azure/azure-functions-durable-python,
  tests/models/test_DurableOrchestrationContext.py (`"EventType":12,"EventId":-1,"IsPlayed":false,
  "Timestamp":"2019-12-08T23:18:41.3240927Z"`; ExecutionStarted with `OrchestrationInstance`
  {InstanceId, ExecutionId}, `ParentInstance`, `Name`, `Version`, `Input` as a JSON *string*,
  `Tags`): EventType is the integer of DurableTask.Core's EventType, field names are PascalCase,
  timestamps carry .NET's 7 fractional digits;
* the host side, Azure/azure-functions-durable-extension:
  Bindings/OrchestrationTriggerAttributeBindingProvider.cs (`OrchestrationContextToString` builds
  `history` = JArray of DurableTask.Core HistoryEvents, `input` = the input as JSON text,
  `instanceId`, `isReplaying`, `parentInstanceId`, `upperSchemaVersion` = V2 (1),
  `upperSchemaVersionNew`, the timer durations as .NET TimeSpans) and
  Listener/OutOfProcOrchestrationShim.cs (schema V2/V3: `actions` is `[[...]]`, one flat list,
  replayed in order through CallActivityAsync / CreateTimer / WaitForExternalEvent; WhenAny's
  `compoundActions` in order);
* DurableTask.Core TaskOrchestrationContext (`HandleTaskScheduledEvent`,
  `HandleTimerCreatedEvent`): sequence numbers count activities and timers in scheduling order
  (external-event waits take none); on replay the host throws NonDeterministicOrchestrationException
  when the action at a recorded sequence number is missing, of another kind, or (activities) has
  another name (case-insensitive). It does not compare inputs or timer fire times, and the Python
  library itself checks nothing (it matches completions to tasks by sequence number only). So the
  check here has two rules: "host" — exactly what Azure would refuse — and "strict" — the same
  inputs and fire times on every replay, which Azure would not notice but which is the
  determinism the workflow promises (with one dispatcher activity, `rollout_activity`, every
  activity has the same name, so the host rule alone cannot tell one op from another).
  DurableTask.Core's executor marks past events IsPlayed after processing them, except
  OrchestratorStarted, which it skips; the payloads here do the same.
"""

from __future__ import annotations

import copy
import json
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import azure.functions as func
from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as ET

# --- history events, as the host serialises DurableTask.Core's HistoryEvent ------------------------


def dotnet_timestamp(at: datetime) -> str:
    """2019-12-08T23:18:41.3240927Z: UTC, seven fractional digits, as Newtonsoft writes DateTime."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _event(kind: ET, at: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": int(kind), "EventId": event_id, "IsPlayed": False, "Timestamp": dotnet_timestamp(at),
            **fields}


def orchestrator_started(at: datetime) -> dict:
    return _event(ET.ORCHESTRATOR_STARTED, at)


def orchestrator_completed(at: datetime) -> dict:
    return _event(ET.ORCHESTRATOR_COMPLETED, at)


def execution_started(instance_id: str, name: str, input_json: str, at: datetime) -> dict:
    return _event(ET.EXECUTION_STARTED, at, OrchestrationInstance={"InstanceId": instance_id,
                                                                    "ExecutionId": "0" * 31 + "1"},
                  ParentInstance=None, Name=name, Version="", Input=input_json, Tags=None)


def execution_completed(status: str, result_json: str | None, at: datetime) -> dict:
    return _event(ET.EXECUTION_COMPLETED, at, OrchestrationStatus=status, Result=result_json)


def task_scheduled(seq: int, name: str, input_json: str, at: datetime) -> dict:
    return _event(ET.TASK_SCHEDULED, at, seq, Name=name, Version="", Input=input_json)


def task_completed(seq: int, result_json: str, at: datetime) -> dict:
    return _event(ET.TASK_COMPLETED, at, TaskScheduledId=seq, Result=result_json)


def task_failed(seq: int, reason: str, details: str, at: datetime) -> dict:
    return _event(ET.TASK_FAILED, at, TaskScheduledId=seq, Reason=reason, Details=details)


def timer_created(seq: int, fire_at: str, at: datetime) -> dict:
    return _event(ET.TIMER_CREATED, at, seq, FireAt=fire_at)


def timer_fired(seq: int, fire_at: str, at: datetime) -> dict:
    return _event(ET.TIMER_FIRED, at, TimerId=seq, FireAt=fire_at)


def event_raised(name: str, input_json: str, at: datetime) -> dict:
    return _event(ET.EVENT_RAISED, at, Name=name, Input=input_json)


def host_payload(history: list[dict], instance_id: str, input_json: str, new_from: int) -> str:
    """The JSON the host hands the orchestrator: events before `new_from` were played in an earlier
    episode (IsPlayed, except OrchestratorStarted, which DurableTask.Core never marks)."""
    events = [{**event, "IsPlayed": index < new_from and event["EventType"] != int(ET.ORCHESTRATOR_STARTED)}
              for index, event in enumerate(history)]
    return json.dumps({
        "history": events, "input": input_json, "instanceId": instance_id, "isReplaying": False,
        "parentInstanceId": None, "upperSchemaVersion": 1, "upperSchemaVersionNew": 2,
        "maximumShortTimerDuration": "6.00:00:00", "longRunningTimerIntervalDuration": "3.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
    })


# --- the orchestrator's answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scheduled:
    """One sequence-numbered action (what DurableTask.Core records as TaskScheduled/TimerCreated)."""

    seq: int
    kind: str  # "activity" | "timer"
    name: str = ""  # activity function name
    input: Any = None  # activity input, parsed
    fire_at: str = ""  # timer
    canceled: bool = False


def parse_actions(state: dict) -> tuple[list[Scheduled], list[str]]:
    """The flat action list of schema V2/V3 (`[[...]]`) as sequence-numbered tasks, plus the names of
    the external events waited for (they take no sequence number)."""
    actions = state["actions"]
    if len(actions) != 1:
        raise AssertionError(f"schema V2+ expects one action list, got {len(actions)}: {actions}")
    scheduled: list[Scheduled] = []
    waits: list[str] = []

    def walk(action: dict) -> None:
        kind = action["actionType"]
        if kind in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
            for child in action["compoundActions"]:
                walk(child)
        elif kind == ActionType.CALL_ACTIVITY:
            scheduled.append(Scheduled(len(scheduled), "activity", action["functionName"],
                                       json.loads(action["input"])))
        elif kind == ActionType.CREATE_TIMER:
            scheduled.append(Scheduled(len(scheduled), "timer", fire_at=action["fireAt"],
                                       canceled=bool(action.get("isCanceled"))))
        elif kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            waits.append(action["externalEventName"])
        else:
            raise AssertionError(f"action type {kind} is not used by this workflow: {action}")

    for action in actions[0]:
        walk(action)
    return scheduled, waits


def recorded(history: list[dict]) -> list[Scheduled]:
    """The tasks a previous execution scheduled, from TaskScheduled/TimerCreated, by sequence number."""
    out = []
    for event in history:
        if event["EventType"] == ET.TASK_SCHEDULED:
            out.append(Scheduled(event["EventId"], "activity", event["Name"], json.loads(event["Input"])))
        elif event["EventType"] == ET.TIMER_CREATED:
            out.append(Scheduled(event["EventId"], "timer", fire_at=event["FireAt"]))
    out.sort(key=lambda s: s.seq)
    assert [s.seq for s in out] == list(range(len(out))), "sequence numbers must be dense"
    return out


@dataclass(frozen=True)
class Mismatch:
    seq: int
    rule: str  # "host": Azure refuses it (NonDeterministicOrchestrationException); "strict": same inputs
    message: str


def replay_mismatches(history: list[dict], replayed: list[Scheduled]) -> list[Mismatch]:
    """Compare what a replay scheduled with what the history says was scheduled before."""
    out: list[Mismatch] = []
    for old in recorded(history):
        if old.seq >= len(replayed):
            out.append(Mismatch(old.seq, "host", f"a previous execution scheduled {old.kind} #{old.seq} "
                                                 f"({old.name or old.fire_at}) but the replay has not"))
            continue
        new = replayed[old.seq]
        if new.kind != old.kind:
            out.append(Mismatch(old.seq, "host", f"#{old.seq} was a {old.kind}, the replay produced a {new.kind}"))
        elif old.kind == "activity" and new.name.lower() != old.name.lower():
            out.append(Mismatch(old.seq, "host", f"#{old.seq} was activity {old.name!r}, the replay "
                                                 f"scheduled {new.name!r}"))
        elif old.kind == "activity" and new.input != old.input:
            out.append(Mismatch(old.seq, "strict", f"#{old.seq} {old.name} input differs on replay: "
                                                   f"{_diff(old.input, new.input)}"))
        elif old.kind == "timer" and new.fire_at != old.fire_at:
            out.append(Mismatch(old.seq, "strict", f"#{old.seq} timer fire time differs on replay: "
                                                   f"{old.fire_at} then {new.fire_at}"))
    return out


def _diff(old: Any, new: Any, path: str = "") -> str:
    """The shallowest difference (e.g. `.op` before anything under `.args`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        differing = [k for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]
        differing.sort(key=lambda k: isinstance(old.get(k), dict) and isinstance(new.get(k), dict))
        if differing:
            key = differing[0]
            return _diff(old.get(key), new.get(key), f"{path}.{key}")
    return f"{path or '<root>'}: {old!r} then {new!r}"


class NonDeterminismDetected(AssertionError):
    def __init__(self, episode: int, mismatches: list[Mismatch]) -> None:
        self.episode, self.mismatches = episode, mismatches
        super().__init__(f"replay {episode} disagrees with the history: "
                         + "; ".join(f"[{m.rule}] {m.message}" for m in mismatches))

    @property
    def rules(self) -> set[str]:
        return {m.rule for m in self.mismatches}


# --- the host loop -------------------------------------------------------------------------------


@dataclass
class Episode:
    index: int
    at: datetime  # this episode's OrchestratorStarted: the orchestrator's current_utc_datetime
    new: list[Scheduled]  # tasks first scheduled in this episode
    waits: list[str]
    state: dict
    delivered: str = ""  # what woke the orchestrator: "start", "#3 completed", "#4 fired", "event approval"

    @property
    def done(self) -> bool:
        return bool(self.state.get("isDone")) or bool(self.state.get("error"))


@dataclass
class ReplayHost:
    """Plays an orchestration step by step the way the host does: every step calls `orchestrator`
    (a worker entry point: `Orchestrator.create(fn)`) with the full history and checks the replay.

    `activity(name, input)` runs a scheduled activity once (its return value is the TaskCompleted
    result, its exception a TaskFailed); activities take `activity_seconds` of orchestration time;
    timers fire at their fire time; `raise_event` queues an external event, delivered before any
    timer once the orchestrator waits for it."""

    orchestrator: Callable[[Any], str]
    name: str
    instance_id: str
    input: Any
    activity: Callable[[str, Any], Any]
    start: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    activity_seconds: float = 2.0
    strict: bool = True  # also refuse replays whose inputs / fire times differ (Azure would not notice)
    history: list[dict] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    executed: list[Scheduled] = field(default_factory=list)  # every activity run, in order
    events: list[tuple[str, Any]] = field(default_factory=list)
    library_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.input_json = json.dumps(self.input)
        self.clock = self.start
        self.history.append(orchestrator_started(self.clock))
        self.history.append(execution_started(self.instance_id, self.name, self.input_json,
                                              self.clock - timedelta(milliseconds=400)))
        self._new_from, self._delivered = 0, "start"

    def raise_event(self, name: str, data: Any) -> None:
        self.events.append((name, data))

    # one episode: call the orchestrator with the whole history, check, record its new actions
    def step(self) -> Episode:
        if self.episodes and self.episodes[-1].done:
            raise AssertionError("the orchestration has completed")
        body = host_payload(self.history, self.instance_id, self.input_json, self._new_from)
        state = self._invoke(body)
        replayed, waits = parse_actions(state)
        mismatches = [m for m in replay_mismatches(self.history, replayed) if self.strict or m.rule == "host"]
        if mismatches:
            raise NonDeterminismDetected(len(self.episodes), mismatches)
        before = len(recorded(self.history))
        new = replayed[before:]
        at = self.clock
        for task in new:
            if task.kind == "activity":
                self.history.append(task_scheduled(task.seq, task.name, json.dumps(task.input), at))
            else:
                self.history.append(timer_created(task.seq, task.fire_at, at))
        self.history.append(orchestrator_completed(at + timedelta(milliseconds=5)))
        episode = Episode(len(self.episodes), self._episode_time(), new, waits, state, self._delivered)
        self.episodes.append(episode)
        if episode.done:
            status = "Failed" if state.get("error") else "Completed"
            self.history.append(execution_completed(status, json.dumps(state.get("output")), at))
        else:
            self._deliver_next(replayed, waits)
        return episode

    def run(self, max_episodes: int = 500) -> Episode:
        for _ in range(max_episodes):
            episode = self.step()
            if episode.done:
                return episode
        raise AssertionError(f"not done after {max_episodes} episodes")

    # --- internals -----------------------------------------------------------------------------

    def _invoke(self, body: str) -> dict:
        try:
            return json.loads(self.orchestrator(func.OrchestrationContext(body)))
        except Exception as exc:  # the library raises for an orchestrator that threw, with its state
            text = str(exc)
            marker = "$OutOfProcData$:"
            if marker not in text:
                raise
            self.library_errors.append(text.split("\n\n" + marker)[0])
            return json.loads(text.split(marker, 1)[1])

    def _episode_time(self) -> datetime:
        started = [e for e in self.history if e["EventType"] == ET.ORCHESTRATOR_STARTED][-1]
        return datetime.strptime(started["Timestamp"][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)

    def _open(self, replayed: list[Scheduled]) -> list[Scheduled]:
        done = set()
        for event in self.history:
            if event["EventType"] in (ET.TASK_COMPLETED, ET.TASK_FAILED):
                done.add(event["TaskScheduledId"])
            elif event["EventType"] == ET.TIMER_FIRED:
                done.add(event["TimerId"])
        return [t for t in replayed if t.seq not in done and not t.canceled]

    def _deliver_next(self, replayed: list[Scheduled], waits: list[str]) -> None:
        open_tasks = self._open(replayed)
        activities = [t for t in open_tasks if t.kind == "activity"]
        timers = sorted((t for t in open_tasks if t.kind == "timer"), key=lambda t: t.fire_at)
        # a wait is satisfied by one EventRaised of its name: waits and events counted per name (the
        # workflow's control wait is one task per control, reused across races until one arrives)
        raised = Counter(e["Name"] for e in self.history if e["EventType"] == ET.EVENT_RAISED)
        waiting = [name for name, count in Counter(waits).items() if count > raised[name]]
        queued = [(n, d) for (n, d) in self.events if n in waiting]
        new_events: list[dict] = []
        if activities:
            task = activities[0]
            self.executed.append(task)
            self.clock += timedelta(seconds=self.activity_seconds)
            try:
                result = self.activity(task.name, copy.deepcopy(task.input))
            except Exception as exc:
                details = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                new_events.append(task_failed(task.seq, f"{type(exc).__name__}: {exc}", details, self.clock))
                self._delivered = f"#{task.seq} failed"
            else:
                new_events.append(task_completed(task.seq, json.dumps(result), self.clock))
                self._delivered = f"#{task.seq} completed"
        elif queued:
            name, data = queued[0]
            self.events.remove(queued[0])
            self.clock += timedelta(seconds=1)
            new_events.append(event_raised(name, json.dumps(data), self.clock))
            self._delivered = f"event {name}"
        elif timers:
            task = timers[0]
            fire_at = datetime.strptime(task.fire_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            self.clock = max(self.clock, fire_at) + timedelta(milliseconds=20)
            new_events.append(timer_fired(task.seq, task.fire_at, self.clock))
            self._delivered = f"#{task.seq} fired"
        else:
            raise AssertionError(f"the orchestration waits for nothing the host can deliver (waits {waiting})")
        self.clock += timedelta(milliseconds=50)
        self._new_from = len(self.history)
        self.history.append(orchestrator_started(self.clock))
        self.history.extend(new_events)
