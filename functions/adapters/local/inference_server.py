"""A real azureml-inference-server-http process serving one model artifact on loopback.

It runs in the separate serving environment (.venv-serve): azureml-inference-server-http pins
libraries the control plane cannot share. The process writes score.py's JSON lines (and the
server's own log) to a console log file, like an AzureML deployment's console log.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from functions.settings import SCORE_SCRIPT

LAUNCHER = Path(__file__).with_name("loopback_azmlinfsrv.py")
HOST = "127.0.0.1"  # the launcher binds azmlinfsrv here
# The launcher's watchdog stops the server when this process (its owner) is gone.
OWNER_PID_ENV = "MODELOPS_SERVER_OWNER_PID"


class ServingError(RuntimeError):
    """The inference server could not be started or did not become healthy."""


class PortUnavailableError(ServingError):
    """The port asked for cannot be bound (bad input, not a server failure)."""


class PortInUseError(PortUnavailableError):
    """Another process listens on the port asked for."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether the server could bind ``port`` now. Other bind errors (EACCES, ...) are raised."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As gunicorn binds: with SO_REUSEADDR a port left in TIME_WAIT by an earlier server is free,
        # a port with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


@dataclass
class InferenceServer:
    model_dir: Path
    serving_python: Path
    console_log: Path
    port: int = 0
    entry_script: Path = SCORE_SCRIPT
    workers: int = 1  # gunicorn sync workers (azmlinfsrv --worker_count): requests served at once
    env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)  # where this run's console output starts

    @property
    def scoring_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    @property
    def health_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 60.0) -> "InferenceServer":
        if not Path(self.serving_python).exists():
            raise ServingError(
                f"serving environment not found at {self.serving_python}: run `make serving-env` "
                "(or set MODELOPS_SERVING_PYTHON)"
            )
        if self.port:
            # Checked first: on a busy port gunicorn retries for seconds and then exits, while the
            # other program's answers to the health check would look like this server's.
            try:
                free = port_is_free(self.port)
            except OSError as exc:
                raise PortUnavailableError(f"port {self.port} on {HOST} cannot be bound: {exc.strerror}") from None
            if not free:
                raise PortInUseError(f"port {self.port} on {HOST} is in use")
        else:
            self.port = free_port()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._log_offset = self.console_log.stat().st_size  # the log is appended to across runs
        except OSError:
            self._log_offset = 0
        env = {
            **os.environ,
            "AZUREML_MODEL_DIR": str(Path(self.model_dir).resolve()),
            "AML_APP_ROOT": str(Path(self.entry_script).resolve().parent),
            "AZUREML_SERVER_VERSION_ENABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "WORKER_TIMEOUT": "60",
            # gunicorn >= 25 opens a control socket at ~/.gunicorn/gunicorn.ctl, one path shared (and
            # unlinked) by every local server: none is needed here.
            "GUNICORN_CMD_ARGS": "--no-control-socket",
            **self.env,
            OWNER_PID_ENV: str(os.getpid()),
        }
        # The serving interpreter must not see the control plane's packages.
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(name, None)
        log = open(self.console_log, "ab", buffering=0)
        try:
            self._process = subprocess.Popen(
                [str(self.serving_python), str(LAUNCHER), "--entry_script", str(Path(self.entry_script).resolve()),
                 "--port", str(self.port), "--worker_count", str(max(1, int(self.workers)))],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(Path(self.entry_script).resolve().parent),
                start_new_session=True,  # its own process group: stop() takes gunicorn's workers too
            )
        finally:
            log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and not self.is_running():
                self._raise_exited()
            try:
                with urllib.request.urlopen(self.health_uri, timeout=2) as response:
                    healthy = response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                healthy = False
            # A 200 counts only from this server: its process is still running and (where the OS
            # tells) its process group holds the listening socket. Otherwise another program
            # answered, e.g. on a port taken after the check in start(); gunicorn then retries
            # binding and exits, named above. (The group leader is our child, pgid = its pid.)
            if healthy and self.is_running() and _group_holds_listener(self._process.pid, self.port) is not False:
                return
            time.sleep(0.1)
        self.stop()
        raise ServingError(f"inference server not healthy after {timeout:.0f}s; see {self.console_log}")

    def exit_message(self) -> str:
        """One line: how the server ended and the cause its console log names (this run's part)."""
        code = self._process.returncode if self._process is not None else None
        if code is not None and code < 0:
            # Killed from outside (OOM killer, kill -9): its own log cannot say why.
            try:
                ended, cause = f"was killed by {signal.Signals(-code).name}", ""
            except ValueError:
                ended, cause = f"was killed by signal {-code}", ""
        else:
            ended, cause = f"exited with code {code}", _failure_cause(self._run_log())
        return f"inference server {ended}" + (f": {cause}" if cause else "") + f"; see {self.console_log}"

    def _raise_exited(self) -> NoReturn:
        text = self._run_log()
        if _ADDRESS_IN_USE.search(text):  # lost a race for the port after the check in start()
            raise PortInUseError(f"port {self.port} on {HOST} is in use; see {self.console_log}")
        raise ServingError(self.exit_message() + "\n" + _tail(text))

    def _run_log(self) -> str:
        try:
            with open(self.console_log, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def is_running(self) -> bool:
        process = self._process
        if process is None:
            return False
        if process.returncode is None and process.poll() is not None:
            # The master exited on its own, just now: its workers (if any) are left without anyone
            # to stop them. While they live, their group id (the master's pid) cannot be reused.
            _signal_group(process.pid, signal.SIGKILL)
        return process.returncode is None

    def stop(self, grace: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(grace)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "InferenceServer":
        return self.start() if not self.is_running() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


_ADDRESS_IN_USE = re.compile(r"Address already in use|Connection in use: ")
# The last line of a Python traceback ("FileNotFoundError: expected ..."). Log lines start with a
# timestamp and warnings with a file path, so neither matches.
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit): .+")
# Between two tracebacks of one chain (the later wraps the earlier).
_CHAINED = ("The above exception was the direct cause of the following exception",
            "During handling of the above exception, another exception occurred")
# azmlinfsrv's log format (gunicorn's records too): "<date> <time> E [<pid>] <logger> - <message>".
_ERROR_RECORD = re.compile(r"^\S+ \S+ (?:E|C) \[\d+\] \S+ - (.+)$")


def _failure_cause(text: str, limit: int = 300) -> str:
    """What a failed run's console output says went wrong, in one line ('' when it says nothing).

    The root of the last traceback: earlier tracebacks can be harmless (azmlinfsrv logs one when
    the model folder is not laid out <name>/<version>), and in a chain ("The above exception was
    the direct cause ...") the first exception is the cause, later ones wrap it. Without a
    traceback, the last error record (gunicorn's "Can't connect to ..."). Other lines are routine.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    exceptions = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    chained = {i for i, line in enumerate(lines) if line.startswith(_CHAINED)}
    cause = ""
    if exceptions:
        k = len(exceptions) - 1
        while k > 0 and any(exceptions[k - 1] < i < exceptions[k] for i in chained):
            k -= 1
        cause = lines[exceptions[k]]
    else:
        errors = [m.group(1) for m in map(_ERROR_RECORD.match, lines) if m]
        cause = errors[-1] if errors else ""
    return cause if len(cause) <= limit else cause[: limit - 1] + "…"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_holds_listener(pgid: int, port: int) -> bool | None:
    """Whether a process of group ``pgid`` holds a TCP socket listening on ``port``; None where the
    OS does not say (no /proc: not Linux). The group, not just our child: the serving "python" may
    be a wrapper script whose child is the gunicorn master (which holds the listener)."""
    inodes: set[str] = set()
    tables = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        tables += 1
        for row in rows:
            # sl local_address rem_address st ... inode; st 0A = LISTEN; the port is hex after ':'
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not tables:
        return None
    if not inodes:
        return False
    for pid in _group_members(pgid):
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # exited meanwhile: it holds nothing
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in inodes:
                    return True
            except OSError:
                continue
    return False


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(entry))
    return members
