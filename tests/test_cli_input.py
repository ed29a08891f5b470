"""Bad input to the `modelops` CLI: exit 2 and one line naming the problem; failures exit 1; only
success exits 0. Every test runs the real CLI as a subprocess, the way a user or a script sees it.

Servers are started only where the case needs one (a busy port, kill -9 of `serve`); those tests are
marked `integration`.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from functions.settings import REPO_ROOT
from ml import artifact
from ml.datagen import generate
from tests.conftest import SERVING_PYTHON, require_serving_env

CLI = [sys.executable, "-m", "functions.cli.main"]


def cli_env(home: Path) -> dict[str, str]:
    return {**os.environ, "MODELOPS_HOME": str(home), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON)}


def run(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=cli_env(home),
                          cwd=REPO_ROOT, stdin=subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """Exit ``code``, stderr exactly one line `error: ...` containing every fragment; return it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- 1. usage errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragments", [
    (("generate", "--out", "x.csv", "--rows", "0"), ("--rows",)),
    (("train",), ("--data",)),
    (("generate", "--out", "x.csv", "--rowz", "5"), ("--rowz",)),
    (("serve", "--model-dir", ".", "--port", "http"), ("--port",)),
    (("no-such-command",), ("no-such-command",)),
])
def test_usage_errors_are_one_line_and_exit_2(home, tmp_path, args, fragments):
    result = run(home, *args)
    assert_one_line_error(result, 2, *fragments)
    assert result.stdout == ""
    assert not (REPO_ROOT / "x.csv").exists() and not home.exists()


