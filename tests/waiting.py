"""Waiting for a process-based test's condition: a hang guard (a deadline for something that never
happens), never a timing assertion."""

from __future__ import annotations

import subprocess
import time
from typing import Any, Callable

import pytest


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, process: subprocess.Popen | None = None,
             output: Callable[[], str] | None = None) -> Any:
    """The predicate's first truthy value; fails when the deadline passes or `process` exits first
    (with the tail of `output()`, or of the process's piped stdout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = output() if output is not None else (process.stdout.read() if process.stdout else "")
            pytest.fail(f"process exited ({process.returncode}) before {what}: {str(tail)[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")
