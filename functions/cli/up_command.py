"""`modelops up`: the embedded platform as a long-running host of the Function App's routes.

It owns MODELOPS_HOME for as long as it runs (a second `up`, or any command that must own the
home, is refused naming it), makes its App the one the triggers get (bootstrap.use), serves what
function_host.py describes and runs the timers on their schedules. Other `modelops` commands find
it through <home>/up.json (functions/cli/remote.py) and talk to it over HTTP.

SIGINT or SIGTERM stops everything it started, in order: the timers, the HTTP server (the port is
closed), the runs it has in the background, then the App (orchestrations, jobs, the endpoints'
inference servers) — and up.json goes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import signal
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import typer

from functions.cli.output import FAILURE, fail
from functions.cli.remote import KEY_FILE, UP_FILE
from functions.shared.logs import log_event

logger = logging.getLogger("modelops.host")
STOP_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


def is_loopback(bind: str) -> bool:
    if bind.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


def host_key(home: Path) -> str:
    """The host key: generated once, kept in <home>/up-key (mode 0600, created that way: never
    readable by others, not even for a moment)."""
    path = Path(home) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        key = path.read_text().strip()
        if key:
            return key
        path.unlink()
        return host_key(home)
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def url_for(bind: str, port: int) -> str:
    """How a client on this machine reaches the host ("0.0.0.0" listens everywhere: loopback works)."""
    address = bind.strip("[]")
    if address in ("0.0.0.0", ""):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1"
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def route_prefix() -> str:
    """host.json's extensions.http.routePrefix (the Function App's own setting), "api" by default."""
    from functions.settings import REPO_ROOT

    try:
        config = json.loads((REPO_ROOT / "host.json").read_text())
        prefix = config.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    except (OSError, ValueError, AttributeError):
        return "api"
    return prefix if isinstance(prefix, str) else "api"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(function_host: Any, bind: str, port: int) -> _Server:
    """Listen on bind:port (port 0: a free one) for `function_host`; serving starts in a thread."""
    from functions.cli.function_host import MAX_BODY_BYTES, Answer

    class Handler(BaseHTTPRequestHandler):
        server_version = "modelops-up"

        def _serve(self) -> None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                answer = Answer.error(411, "send a Content-Length (chunked bodies are not read)")
            else:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    answer = Answer.error(413, f"the body is over {MAX_BODY_BYTES} bytes")
                else:
                    body = self.rfile.read(length) if length else b""
                    answer = function_host.handle(self.command, self.path, dict(self.headers.items()), body,
                                                  self.server.base_url)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            # the path only: a ?code= key must never reach the log
            log_event(logger, "http", method=self.command, path=urlsplit(self.path).path, status=int(code))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # http.server's own lines hold the request line (and so a ?code= key): not logged

    family = _Server.address_family
    if ":" in bind:
        import socket

        family = socket.AF_INET6
    server_class = type("Server", (_Server,), {"address_family": family})
    server = server_class((bind.strip("[]"), port), Handler)
    server.base_url = url_for(bind, server.server_address[1])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="up-http", daemon=True).start()
    return server


def write_up_file(home: Path, url: str, key_required: bool) -> Path:
    from functions.adapters.local.ownership import process_start_ticks

    path = Path(home) / UP_FILE
    tmp = path.with_name(f".{UP_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid()) or 0,
                               "started": datetime.now(timezone.utc).isoformat(), "key_required": key_required}))
    os.replace(tmp, path)
    return path


def remove_up_file(home: Path) -> None:
    """Only our own: a stale file of another process is left to remote.live_host to ignore."""
    from functions.cli.remote import read_up_file

    up = read_up_file(home)
    if up is not None and int(up.get("pid", -1)) == os.getpid():
        (Path(home) / UP_FILE).unlink(missing_ok=True)


def up(
    port: int = typer.Option(7071, "--port", min=0, max=65535, help="port to listen on (0: a free one)"),
    bind: str = typer.Option("127.0.0.1", "--bind", help="address to listen on; beyond loopback a key is required"),
    schedule: Optional[list[str]] = typer.Option(None, "--schedule", metavar="NAME=NCRONTAB",
                                                 help="override a timer's schedule, e.g. export_inference_logs='0 */5 * * * *'"),
    no_timers: bool = typer.Option(False, "--no-timers", help="no timer fires on its schedule (admin invoke still runs them)"),
) -> None:
    """Run the local application as a host of the Function App's routes (like `func start`) until
    SIGINT/SIGTERM: /api/..., the Event Grid webhook, /admin/functions/NAME, timers on schedule."""
    from functions import bootstrap
    from functions.cli.function_host import FunctionHost, TimerSchedules, discover, timer_schedules
    from functions.cli.platform_commands import local_settings, open_platform
    from functions.shared.ncrontab import ScheduleError

    settings = local_settings("up")
    overrides: dict[str, str] = {}
    for item in schedule or []:
        name, sep, expression = item.partition("=")
        if not sep or not name.strip() or not expression.strip():
            fail(f"--schedule {item!r}: give NAME=NCRONTAB, e.g. drift_check='0 30 2 * * *'")
        overrides[name.strip()] = expression.strip()
    import function_app  # the Function App itself: its functions are what this host serves

    functions = discover(function_app.app)
    try:
        schedules = timer_schedules(functions, overrides)
    except (ValueError, ScheduleError) as exc:
        fail(str(exc))
    logging.basicConfig(stream=sys.stderr, level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopped_by.append(STOP_SIGNALS.get(signum, str(signum)))
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    application = open_platform("up")
    key_path = settings.home / KEY_FILE
    with application:
        bootstrap.use(application)
        key = None if is_loopback(bind) else host_key(settings.home)
        host = FunctionHost(functions, route_prefix=route_prefix(), key=key, key_hint=str(key_path))
        timers = TimerSchedules(host, {} if no_timers else schedules)
        server = None
        try:
            try:
                server = serve(host, bind, port)
            except OSError as exc:
                fail(f"cannot listen on {bind}:{port}: {exc.strerror or exc}", FAILURE)
            write_up_file(settings.home, server.base_url, key is not None)
            timers.start()
            typer.echo(f"modelops up: serving the Function App at {server.base_url} for {settings.home} "
                       + (f"(key required: x-functions-key or ?code=, in {key_path})" if key else "(no key on loopback)")
                       + "; Ctrl-C or SIGTERM to stop", err=True)
            for line in (f"ended {e.model}:{e.version} left by a stopped process → {e.state}: {e.reason}"
                         for e in application.recovered):
                typer.echo(line, err=True)
            while not stop.wait(0.5):
                pass
            application.stop_reason = {"SIGTERM": "was terminated (SIGTERM) before it finished",
                                       "SIGINT": "was interrupted (SIGINT) before it finished"}.get(
                                           stopped_by[0] if stopped_by else "", application.stop_reason)
        finally:
            timers.stop()
            if server is not None:
                server.shutdown()
                server.server_close()
            host.join(10.0)
            remove_up_file(settings.home)
            bootstrap.use(None)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    typer.echo(f"modelops up: stopped ({stopped_by[0] if stopped_by else 'done'}); nothing left running", err=True)
