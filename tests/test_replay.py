"""The local driver's history and replay (functions/adapters/local/orchestrator.py, history.py):
a recorded orchestration is rebuilt in a new driver (as a host that restarted), fed its recorded
values, and continued live — or refused when it diverges or its history is unreadable. No
processes, tiny workflows over the driver's Durable-like context."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from functions.adapters.local.history import OrchestrationHistory
from functions.adapters.local.orchestrator import LocalOrchestrator, NotResumable
from functions.adapters.local.store import DirectoryStore


class Activities:
    """Counts the ops each driver runs; `block` holds one op until released (it is 'running')."""

    def __init__(self, history: OrchestrationHistory | None = None) -> None:
        self.ran: list[str] = []
        self.history = history
        self.block: str | None = None
        self.release = threading.Event()
        self.entered = threading.Event()
        self.seen_recorded: list[int] = []

    def __call__(self, payload):
        op = payload["op"]
        self.ran.append(op)
        if self.history is not None:  # what the history held when this op started
            self.seen_recorded.append(len(self.history.read("i-1").tasks))
        if op == "explode":
            raise KeyError("no such thing")
        if op == self.block:
            self.entered.set()
            self.release.wait(10)
        return {"op": op, "args": payload.get("args"), "tuple": (1, 2)}


def call(ctx, op, **args):
    return ctx.call_activity("act", {"op": op, "args": args})


def workflow(ctx):
    first = yield call(ctx, "one")
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(seconds=0))
    go = yield ctx.wait_for_external_event("go")
    approval = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))
    winner = yield ctx.task_any([approval, timeout])
    second = yield call(ctx, "two", go=go)
    return {"first": first, "go": go, "approved": winner == approval and approval.result, "second": second,
            "at": ctx.current_utc_datetime.isoformat()}


@pytest.fixture
def store(tmp_path):
    return DirectoryStore(tmp_path / "store")


def driver(store, orchestrator=workflow, activities=None):
    history = OrchestrationHistory(store)
    acts = activities or Activities()
    return LocalOrchestrator({"w": orchestrator}, {"act": acts}, history=history), acts, history


def wait_for(predicate, what):
    done = threading.Event()
    for _ in range(400):
        if predicate():
            return
        done.wait(0.025)
    pytest.fail(f"timed out waiting for {what}")


def test_a_stopped_orchestration_is_replayed_in_a_new_driver_and_continues_from_its_last_step(store):
    first, acts1, history = driver(store)
    first.start("w", "i-1", {"n": 1})
    first.raise_event("i-1", "go", {"by": "me"})
    wait_for(lambda: len(history.read("i-1").tasks) == 3, "three recorded tasks")
    first.stop(timeout=5)  # waiting in task_any for the approval: interrupted, its history kept
    assert first.instances["i-1"].status == "Interrupted"
    recorded = history.read("i-1")
    assert [t["kind"] for t in recorded.tasks] == ["activity", "timer", "event"]
    assert recorded.tasks[0]["op"] == "one" and recorded.tasks[2]["data"] == {"by": "me"}

    second, acts2, _ = driver(store)
    replayed = second.replay("i-1")
    assert replayed.completed == 3 and replayed.task.kind == "any"
    second.resume(replayed)
    second.raise_event("i-1", "approval", {"approved": True})
    instance = second.wait("i-1", 10)
    assert instance.status == "Completed", instance.error
    assert acts2.ran == ["two"]  # "one" was recorded: replayed, not run again
    out = instance.output
    assert out["first"] == {"op": "one", "args": {}, "tuple": [1, 2]}  # as recorded (JSON), as Durable feeds it
    assert out["go"] == {"by": "me"} and out["approved"] == {"approved": True}
    assert out["second"]["args"] == {"go": {"by": "me"}}
    assert history.instances() == []  # completed: its history is removed


def test_each_completed_task_is_recorded_before_the_workflow_moves_on(store):
    history = OrchestrationHistory(store)
    acts = Activities(history)

    def two_steps(ctx):
        yield call(ctx, "one")
        yield call(ctx, "two")
        yield call(ctx, "three")

    d = LocalOrchestrator({"w": two_steps}, {"act": acts}, history=history)
    d.start("w", "i-1", None)
    assert d.wait("i-1", 10).status == "Completed"
    assert acts.seen_recorded == [0, 1, 2]  # op n started only once op n-1's record was written


def test_an_activity_that_was_running_when_the_process_died_runs_again(store):
    def steps(ctx):
        a = yield call(ctx, "one")
        b = yield call(ctx, "slow")
        return [a["op"], b["op"]]

    first, acts1, history = driver(store, steps)
    acts1.block = "slow"
    first.start("w", "i-1", None)
    assert acts1.entered.wait(10)
    # the process dies here: "slow" is running, unrecorded (no stop: a dead process records nothing more)
    assert [t["op"] for t in history.read("i-1").tasks] == ["one"]

    second, acts2, _ = driver(store, steps)
    second.resume(second.replay("i-1"))
    assert second.wait("i-1", 10).output == ["one", "slow"]
    assert acts2.ran == ["slow"]  # at-least-once, as Durable: the unrecorded activity runs again
    acts1.release.set()


def test_a_timer_whose_fire_time_passed_while_nobody_ran_fires_at_once(store):
    def baking(ctx):
        yield call(ctx, "traffic")
        yield ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))
        return (yield call(ctx, "health"))["op"]

    history = OrchestrationHistory(store)
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    history.begin("i-1", "w", None, two_hours_ago.isoformat())
    history.append("i-1", 1, {"kind": "activity", "name": "act", "op": "traffic", "result": {"op": "traffic"},
                              "at": two_hours_ago.isoformat()})
    d, acts, _ = driver(store, baking)
    replayed = d.replay("i-1")
    assert replayed.task.kind == "timer"
    assert replayed.task.spec["fire_at"] == two_hours_ago + timedelta(hours=1)  # from the recorded time
    d.resume(replayed)
    assert d.wait("i-1", 30).output == "health"  # a one-hour timer: it can only finish if it fired at once


def test_a_workflow_that_asks_for_another_task_than_its_history_holds_is_not_resumed(store):
    first, _, history = driver(store, lambda ctx: (yield call(ctx, "one")) and (yield call(ctx, "two")))
    history.begin("i-1", "w", None, datetime.now(timezone.utc).isoformat())
    history.append("i-1", 1, {"kind": "activity", "name": "act", "op": "uno", "result": {},
                              "at": datetime.now(timezone.utc).isoformat()})
    with pytest.raises(NotResumable, match=r"diverges from its history at task 1: it asks for activity 'one' "
                                           r"where the history holds activity 'uno'"):
        first.replay("i-1")


def test_a_changed_timer_or_event_name_is_a_divergence_too(store):
    def waits(ctx):
        yield ctx.wait_for_external_event("approval")
        yield ctx.create_timer(ctx.current_utc_datetime + timedelta(seconds=5))

    d, _, history = driver(store, waits)
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    history.begin("i-1", "w", None, started.isoformat())
    history.append("i-1", 1, {"kind": "event", "name": "approval", "data": True, "at": started.isoformat()})
    history.append("i-1", 2, {"kind": "timer", "fire_at": (started + timedelta(seconds=60)).isoformat(),
                              "at": started.isoformat()})
    with pytest.raises(NotResumable, match="at task 2: it asks for a timer firing at 2026-01-01T00:00:05"):
        d.replay("i-1")


def test_a_recorded_activity_failure_is_thrown_into_the_workflow_again(store):
    def failing(ctx):
        try:
            yield call(ctx, "explode")
        except Exception as exc:  # noqa: BLE001 - the workflow words its reason from the type and message
            reason = f"{type(exc).__name__}: {exc}"
        yield call(ctx, "audit", reason=reason)
        return reason

    first, acts1, history = driver(store, failing)
    acts1.block = "audit"
    first.start("w", "i-1", None)
    assert acts1.entered.wait(10)
    assert history.read("i-1").tasks[0]["error"] == {"type": "KeyError", "message": "'no such thing'"}

    second, acts2, _ = driver(store, failing)
    second.resume(second.replay("i-1"))
    assert second.wait("i-1", 10).output == "KeyError: 'no such thing'"
    assert acts2.ran == ["audit"]
    acts1.release.set()


def test_task_any_replays_the_child_that_won(store):
    def gate(ctx):
        approval = ctx.wait_for_external_event("approval")
        timeout = ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))
        winner = yield ctx.task_any([approval, timeout])
        yield call(ctx, "after")
        return {"approved": winner == approval, "data": approval.result}

    first, acts1, history = driver(store, gate)
    acts1.block = "after"
    first.start("w", "i-1", None)
    first.raise_event("i-1", "approval", {"approved": True, "by": "ana"})
    assert acts1.entered.wait(10)
    any_record = history.read("i-1").tasks[0]
    assert any_record["kind"] == "any" and any_record["winner"] == 0
    assert [c["kind"] for c in any_record["tasks"]] == ["event", "timer"]

    second, _, _ = driver(store, gate)
    second.resume(second.replay("i-1"))
    assert second.wait("i-1", 10).output == {"approved": True, "data": {"approved": True, "by": "ana"}}
    acts1.release.set()


@pytest.mark.parametrize("damage, reason", [
    ("gap", "a gap in the history"),
    ("newer", "written by a newer modelops"),
    ("corrupt", "is not JSON"),
    ("missing", "no history recorded"),
])
def test_an_unreadable_history_is_not_resumed(store, damage, reason):
    d, _, history = driver(store)
    now = datetime.now(timezone.utc).isoformat()
    if damage != "missing":
        history.begin("i-1", "w", None, now)
        history.append("i-1", 1, {"kind": "activity", "name": "act", "op": "one", "result": {}, "at": now})
    if damage == "gap":
        history.append("i-1", 3, {"kind": "timer", "fire_at": now, "at": now})
    elif damage == "newer":
        store.put("orchestrations/i-1/tasks/000002.json",
                  json.dumps({"n": 2, "kind": "timer", "schema_version": 99}).encode())
    elif damage == "corrupt":
        store.put("orchestrations/i-1/tasks/000002.json", b"{half")
    with pytest.raises(NotResumable, match=reason):
        d.replay("i-1")


def test_the_clock_is_the_recorded_time_of_the_last_completed_task(store):
    """Durable's current_utc_datetime is deterministic; so is the driver's, live and on replay."""
    def stamps(ctx):
        seen = [ctx.current_utc_datetime]
        yield call(ctx, "one")
        seen.append(ctx.current_utc_datetime)
        yield call(ctx, "two")
        return [t.isoformat() for t in seen]

    d, acts, history = driver(store, stamps)
    acts.block = "two"
    d.start("w", "i-1", None)
    assert acts.entered.wait(10)
    recorded = history.read("i-1")
    replayed_clock = []

    def watching(ctx):
        out = yield from stamps(ctx)
        replayed_clock.append(out)
        return out

    other, _, _ = driver(store, watching)
    replayed = other.replay("i-1")
    assert replayed.instance.context.current_utc_datetime.isoformat() == recorded.tasks[0]["at"]
    other.resume(replayed)
    assert other.wait("i-1", 10).output == [recorded.started, recorded.tasks[0]["at"]]
    acts.release.set()


def test_a_history_that_cannot_be_written_stops_the_orchestration_unrecorded(store):
    class Full(DirectoryStore):
        def put(self, key, data, **kw):
            if "/tasks/" in key:
                raise OSError(28, "No space left on device")
            return super().put(key, data, **kw)

    full = Full(store.root)
    acts = Activities()
    d = LocalOrchestrator({"w": workflow}, {"act": acts}, history=OrchestrationHistory(full))
    d.start("w", "i-1", None)
    instance = d.wait("i-1", 10)
    assert instance.status == "Interrupted" and "could not record its history" in instance.error
    assert acts.ran == ["one"]  # nothing ran after the value it could not record



def test_an_activity_failing_while_the_driver_stops_is_not_recorded_and_runs_again(store):
    """Stopping closes the platform under an activity still running: its failure is not the
    activity's answer, so it stays unrecorded (the next host runs it again)."""
    started, release = threading.Event(), threading.Event()

    def closing(payload):
        if payload["op"] == "one":
            return {}
        started.set()
        release.wait(10)
        raise RuntimeError("the local endpoints are closed")

    def steps(ctx):
        yield call(ctx, "one")
        yield call(ctx, "slow")

    history = OrchestrationHistory(store)
    d = LocalOrchestrator({"w": steps}, {"act": closing}, history=history)
    d.start("w", "i-1", None)
    assert started.wait(10)
    stopping = threading.Thread(target=d.stop, kwargs={"timeout": 10})
    stopping.start()
    wait_for(lambda: d._stopping.is_set(), "the driver to be stopping")
    release.set()
    stopping.join(10)
    assert d.instances["i-1"].status == "Interrupted"
    assert [t["op"] for t in history.read("i-1").tasks] == ["one"]


