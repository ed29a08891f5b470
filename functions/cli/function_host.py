"""What `modelops up` serves: the Function App's functions over HTTP, the way Core Tools' host does.

The functions are discovered from `function_app.app` (azure.functions: each Function's trigger and
bindings), never listed by hand:

    <routePrefix>/<route>                       every HTTP trigger, its methods and {route} params
    POST /runtime/webhooks/eventgrid?functionName=NAME    the Event Grid triggers
    POST /admin/functions/NAME  {"input": ...}  run a timer (or an Event Grid trigger) now → 202
    timers on their NCRONTAB schedules           (TimerSchedules below)

Answers follow the real host's, checked in its source:
  * Event Grid webhook — Azure/azure-functions-eventgrid-extension
    src/EventGridExtension/EventGridExtensionConfigProvider.cs `ProcessAsync`: `aeg-event-type:
    SubscriptionValidation` → 200 {"validationResponse": <data.validationCode of the first event>};
    `Notification` → every event of the array (or the one CloudEvents object) to the function, 500
    with the exception's message when one fails (Event Grid then redelivers), else 202;
    `Unsubscribe` → 202; any other header → 400. An unknown functionName is answered 404 with a
    JSON body naming the known functions (newer hosts answer 202 and drop the events).
  * admin invoke — Azure/azure-functions-host src/WebJobs.Script.WebHost/Controllers/AdminController.cs
    `Invoke`: no body → 400, unknown function (name matched case-insensitively) → 404, else the
    function runs in the background (Task.Run) and the answer is 202 at once.
  * keys — Core Tools enforces no key when it runs locally; this host does the same on loopback,
    and when bound beyond loopback asks for the host key (x-functions-key header or ?code=) on every
    route that is not anonymous. The key never reaches a log line: request lines are logged
    without their query string.
Differences, on purpose: errors are JSON {"error": ...}; a wrong method is 405 with Allow.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from functions.shared.logs import log_event
from functions.shared.ncrontab import Schedule

logger = logging.getLogger("modelops.host")
INVOCABLE = ("timerTrigger", "eventGridTrigger")  # what POST /admin/functions/NAME can run
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> "Answer":
        return cls(status, json.dumps(obj, default=str).encode(),
                   {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def error(cls, status: int, message: str, headers: Mapping[str, str] | None = None) -> "Answer":
        return cls.json(status, {"error": message}, headers)


@dataclass(frozen=True)
class Function:
    """One function of the app: its name, trigger and the Python callable behind it."""
    name: str
    trigger_type: str  # httpTrigger | eventGridTrigger | timerTrigger | orchestrationTrigger | ...
    trigger: dict[str, Any]
    arg_name: str
    other_inputs: tuple[str, ...]  # durableClient and other input bindings: None here
    call: Callable[..., Any]

    def invoke(self, trigger_value: Any) -> Any:
        """Call the function with its trigger value; coroutine functions are run to completion.
        A durable client input is None: the embedded platform's orchestrations ignore it."""
        kwargs = {self.arg_name: trigger_value, **{name: None for name in self.other_inputs}}
        result = self.call(**kwargs)
        if inspect.isawaitable(result):
            return asyncio.run(_awaited(result))
        return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


@dataclass(frozen=True)
class Route:
    function: Function
    template: str
    pattern: re.Pattern
    methods: frozenset[str]
    auth_level: str  # anonymous | function | admin
    literals: int  # literal segments
    # ASP.NET Core's inbound route precedence, segment by segment from the left (RoutePrecedence:
    # a literal segment before a parameter, a parameter before a catch-all): rollouts/{id}/actions/{action}
    # wins over rollouts/{model}/{version}/retry for POST /api/rollouts/x/actions/retry, as in Azure
    precedence: tuple[int, ...] = ()


_discovered: dict[int, tuple[Any, list[Function]]] = {}


