"""HTTP: operator controls on rollouts, undo and the status view (function-key auth, like
http_rollouts.py). Every answer is audited (functions/services/operator_audit.py); 4xx bodies are
{"error": ...}.

POST /api/rollouts/{rollout_id}/actions/{action}   action ∈ approve reject abort pause resume promote retry;
                                                   body {"comment": str, "full": bool (promote)}, optional
                                                   → 202 {"rollout_id", "action", ...} | 404 | 409 | 403
POST /api/models/{model}/undo                      body {"to": "VERSION"?, "comment": str} → 202 {"rollout_id"}
GET  /api/status[?model=NAME]                      what `modelops status --json` prints
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def _body(req: func.HttpRequest, fields: dict[str, type]) -> dict[str, Any]:
    """The optional JSON object body, each field of its type (ValueError: the 400's message)."""
    raw = req.get_body() or b""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be JSON: " + json.dumps({k: t.__name__ for k, t in fields.items()})) from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    for key, kind in fields.items():
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            raise ValueError(f'"{key}" must be a {"boolean" if kind is bool else "string"}')
    return data


def _refused_token(action: str, model: str | None, rollout_id: str | None, exc: Any, comment: str) -> func.HttpResponse:
    """A bearer token that does not validate (401) or keys that cannot be fetched (503): audited."""
    from functions.bootstrap import app
    from functions.services.operator_audit import record_action

    record_action(app().store, action=action, caller=None, model=model, rollout_id=rollout_id, outcome="refused",
                  status=exc.status, reason=exc.message, comment=comment)
    return _json({"error": exc.message}, exc.status)


@bp.function_name("rollout_action")
@bp.route(route="rollouts/{rollout_id}/actions/{action}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def rollout_action(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.ports import AuthError, PlatformError
    from functions.services.operator import ACTIONS

    rollout_id, action = req.route_params.get("rollout_id", ""), req.route_params.get("action", "")
    if action not in ACTIONS:
        return _json({"error": f"unknown action {action!r}: one of {', '.join(ACTIONS)}"}, 404)
    try:
        body = _body(req, {"comment": str, "full": bool})
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    try:
        answer = await app().operator(req.headers, client).act(action, rollout_id, comment=body.get("comment") or "",
                                                               full=bool(body.get("full")))
    except AuthError as exc:
        return _refused_token(action, None, rollout_id, exc, body.get("comment") or "")
    except PlatformError as exc:
        return _json({"error": f"temporarily unable to {action}: {str(exc)[:300]}"}, 503 if exc.transient else 502)
    return _json(answer.body, answer.status)


@bp.function_name("model_undo")
@bp.route(route="models/{model}/undo", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def model_undo(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.ports import AuthError, PlatformError

    model = req.route_params.get("model", "")
    try:
        body = _body(req, {"to": str, "comment": str})
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    try:
        answer = await app().operator(req.headers, client).undo(model, to=(body.get("to") or "").strip() or None,
                                                                comment=body.get("comment") or "")
    except AuthError as exc:
        return _refused_token("undo", model, None, exc, body.get("comment") or "")
    except PlatformError as exc:
        return _json({"error": f"temporarily unable to undo: {str(exc)[:300]}"}, 503 if exc.transient else 502)
    return _json(answer.body, answer.status)


@bp.function_name("status")
@bp.route(route="status", methods=["GET"])
def status(req: func.HttpRequest) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.services.status import status_view

    application = app()
    model = req.params.get("model") or None
    return _json(status_view(application.rollouts, application.managed.names, model=model,
                             freezes=application.freezes))