def test_an_event_raised_but_not_yet_taken_when_the_host_died_is_delivered_after_the_resume(store):
    """An approval or control accepted (202) just before the host died is not lost: the history keeps
    every raised event, and the replay re-raises those the workflow never took — only those."""
    def late(ctx):
        first = yield ctx.wait_for_external_event("go")
        yield call(ctx, "slow")
        second = yield ctx.wait_for_external_event("go")
        return [first, second]

    first, acts1, history = driver(store, late)
    acts1.block = "slow"
    first.start("w", "i-1", None)
    assert first.raise_event("i-1", "go", {"n": 1})
    assert acts1.entered.wait(10)  # go #1 taken (recorded); "slow" is running
    assert first.raise_event("i-1", "go", {"n": 2})  # accepted while the workflow cannot take it
    assert [e["data"] for e in history.read("i-1").events] == [{"n": 1}, {"n": 2}]
    # the host dies here: the second driver starts from the store alone

    second, acts2, _ = driver(store, late)
    second.resume(second.replay("i-1"))
    instance = second.wait("i-1", 10)
    assert instance.status == "Completed", instance.error
    assert instance.output == [{"n": 1}, {"n": 2}]  # go #2 delivered, go #1 not delivered twice
    assert acts2.ran == ["slow"]
    acts1.release.set()