def test_help_exits_0_and_no_arguments_show_the_help(home):
    for args in (("--help",), ("generate", "--help"), ("events", "--help")):
        result = run(home, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout and result.stderr == "", args
    # No command is a usage error (exit 2), but it still shows the help that lists the commands.
    result = run(home)
    assert "generate" in result.stdout and "Usage" in result.stdout
    assert_one_line_error(result, 2, "missing command")


# -- 2. score ---------------------------------------------------------------------------------------

@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text((REPO_ROOT / "ml" / "sample.json").read_text())
    return path


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A listening socket that nobody should connect to (proves nothing was sent)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_no_connection(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


@pytest.mark.parametrize("url", ["not-a-url", "ftp://127.0.0.1/score", "http:///score", "http://127.0.0.1:port/x"])
def test_score_refuses_a_url_that_is_not_http_with_a_host(home, request_file, url):
    line = assert_one_line_error(run(home, "score", "--url", url, str(request_file)), 2, "--url", url)
    assert "MissingSchema" not in line


def test_score_connection_refused_is_one_line_exit_1_naming_the_url(home, request_file):
    url = f"http://127.0.0.1:{free_port()}/score"
    assert_one_line_error(run(home, "score", "--url", url, str(request_file)), 1, url, "refused")


def test_score_request_that_is_not_json_exits_2_and_sends_nothing(home, tmp_path, silent_listener):
    url = f"http://127.0.0.1:{silent_listener.getsockname()[1]}/score"
    bad = tmp_path / "request.json"
    bad.write_text('{"data": [')
    assert_one_line_error(run(home, "score", "--url", url, str(bad)), 2, str(bad), "not valid JSON")
    assert_one_line_error(run(home, "score", "--url", url, str(tmp_path / "nope.json")), 2, "nope.json")
    assert_no_connection(silent_listener)


# -- 3. serve: the model folder is checked before anything starts -----------------------------------

def model_dir_cases(tmp_path: Path, artifact_dir: Path) -> dict[str, tuple[Path, str]]:
    tmp_path.mkdir(parents=True)
    cases: dict[str, tuple[Path, str]] = {"missing": (tmp_path / "nope", "no such folder")}
    a_file = tmp_path / "model.joblib"
    a_file.write_text("x")
    cases["a_file"] = (a_file, "not a folder")
    (tmp_path / "empty").mkdir()
    cases["empty"] = (tmp_path / "empty", "empty")
    (tmp_path / "no_card" / "1").mkdir(parents=True)
    (tmp_path / "no_card" / "1" / "notes.txt").write_text("x")
    cases["no_card"] = (tmp_path / "no_card", artifact.CARD_FILE)
    no_model = tmp_path / "no_model" / "1"
    shutil.copytree(artifact_dir, no_model)
    (no_model / artifact.MODEL_FILE).unlink()
    cases["no_model"] = (tmp_path / "no_model", artifact.MODEL_FILE)
    for version in ("1", "2"):
        shutil.copytree(artifact_dir, tmp_path / "two" / version)
    cases["two_artifacts"] = (tmp_path / "two", "more than one")
    return cases


@pytest.mark.parametrize("case", ["missing", "a_file", "empty", "no_card", "no_model", "two_artifacts"])
def test_serve_checks_the_model_folder_before_starting(home, tmp_path, artifact_dir, case):
    path, cause = model_dir_cases(tmp_path / "models", artifact_dir)[case]
    result = run(home, "serve", "--model-dir", str(path), "--port", str(free_port()))
    assert_one_line_error(result, 2, "--model-dir", str(path), cause)
    assert result.stdout == ""
    assert not (home / "serve").exists()  # no server was started (it would have written its console log)


# -- 4. serve: a busy port ---------------------------------------------------------------------------

class _Healthy(http.server.BaseHTTPRequestHandler):
    """Another program on the port that answers the health check with 200."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"Healthy")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_serve_refuses_a_port_in_use(home, artifact_dir, impostor):
    require_serving_env()
    result = run(home, "serve", "--model-dir", str(artifact_dir), "--port", str(impostor), timeout=90)
    assert_one_line_error(result, 2, f"port {impostor} on 127.0.0.1 is in use")
    assert "serving" not in result.stdout
    assert not (home / "serve").exists()


@pytest.mark.integration
def test_inference_server_does_not_count_another_process_health_answer(tmp_path, artifact_dir, impostor,
                                                                      settings, monkeypatch):
    """Even past the port check (a race: the port was taken after it), a 200 from another process is not
    our server being healthy: start() fails naming the cause from the console log, and no process is left."""
    from functions.adapters.local import inference_server as module

    require_serving_env()
    monkeypatch.setattr(module, "port_is_free", lambda port: True)  # lose the race on purpose
    server = module.InferenceServer(artifact_dir, settings.serving_python, tmp_path / "console.log", port=impostor)
    with pytest.raises(module.PortInUseError) as raised:
        server.start(timeout=60)
    first = str(raised.value).splitlines()[0]
    assert f"port {impostor} on 127.0.0.1 is in use" in first
    assert not server.is_running()


@pytest.mark.integration
def test_inference_server_early_exit_names_the_cause(tmp_path, settings):
    from functions.adapters.local.inference_server import InferenceServer, ServingError

    require_serving_env()
    log = tmp_path / "console.log"
    log.write_text("Traceback (most recent call last):\nOldError: an earlier run\n")  # the log is appended to
    server = InferenceServer(tmp_path / "missing-model", settings.serving_python, log, port=free_port())
    with pytest.raises(ServingError) as raised:
        server.start(timeout=60)
    first = str(raised.value).splitlines()[0]
    assert first.startswith("inference server exited with code "), first
    cause = first.split(": ", 1)[1].rsplit("; see ", 1)[0]
    # The cause is a line this run wrote to the console log, not just an exit code.
    assert cause and "OldError" not in cause
    assert cause in log.read_text(), cause


# -- 5. generate ---------------------------------------------------------------------------------------

def test_generate_refuses_outputs_it_cannot_write(home, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_one_line_error(run(home, "generate", "--out", str(folder), "--rows", "5"), 2, str(folder), "folder")
    assert list(folder.iterdir()) == []
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    below_a_file = a_file / "data.csv"
    assert_one_line_error(run(home, "generate", "--out", str(below_a_file), "--rows", "5"), 2, str(a_file))
    assert a_file.read_text() == "keep"
    result = run(home, "generate", "--out", str(tmp_path / "new" / "data.csv"), "--rows", "5")
    assert result.returncode == 0 and result.stderr == ""
    assert len(pd.read_csv(tmp_path / "new" / "data.csv")) == 5


def test_generate_refuses_a_folder_without_write_permission(home, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only filesystem stops it too
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)],
                                 capture_output=True, text=True)
        assert mounted.returncode == 0, mounted.stderr
        unlock = ["umount", str(locked)]
    else:
        locked.chmod(0o555)
        unlock = ["chmod", "755", str(locked)]
    try:
        assert_one_line_error(run(home, "generate", "--out", str(locked / "d.csv"), "--rows", "5"), 2, "writable")
        assert list(locked.iterdir()) == []
    finally:
        subprocess.run(unlock, check=True)


# -- 6. train: outputs and --data are checked before training ------------------------------------------

def test_train_checks_out_and_data_before_training(home, tmp_path, training_csv):
    existing = tmp_path / "model"
    existing.write_text("not a folder")
    # So many search candidates that training would outlast the timeout: exiting at all proves the
    # check ran before training.
    slow = ("--search-iterations", "10000")
    result = run(home, "train", "--data", str(training_csv), "--out", str(existing), *slow, timeout=60)
    assert_one_line_error(result, 2, "--out", str(existing), "not a folder")
    assert existing.read_text() == "not a folder"
    below_a_file = existing / "artifact"
    result = run(home, "train", "--data", str(training_csv), "--out", str(below_a_file), *slow, timeout=60)
    assert_one_line_error(result, 2, "--out", str(existing))
    for data, cause in ((tmp_path / "nope.csv", "no such file"), (tmp_path, "folder")):
        result = run(home, "train", "--data", str(data), "--out", str(tmp_path / "out"), *slow, timeout=60)
        assert_one_line_error(result, 2, "--data", str(data), cause)
    assert not (tmp_path / "out").exists()


# -- 7. data problems ------------------------------------------------------------------------------------

@pytest.mark.parametrize("separator, label", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_other_delimiters_are_named(home, tmp_path, separator, label):
    data = tmp_path / "data.csv"
    generate(300, seed=3).to_csv(data, sep=separator, index=False)
    result = run(home, "train", "--data", str(data), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "missing column(s)", f"the header looks {label}-delimited",
                          "modelops reads comma-separated CSV")
    assert not (tmp_path / "out").exists()


def test_a_comma_csv_missing_columns_gets_no_delimiter_hint(home, tmp_path):
    data = tmp_path / "data.csv"
    generate(300, seed=3).drop(columns=["age"]).to_csv(data, index=False)
    line = assert_one_line_error(run(home, "train", "--data", str(data), "--out", str(tmp_path / "o")), 2, "age")
    assert "delimited" not in line


@pytest.mark.parametrize("column, value, fragment", [
    ("age", -5, "-5"),
    ("age", 200, "200"),
    ("credit_limit", -100.5, "-100.5"),
    ("payment_amount_3", -1, "-1"),
])
def test_out_of_range_values_name_column_row_and_value(home, tmp_path, column, value, fragment):
    frame = generate(300, seed=5)
    frame.loc[6, column] = value
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    result = run(home, "train", "--data", str(data), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 2, f"column {column}", "data row 7", fragment)
    assert not (tmp_path / "out").exists()


def test_negative_bill_amounts_are_valid_and_ranges_are_in_the_card(artifact_dir):
    from ml.dataset import coerce_features

    frame = generate(50, seed=5)
    frame.loc[0, "bill_amount_1"] = -2_500.0  # UCI bills can be negative (overpayments)
    assert coerce_features(frame)["bill_amount_1"].iloc[0] == -2_500.0
    features = {f["name"]: f for f in artifact.read_card(artifact_dir)["features"]}
    assert (features["age"]["minimum"], features["age"]["maximum"]) == (0, 150)
    assert features["credit_limit"]["minimum"] == 0 and "maximum" not in features["credit_limit"]
    assert features["payment_amount_6"]["minimum"] == 0
    assert "minimum" not in features["bill_amount_1"] and "maximum" not in features["bill_amount_1"]


@pytest.mark.parametrize("column", ["bill_amount_2", "education"])
def test_a_column_without_values_is_a_data_error_and_no_warning_is_printed(home, tmp_path, column):
    frame = generate(300, seed=5)
    frame[column] = None
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    result = run(home, "train", "--data", str(data), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 2, f"column {column} has no values")  # one line: no sklearn warning
    assert not (tmp_path / "out").exists()


def test_training_with_sparse_columns_prints_no_warning(home, tmp_path):
    """A column with a single value is valid, but some cross-validation folds see none of it: sklearn's
    multi-line "Skipping features" warning (from worker processes) must not reach the terminal."""
    frame = generate(400, seed=8)
    frame["bill_amount_4"] = None
    frame.loc[0, "bill_amount_4"] = 10.0
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    result = run(home, "train", "--data", str(data), "--out", str(tmp_path / "out"), "--search-iterations", "1",
                 "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["n_train"] == 320


# -- 8. no orphan servers ---------------------------------------------------------------------------------

@pytest.mark.integration
def test_kill_9_of_serve_leaves_no_server_behind(home, artifact_dir):
    import psutil

    require_serving_env()
    port = free_port()
    cli = subprocess.Popen([*CLI, "serve", "--model-dir", str(artifact_dir), "--port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(home),
                           cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    try:
        assert "serving" in cli.stdout.readline()  # printed only once the server answers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
        tree = psutil.Process(cli.pid).children(recursive=True)
        assert len(tree) >= 2  # the gunicorn master and its worker
        # A server whose owner is alive is left alone by its watchdog (it polls every 0.5 s), and the
        # worker (whose parent is the master, not the owner) does not mistake itself for an orphan.
        time.sleep(2.0)
        assert all(p.is_running() for p in tree) and listening(port)
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait(10)
        cli.stdout.close()
        cli.stderr.close()
    deadline = time.monotonic() + 60  # a hang guard: the watchdog notices within 0.5 s, then stops gunicorn
    while time.monotonic() < deadline and (listening(port) or any(alive(p) for p in tree)):
        time.sleep(0.2)
    left = [p.pid for p in tree if alive(p)]
    for p in tree:  # do not leak processes into the rest of the suite even when the test fails
        if alive(p):
            p.kill()
    assert not left, f"server processes outlived their owner: {left}"
    assert not listening(port)


def alive(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- 10. commands of the local platform refuse MODELOPS_PLATFORM=azure ----------------------------------

@pytest.mark.parametrize("args", [("register", "--model-dir", "."), ("events", "send", "x.json"),
                                  ("alerts", "send", "x.json"), ("timers", "run", "export"),
                                  ("rollouts", "retry", "m", "1"), ("status",), ("demo",)])
def test_local_platform_commands_refuse_the_azure_platform_instead_of_running_locally(home, args, tmp_path):
    (tmp_path / "x.json").write_text("[]")
    env = {**cli_env(home), "MODELOPS_PLATFORM": "azure"}
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
                            stdin=subprocess.DEVNULL)
    assert_one_line_error(result, 2, f"modelops {args[0]}", "MODELOPS_PLATFORM=azure")
    assert not home.exists()  # nothing local was created
