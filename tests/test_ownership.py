"""One owner per local home: a live owner is never displaced, a dead one (even behind a recycled
pid) is, and of processes that try at the same moment exactly one wins."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from functions.adapters.local import ownership
from functions.adapters.local.ownership import HomeBusy, HomeLease, Owner, is_alive, process_start_ticks, read_owner


def _try_acquire(home: str, barrier, results, done) -> None:
    read = ownership.read_owner

    def slow_read(path):  # widen the read → write window: every contender reads before any writes
        found = read(path)
        time.sleep(0.2)
        return found

    ownership.read_owner = slow_read  # this forked child only
    barrier.wait()  # every process released together: only the lock can then pick one owner
    try:
        HomeLease(home).acquire()
        results.put(("won", os.getpid()))
        done.wait(30)  # alive (so still the owner) until every contender has looked
    except HomeBusy as exc:
        results.put(("busy", exc.owner.pid))


def test_of_processes_taking_a_home_at_once_exactly_one_wins(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, results, done = context.Barrier(8), context.Queue(), context.Event()
    workers = [context.Process(target=_try_acquire, args=(str(tmp_path), barrier, results, done)) for _ in range(8)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=30) for _ in workers]
    done.set()
    for worker in workers:
        worker.join(30)
    won = [pid for kind, pid in outcomes if kind == "won"]
    assert len(won) == 1, outcomes
    assert all(pid == won[0] for kind, pid in outcomes if kind == "busy")  # every loser names the winner
    assert read_owner(tmp_path).pid == won[0]


def test_a_live_owner_is_refused_with_its_name_and_a_dead_one_is_replaced(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = Owner(pid=sleeper.pid, start_ticks=process_start_ticks(sleeper.pid) or 0, command="modelops register",
                     host=os.uname().nodename, since="2026-12-01T10:00:00+00:00")
        (tmp_path / ownership.OWNER_FILE).write_text(json.dumps(live.to_dict()))
        with pytest.raises(HomeBusy, match=f"in use by process {sleeper.pid} \\(modelops register"):
            HomeLease(tmp_path).acquire()
        assert read_owner(tmp_path).pid == sleeper.pid  # untouched
    finally:
        sleeper.kill()
        sleeper.wait()
    lease = HomeLease(tmp_path)
    previous = lease.acquire()  # the owner died without releasing: its home is taken, and it is named
    assert previous is not None and previous.pid == sleeper.pid
    assert read_owner(tmp_path).pid == os.getpid()
    lease.release()
    assert read_owner(tmp_path) is None


def test_a_recycled_pid_is_not_the_owner(tmp_path):
    me = Owner.current()
    # same pid as a live process, another start time: the owner that wrote it is gone
    recycled = Owner(pid=os.getppid(), start_ticks=(process_start_ticks(os.getppid()) or 0) + 12345,
                     host=os.uname().nodename)
    assert not is_alive(recycled)
    assert is_alive(Owner(pid=me.pid, start_ticks=me.start_ticks, host=me.host))


def test_a_zombie_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while process_start_ticks(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # exited but not reaped yet: a zombie
    assert process_start_ticks(child.pid) is None
    child.wait()


def test_one_process_opens_a_home_once(tmp_path):
    lease = HomeLease(tmp_path)
    lease.acquire()
    try:
        with pytest.raises(HomeBusy):
            HomeLease(tmp_path).acquire()
    finally:
        lease.release()


def test_release_never_removes_another_owners_claim(tmp_path):
    lease = HomeLease(tmp_path)
    lease.acquire()
    other = Owner(pid=1, start_ticks=process_start_ticks(1) or 0, host=os.uname().nodename)
    (tmp_path / ownership.OWNER_FILE).write_text(json.dumps(other.to_dict()))  # taken over meanwhile
    lease.release()
    assert read_owner(tmp_path).pid == 1


def test_the_owner_keeps_a_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(ownership, "HEARTBEAT_SECONDS", 0.05)
    lease = HomeLease(tmp_path)
    lease.acquire()
    try:
        first = read_owner(tmp_path).heartbeat
        deadline = time.monotonic() + 5
        while read_owner(tmp_path).heartbeat == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert read_owner(tmp_path).heartbeat > first
    finally:
        lease.release()
