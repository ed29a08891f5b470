"""HTTP: freezes, per model and global (function-key auth; the `freeze`/`unfreeze` operator actions).

POST   /api/freezes               {"model": NAME (omitted: every model), "until": ISO 8601 | "for": "2h",
                                   "comment": "..."}  → 201 new, 200 replaced
DELETE /api/freezes[?model=NAME]  unfreeze (no model: the global freeze) and release the newest held
                                  version → 200 {"unfrozen", "released": [...]}; 404 when not frozen
GET    /api/freezes               {"freezes": [...], "held": [...]}
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def parse_freeze(body: bytes) -> tuple[str | None, str | None, str | None, str]:
    """(model, until, for, comment) of a freeze request; ValueError with the reason."""
    try:
        raw = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("body must be JSON: {\"model\"?, \"until\"? | \"for\"?, \"comment\"?}") from None
    if not isinstance(raw, dict):
        raise ValueError("body must be a JSON object")
    unknown = sorted(set(raw) - {"model", "until", "for", "comment"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)} (model, until, for, comment)")
    for name in raw:
        if raw[name] is not None and not isinstance(raw[name], str):
            raise ValueError(f"{name} must be a string")
    return raw.get("model") or None, raw.get("until") or None, raw.get("for") or None, (raw.get("comment") or "")[:2000]


@bp.function_name("freezes")
@bp.route(route="freezes", methods=["GET"])
def list_freezes(req: func.HttpRequest) -> func.HttpResponse:
    from functions.bootstrap import app

    return _json(app().freezes_view())


@bp.function_name("freeze")
@bp.route(route="freezes", methods=["POST"])
def freeze(req: func.HttpRequest) -> func.HttpResponse:
    from datetime import datetime, timezone

    from functions.bootstrap import app
    from functions.domain.freezes import parse_until
    from functions.ports import AuthError

    application = app()
    try:
        model, until, for_, comment = parse_freeze(req.get_body())
        until = parse_until(until, for_, datetime.now(timezone.utc))
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    if model is not None and application.managed.get(model) is None:
        return _json({"error": f"model {model!r} is not managed (managed: {', '.join(application.managed.names)})"}, 404)
    try:
        caller = application.authorise("freeze", req.headers, model=model, comment=comment)
    except AuthError as exc:
        return _json({"error": exc.message}, exc.status)
    body, status = application.freeze(model, caller=caller, until=until, comment=comment)
    return _json(body, status)


@bp.function_name("unfreeze")
@bp.route(route="freezes", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
async def unfreeze(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.ports import AuthError

    application = app()
    model = req.params.get("model") or None
    comment = (req.params.get("comment") or "")[:2000]
    try:
        caller = application.authorise("unfreeze", req.headers, model=model, comment=comment)
    except AuthError as exc:
        return _json({"error": exc.message}, exc.status)
    body, status = await application.unfreeze(model, caller=caller, client=client, comment=comment)
    return _json(body, status)
