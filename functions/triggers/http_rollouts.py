"""HTTP: rollout status, audit trail and approvals (function-key auth).

GET  /api/rollouts[?model=NAME]              {"rollouts": [...]} (same shape as `modelops status --json`)
GET  /api/rollouts/{model}/{rollout_id}      the rollout record with its audit trail
POST /api/rollouts/{rollout_id}/approval     {"approved": true|false, "by": "...", "comment": "..."}
POST /api/rollouts/{model}/{version}/retry   {"by": "...", "comment": "..."} (optional): a new, audited run
                                             of a version whose rollout ended without success
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


@bp.function_name("rollouts")
@bp.route(route="rollouts", methods=["GET"])
def list_rollouts(req: func.HttpRequest) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.services.status import rollouts_view

    model = req.params.get("model") or None
    return _json(rollouts_view(app().rollouts, model))


@bp.function_name("rollout_detail")
@bp.route(route="rollouts/{model}/{rollout_id}", methods=["GET"])
def rollout_detail(req: func.HttpRequest) -> func.HttpResponse:
    from functions.bootstrap import app

    rollouts = app().rollouts
    model, rollout_id = req.route_params.get("model", ""), req.route_params.get("rollout_id", "")
    record = rollouts.get(model, rollout_id)
    if record is None:
        return _json({"error": f"no rollout {rollout_id!r} for model {model!r}"}, 404)
    return _json({**record, "audit": rollouts.trail(model, rollout_id)})


@bp.function_name("rollout_approval")
@bp.route(route="rollouts/{rollout_id}/approval", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def rollout_approval(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.domain.approvals import parse_approval
    from functions.shared.orchestration import APPROVAL_EVENT

    rollout_id = req.route_params.get("rollout_id", "")
    try:
        answer = parse_approval(req.get_body())
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    orchestrations = app().orchestrations(client)
    if not await orchestrations.exists(rollout_id):
        return _json({"error": f"no rollout orchestration {rollout_id!r}"}, 404)
    if not await orchestrations.raise_event(rollout_id, APPROVAL_EVENT, answer):
        return _json({"error": f"rollout {rollout_id!r} has finished: it is not awaiting approval"}, 409)
    return _json({"rollout_id": rollout_id, "sent": answer}, 202)


@bp.function_name("rollout_retry")
@bp.route(route="rollouts/{model}/{version}/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def rollout_retry(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.domain.approvals import parse_actor
    from functions.ports import PlatformError
    from functions.services.handoff import accept_retry, start_retry

    model, version = req.route_params.get("model", ""), req.route_params.get("version", "")
    try:
        by, comment = parse_actor(req.get_body(), default_by="function key")
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    application = app()
    try:
        in_workspace = application.ports.registry.get_workspace_model(model, version) is not None
        answer = accept_retry(model, version, application.managed, application.rollouts, by=by, comment=comment,
                              in_workspace=in_workspace)
    except PlatformError as exc:
        return _json({"error": f"temporarily unable to retry: {str(exc)[:300]}"}, 503 if exc.transient else 502)
    body = {"action": answer.decision.action, "reason": answer.decision.reason, "model": model, "version": version}
    if answer.status != 202:
        return _json({**body, "error": answer.decision.reason}, answer.status)
    await start_retry(answer, application.orchestrations(client), application.rollouts)
    return _json({**body, "rollout_id": answer.decision.run_key}, 202)
