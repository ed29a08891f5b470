"""One owner per local home: the process that runs its endpoints, rollouts and jobs.

    <home>/owner.json     {"pid", "start_ticks", "token", "command", "host", "since", "heartbeat"}
    <home>/.owner.lock    flock held only while checking and writing owner.json

The embedded platform's endpoints, orchestrations and jobs live inside one `modelops` process. If
two processes ran them on one home they would fight over ports, traffic maps and rollout
records; if the owner dies (kill -9, a full disk, a closed laptop) its rollouts must be ended by
the next owner. So a process takes the home with `HomeLease.acquire()`: under the lock it reads
owner.json and refuses (`HomeBusy`, naming the owner) while the owner is alive, else writes
itself. `acquire()` returns the previous owner when that owner died without releasing — the
caller then reconciles what it left (functions/domain/reconcile.py).

"Alive" is decided by the pid *and* the process's start time (field 22 of /proc/<pid>/stat), so a
recycled pid is not mistaken for the owner; a zombie is dead. Where /proc is missing, a pid that
exists counts as alive (never steal a home from a live owner). The heartbeat is informational
(`modelops status` shows it); liveness never depends on it, because a busy owner must not lose
its home to a second process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

OWNER_FILE = "owner.json"
LOCK_FILE = ".owner.lock"
HEARTBEAT_SECONDS = 10.0


class HomeBusy(RuntimeError):
    """Another live process owns the home."""

    def __init__(self, home: Path, owner: "Owner") -> None:
        super().__init__(f"{home} is in use by process {owner.pid} ({owner.command or 'modelops'}, since "
                         f"{owner.since}); stop it or use another MODELOPS_HOME")
        self.owner = owner


@dataclass(frozen=True)
class Owner:
    pid: int
    start_ticks: int  # the process's start time in clock ticks since boot (0 where unknown)
    command: str = ""
    host: str = ""
    since: str = ""
    heartbeat: str = ""

    @property
    def token(self) -> str:
        """Identifies one process for its whole life (a pid alone is recycled)."""
        return f"{self.host}:{self.pid}:{self.start_ticks}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "token": self.token}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Owner":
        return cls(pid=int(data.get("pid", 0)), start_ticks=int(data.get("start_ticks", 0)),
                   command=str(data.get("command", "")), host=str(data.get("host", "")),
                   since=str(data.get("since", "")), heartbeat=str(data.get("heartbeat", "")))

    @classmethod
    def current(cls) -> "Owner":
        now = _now()
        return cls(pid=os.getpid(), start_ticks=process_start_ticks(os.getpid()) or 0,
                   command=" ".join(["modelops", *sys.argv[1:3]])[:120], host=socket.gethostname(), since=now,
                   heartbeat=now)


def process_start_ticks(pid: int) -> int | None:
    """Start time of a live, non-zombie process (clock ticks since boot); None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing ')'
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # a zombie or dead task: exited, only waiting to be reaped
        return None
    return int(fields[19])


def runs(pid: int, *needles: bytes) -> bool:
    """Whether a live process's command line holds one of `needles` (how an orphan of ours is told
    from an unrelated process that got its pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(needle in cmdline for needle in needles)


def is_alive(owner: Owner) -> bool:
    if owner.pid <= 0:
        return False
    if owner.host and owner.host != socket.gethostname():
        return True  # another machine's process (a shared folder): we cannot tell, so never steal
    if Path("/proc/self/stat").exists():
        ticks = process_start_ticks(owner.pid)
        return ticks is not None and (not owner.start_ticks or ticks == owner.start_ticks)
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_owner(home: Path) -> Owner | None:
    try:
        return Owner.from_dict(json.loads((Path(home) / OWNER_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


class HomeLease:
    """The ownership of one home by this process (not re-entrant: one platform per home)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.owner: Owner | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> Owner | None:
        """Take the home. Returns the previous owner if it died without releasing (its leftovers
        need reconciling), None for a clean home. Raises HomeBusy while a live process owns it."""
        self.home.mkdir(parents=True, exist_ok=True)
        me = Owner.current()
        with self._locked():
            previous = read_owner(self.home)
            if previous is not None and previous.token != me.token and is_alive(previous):
                raise HomeBusy(self.home, previous)
            if previous is not None and previous.token == me.token:
                raise HomeBusy(self.home, previous)  # this process opened it already: one platform per home
            self._write(me)
        self.owner = me
        self._heartbeat = threading.Thread(target=self._beat, name="home-heartbeat", daemon=True)
        self._heartbeat.start()
        return previous

    def release(self) -> None:
        """Give the home up (only if it is still ours). Idempotent."""
        self._stop.set()
        if self.owner is None:
            return
        with self._locked():
            current = read_owner(self.home)
            if current is not None and current.token == self.owner.token:
                (self.home / OWNER_FILE).unlink(missing_ok=True)
        self.owner = None

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            owner = self.owner
            if owner is None:
                return
            try:
                with self._locked():
                    current = read_owner(self.home)
                    if current is None or current.token != owner.token:
                        return  # not ours any more (released); nothing to refresh
                    self._write(Owner(**{**asdict(owner), "heartbeat": _now()}))
            except OSError:
                continue  # a full disk must not kill the owner; the heartbeat is informational

    def _write(self, owner: Owner) -> None:
        path = self.home / OWNER_FILE
        tmp = path.with_name(f".{OWNER_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(owner.to_dict(), indent=1))
        os.replace(tmp, path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.home / LOCK_FILE, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