def discover(function_app: Any) -> list[Function]:
    """The app's functions, from azure.functions' own description of them (what the worker
    indexes and Core Tools serves). Once per app object: get_functions() indexes the app and
    refuses to do it a second time (it takes the names it indexed before for duplicates)."""
    known = _discovered.get(id(function_app))
    if known is not None and known[0] is function_app:
        return known[1]
    found = []
    for fn in function_app.get_functions():
        trigger = _plain(fn.get_trigger().get_dict_repr())
        bindings = [_plain(b.get_dict_repr()) for b in fn.get_bindings()]
        others = tuple(b["name"] for b in bindings if b.get("direction") == "IN" and b["name"] != trigger["name"])
        call = fn.get_user_function()
        if any(b.get("type") == "durableClient" for b in bindings):
            # DFApp wraps the function in a middleware that builds a DurableOrchestrationClient from
            # the binding's JSON (functools.wraps keeps the function as __wrapped__): the function
            # itself is called, with client=None — the embedded platform's orchestrations ignore it
            call = getattr(call, "__wrapped__", call)
        found.append(Function(fn.get_function_name(), trigger["type"], trigger, trigger["name"], others, call))
    _discovered[id(function_app)] = (function_app, found)
    return found


def _plain(value: Any) -> Any:
    """Binding descriptions hold enums (AuthLevel.FUNCTION, HttpMethod.GET): their names, as host.json would."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "value") and hasattr(value, "name"):
        return value.name if value.name in ("IN", "OUT", "INOUT") else value.value
    return value


def http_routes(functions: list[Function], prefix: str) -> list[Route]:
    routes = []
    for fn in functions:
        if fn.trigger_type != "httpTrigger":
            continue
        template = "/".join(part for part in (prefix.strip("/"), (fn.trigger.get("route") or fn.name).strip("/")) if part)
        methods = frozenset(str(m).upper() for m in (fn.trigger.get("methods") or ["GET", "POST"]))
        segments = template.split("/")
        routes.append(Route(fn, template, _route_pattern(segments), methods,
                            str(fn.trigger.get("authLevel") or "function").lower(),
                            sum(1 for s in segments if not s.startswith("{")),
                            tuple(0 if not s.startswith("{") else 2 if s.startswith("{*") else 1 for s in segments)))
    return sorted(routes, key=lambda r: (r.precedence, -r.literals))


def _route_pattern(segments: list[str]) -> re.Pattern:
    """{name}, {name:constraint} (not checked), {name?} (optional last segment), {*rest} (catch-all)."""
    parts = []
    for segment in segments:
        match = re.fullmatch(r"\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}", segment)
        if match is None:
            parts.append("/" + re.escape(segment))
        elif match.group(1):
            parts.append(f"(?:/(?P<{match.group(2)}>.*))?")
        elif match.group(3):
            parts.append(f"(?:/(?P<{match.group(2)}>[^/]+))?")
        else:
            parts.append(f"/(?P<{match.group(2)}>[^/]+)")
    return re.compile("".join(parts) + "/?")


class FunctionHost:
    """Routes one request to the function it addresses; knows nothing of sockets (server.py serves it)."""

    def __init__(self, functions: list[Function], *, route_prefix: str = "api", key: str | None = None,
                 key_hint: str = "") -> None:
        self.functions = {fn.name.lower(): fn for fn in functions}
        self.routes = http_routes(functions, route_prefix)
        self.event_grid = {fn.name: fn for fn in functions if fn.trigger_type == "eventGridTrigger"}
        self.key = key
        self.key_hint = key_hint  # where the key is (never the key)
        self.singletons: dict[str, threading.Lock] = {fn.name: threading.Lock() for fn in functions}
        self.background: list[threading.Thread] = []

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes, base_url: str) -> Answer:
        parts = urlsplit(target)
        path = parts.path
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        lower = {k.lower(): v for k, v in headers.items()}
        if path.rstrip("/").lower() == "/runtime/webhooks/eventgrid":
            return self._guarded("system", lower, params, lambda: self._event_grid(method, params, lower, body))
        if path.lower().startswith("/admin/functions/"):
            return self._guarded("admin", lower, params, lambda: self._admin(method, path, body))
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if method not in route.methods:
                allowed = sorted({m for r in self.routes if r.pattern.fullmatch(path) for m in r.methods})
                if any(method in r.methods for r in self.routes if r.pattern.fullmatch(path)):
                    continue  # another function serves this method on a matching route
                return Answer.error(405, f"{method} is not allowed on {path} (allowed: {', '.join(allowed)})",
                                    {"Allow": ", ".join(allowed)})
            route_params = {k: v for k, v in match.groupdict().items() if v is not None}
            return self._guarded(route.auth_level, lower, params,
                                 partial(self._http, route, method, base_url + target, lower, params, route_params, body))
        return Answer.error(404, f"no function serves {path}")

    # -- keys ---------------------------------------------------------------------------------

    def _guarded(self, level: str, headers: Mapping[str, str], params: Mapping[str, str],
                 run: Callable[[], Answer]) -> Answer:
        if self.key is not None and level != "anonymous":
            given = headers.get("x-functions-key") or params.get("code") or ""
            if not hmac.compare_digest(given.encode(), self.key.encode()):
                return Answer.error(401, "this host needs its key (x-functions-key header or ?code=)"
                                    + (f": it is in {self.key_hint}" if self.key_hint else ""))
        return run()

    # -- HTTP triggers -------------------------------------------------------------------------

    def _http(self, route: Route, method: str, url: str, headers: Mapping[str, str], params: Mapping[str, str],
              route_params: Mapping[str, str], body: bytes) -> Answer:
        import azure.functions as func

        request = func.HttpRequest(method, url, headers=dict(headers), params=dict(params),
                                   route_params=dict(route_params), body=body)
        try:
            response = route.function.invoke(request)
        except Exception as exc:  # noqa: BLE001 - the real host answers 500 for an unhandled exception
            log_event(logger, "function_failed", logging.ERROR, function=route.function.name,
                      error=f"{type(exc).__name__}: {exc}"[:500])
            return Answer.error(500, f"{route.function.name} failed: {type(exc).__name__}: {str(exc)[:300]}")
        if response is None:
            return Answer(204)
        out_headers = {k: v for k, v in response.headers.items()}
        if response.mimetype and not any(k.lower() == "content-type" for k in out_headers):
            out_headers["Content-Type"] = f"{response.mimetype}; charset={response.charset or 'utf-8'}"
        return Answer(response.status_code, response.get_body() or b"", out_headers)

    # -- Event Grid ----------------------------------------------------------------------------

    def _event_grid(self, method: str, params: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Answer:
        if method != "POST":
            return Answer.error(405, "the Event Grid webhook takes POST", {"Allow": "POST"})
        name = params.get("functionName", "")
        function = self.event_grid.get(name)
        if function is None:
            known = ", ".join(sorted(self.event_grid)) or "none"
            return Answer.error(404, f"no Event Grid function {name!r} (functionName= one of: {known})")
        kind = (headers.get("aeg-event-type") or "").lower()
        if kind not in ("subscriptionvalidation", "notification", "unsubscribe"):
            return Answer.error(400, "aeg-event-type must be SubscriptionValidation, Notification or Unsubscribe")
        if kind == "unsubscribe":
            return Answer(202)
        try:
            events = json.loads(body or b"null")
        except ValueError as exc:
            return Answer.error(400, f"the body is not JSON: {exc}")
        events = [events] if isinstance(events, dict) else events  # one CloudEvents object, as the extension does
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return Answer.error(400, "the body must be a JSON array of events (or one CloudEvents object)")
        if kind == "subscriptionvalidation":
            code = (events[0].get("data") or {}).get("validationCode") if events else None
            if not isinstance(code, str) or not code:
                return Answer.error(400, "a SubscriptionValidation event needs data.validationCode")
            log_event(logger, "event_grid_handshake", function=name)
            return Answer.json(200, {"validationResponse": code})
        for event in events:
            try:
                self._run(function, _event_grid_event(event), reason="Event Grid notification")
            except Exception as exc:  # noqa: BLE001 - 500: Event Grid redelivers the whole batch
                return Answer(500, f"{type(exc).__name__}: {exc}"[:500].encode(), {"Content-Type": "text/plain"})
        return Answer(202)

    # -- admin ---------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> Answer:
        name = path[len("/admin/functions/"):].strip("/")
        if method != "POST":
            return Answer.error(405, "POST /admin/functions/NAME {\"input\": ...} runs a function", {"Allow": "POST"})
        try:
            invocation = json.loads(body) if body.strip() else None
        except ValueError:
            invocation = None
        if not isinstance(invocation, dict):
            return Answer.error(400, 'the body must be a JSON object: {"input": ""}')
        function = self.functions.get(name.lower())
        if function is None:
            return Answer.error(404, f"no function {name!r}")
        if function.trigger_type not in INVOCABLE:
            return Answer.error(400, f"{function.name} is an {function.trigger_type} function: only timer and "
                                     "Event Grid functions run through /admin/functions")
        if function.trigger_type == "timerTrigger":
            value: Any = _timer_request(past_due=False)
        else:
            try:
                raw = invocation.get("input")
                value = _event_grid_event(json.loads(raw) if isinstance(raw, str) else raw)
            except (ValueError, TypeError, AttributeError) as exc:
                return Answer.error(400, f"input must be one Event Grid event (JSON): {exc}")
        self.start_in_background(function, value, reason="admin invoke")
        return Answer(202)

    def start_in_background(self, function: Function, value: Any, *, reason: str) -> threading.Thread:
        def run() -> None:
            try:
                with self.singletons[function.name]:  # a timer never overlaps itself (Functions' singleton lock)
                    self._run(function, value, reason=reason)
            except Exception:  # noqa: BLE001 - logged by _run; a background run has nobody to answer
                pass

        thread = threading.Thread(target=run, name=f"function-{function.name}", daemon=True)
        self.background = [t for t in self.background if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _run(self, function: Function, value: Any, *, reason: str) -> Any:
        """One invocation, logged like the host's Executing/Executed lines."""
        started = time.monotonic()
        log_event(logger, "function_started", function=function.name, reason=reason)
        try:
            result = function.invoke(value)
        except Exception as exc:
            log_event(logger, "function_failed", logging.ERROR, function=function.name, reason=reason,
                      error=f"{type(exc).__name__}: {exc}"[:500], seconds=round(time.monotonic() - started, 3))
            raise
        log_event(logger, "function_succeeded", function=function.name, reason=reason,
                  seconds=round(time.monotonic() - started, 3))
        return result

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.background:
            thread.join(max(0.0, deadline - time.monotonic()))


