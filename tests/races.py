"""The race harness: stage a real race on one store record (see RaceStore), shared by the tests
that make concurrency claims (tests/test_races.py, test_retry.py, test_triggers.py, ...)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from functions.ports import Conflict, Store

T = TypeVar("T")


class RaceNotStaged(AssertionError):
    """The staged race did not happen: fewer contenders than expected reached the contended write."""


class RaceStore:
    """A Store wrapper (any implementation) that stages a race on one record.

    The first `contenders * rounds` writes to keys starting with `prefix` wait at a
    `threading.Barrier(contenders)` just before they reach the store, so in each round every
    contender has read the state and decided before any of them writes: only the store's
    conditional write (if_absent / etag) can then pick the winner. Later writes to the prefix pass
    straight through — a loser re-reads and may write again, and must not wait for anyone.

    `rounds` > 1 is for code where every contender is certain to write the record several times in
    lockstep (a first export run: the watermark's create, then its first advance). A contender
    that never arrives breaks the barrier after `timeout` s: `RaceNotStaged` is raised in the
    waiting workers and kept in `failures` (in case the code under test swallows it), so the test
    fails with the reason instead of hanging. `won`/`lost` count the outcomes of the writes that
    waited.
    """

    def __init__(self, inner: Store, prefix: str, contenders: int, *, rounds: int = 1,
                 timeout: float = 10.0) -> None:
        self.inner = inner
        self.prefix = prefix
        self.contenders = contenders
        self.timeout = timeout
        self.barrier = threading.Barrier(contenders, timeout=timeout)
        self._lock = threading.Lock()
        self._to_hold = contenders * rounds
        self.waited = 0
        self.won = 0
        self.lost = 0
        self.failures: list[str] = []

    def _hold(self) -> bool:
        with self._lock:
            if self._to_hold == 0:
                return False
            self._to_hold -= 1
            self.waited += 1
            return True

    def put(self, key: str, data: bytes, *, if_absent: bool = False, etag: str | None = None) -> str:
        if not (key.startswith(self.prefix) and self._hold()):
            return self.inner.put(key, data, if_absent=if_absent, etag=etag)
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            message = (f"race on {self.prefix!r} not staged: {self.contenders} contenders were expected at the "
                       f"write but the barrier broke (timeout {self.timeout} s; {self.waited} of "
                       f"{self.waited + self._to_hold} writes held so far): a contender took a path without this "
                       f"write, or is stuck before it")
            with self._lock:
                self.failures.append(message)
            raise RaceNotStaged(message) from None
        try:
            etag_out = self.inner.put(key, data, if_absent=if_absent, etag=etag)
        except Conflict:
            with self._lock:
                self.lost += 1
            raise
        with self._lock:
            self.won += 1
        return etag_out

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self.inner.get(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def run_together(n: int, work: Callable[[int], T], race: RaceStore, *, timeout: float = 120.0) -> list[T]:
    """work(0) … work(n-1) in n threads released together by a start barrier; results in order.

    A harness failure (`race.failures`) is reported first; otherwise a worker's exception is
    re-raised here; a worker still running after `timeout` s fails the test (never a hang)."""
    start = threading.Barrier(n, timeout=timeout)
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), name=f"contender-{i}", daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if race.failures:
        pytest.fail(race.failures[0], pytrace=False)
    if stuck:
        pytest.fail(f"{len(stuck)} of {n} contenders still running after {timeout} s (deadlock?): {stuck}",
                    pytrace=False)
    for exc in errors:
        if exc is not None:
            raise exc
    return results


