"""Azurite (local Azure Blob Storage) for integration tests, from the repo's node_modules.

Use it with `pytest_plugins = ["tests.azurite"]` in a test module; the `azurite` fixture yields a
connection string. One in-memory Azurite per session, on a port the OS picks (Azurite is started
with --blobPort 0 and we read the port it reports), bound to loopback, killed with its process
group at the end. No Azurite installed is a failure with the fix in the message, never a skip.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from functions.settings import REPO_ROOT

AZURITE_BLOB = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
# The well-known development account (public, documented by Microsoft; Azurite accepts only this).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"Azurite Blob service successfully listens on https?://[^:\s]+:(\d+)")


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://{host}:{port}/{ACCOUNT};")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphan even if pytest is SIGKILLed


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # the group may outlive its leader (none expected from node, but make sure)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_azurite(workspace: Path) -> tuple[subprocess.Popen, int, Path]:
    if not AZURITE_BLOB.exists():
        pytest.fail(f"Azurite missing at {AZURITE_BLOB}: install Node.js/npm and run `make env` "
                    f"(or `npm ci` in {REPO_ROOT})", pytrace=False)
    log_path = workspace / "azurite.log"
    cmd = [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
           "--extentMemoryLimit", "256", "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workspace, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    port = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if port is None:
            found = _LISTENING.search(log_path.read_text(errors="replace"))
            port = int(found.group(1)) if found else None
        if port is not None and _accepts(port):
            return proc, port, log_path
        time.sleep(0.05)
    _stop(proc)
    pytest.fail(f"Azurite did not start within {STARTUP_TIMEOUT_S:.0f} s (exit code {proc.returncode}); "
                f"command: {' '.join(cmd)}\n--- {log_path} ---\n{log_path.read_text(errors='replace')}",
                pytrace=False)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[str]:
    """A connection string for a fresh in-memory Azurite blob service (one per test session)."""
    proc, port, _ = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield connection_string(port)
    finally:
        _stop(proc)