def _timer_request(past_due: bool) -> Any:
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=past_due)


def _event_grid_event(event: Mapping[str, Any]) -> Any:
    """One event as the Python worker hands it to an Event Grid trigger: azure.functions' own
    decoder (an EventGridEvent, or a CloudEvent for a CloudEvents-schema event)."""
    from azure.functions import meta
    from azure.functions.eventgrid import EventGridEventInConverter

    if not isinstance(event, Mapping):
        raise TypeError("an event must be a JSON object")
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata=None)


class TimerSchedules:
    """Every timer on its NCRONTAB schedule: one thread per timer that sleeps until the next
    occurrence, runs the function under its singleton lock (so a run still going delays the next
    instead of overlapping it, as the Functions timer listener awaits each run) and then computes
    the next occurrence after *now* (missed ones are not run twice)."""

    def __init__(self, host: FunctionHost, schedules: Mapping[str, Schedule]) -> None:
        self.host = host
        self.schedules = dict(schedules)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, schedule in self.schedules.items():
            function = self.host.functions[name.lower()]
            thread = threading.Thread(target=self._loop, args=(function, schedule), name=f"timer-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
            log_event(logger, "timer_scheduled", function=name, schedule=schedule.expression,
                      next=schedule.next_after(datetime.now(timezone.utc)).isoformat())

    def _loop(self, function: Function, schedule: Schedule) -> None:
        while not self._stop.is_set():
            due = schedule.next_after(datetime.now(timezone.utc))
            if self._stop.wait(max(0.0, (due - datetime.now(timezone.utc)).total_seconds())):
                return
            with self.host.singletons[function.name]:
                if self._stop.is_set():
                    return
                late = (datetime.now(timezone.utc) - due).total_seconds() > 1.0
                try:
                    self.host._run(function, _timer_request(past_due=late), reason=f"timer fired ({schedule.expression})")
                except Exception:  # noqa: BLE001 - logged; the next occurrence retries, as the host does
                    pass

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def timer_schedules(functions: list[Function], overrides: Mapping[str, str]) -> dict[str, Schedule]:
    """Each timer's schedule: its decorator's, or the `--schedule NAME=EXPR` override (ValueError
    naming the problem for an unknown timer or a bad expression)."""
    timers = {fn.name: fn for fn in functions if fn.trigger_type == "timerTrigger"}
    lowered = {name.lower(): name for name in timers}
    for name in overrides:
        if name.lower() not in lowered:
            raise ValueError(f"--schedule {name}=…: no timer {name!r} (timers: {', '.join(sorted(timers))})")
    chosen = {lowered[k.lower()]: v for k, v in overrides.items()}
    return {name: Schedule.parse(chosen.get(name, str(fn.trigger.get("schedule", "")))) for name, fn in timers.items()}
