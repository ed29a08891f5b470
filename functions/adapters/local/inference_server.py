"""A real azureml-inference-server-http process serving one model artifact on loopback.

It runs in the separate serving environment (.venv-serve): azureml-inference-server-http pins
libraries the control plane cannot share. The process writes score.py's JSON lines (and the
server's own log) to a console log file, like an AzureML deployment's console log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from functions.settings import SCORE_SCRIPT

LAUNCHER = Path(__file__).with_name("loopback_azmlinfsrv.py")


class ServingError(RuntimeError):
    """The inference server could not be started or did not become healthy."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        self.port = self.port or free_port()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
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
            if self._process is not None and self._process.poll() is not None:
                raise ServingError(
                    f"inference server exited with code {self._process.returncode}; see {self.console_log}:\n"
                    + _tail(self.console_log)
                )
            try:
                with urllib.request.urlopen(self.health_uri, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServingError(f"inference server not healthy after {timeout:.0f}s; see {self.console_log}")

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
