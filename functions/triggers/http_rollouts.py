"""HTTP: rollout status, audit trail and approvals (function-key auth).

GET  /api/rollouts[?model=NAME]              {"rollouts": [...]} (same shape as `modelops status --json`)
GET  /api/rollouts/{model}/{rollout_id}      the rollout record with its audit trail
POST /api/rollouts/{rollout_id}/approval     {"approved": true|false, "by": "...", "comment": "..."} (audited
                                             like POST /api/rollouts/{id}/actions/approve|reject: http_controls.py)
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
    from functions.domain import controls
    from functions.domain.approvals import parse_approval
    from functions.ports import AuthError
    from functions.services.operator_audit import record_action
    from functions.shared.orchestration import APPROVAL_EVENT

    rollout_id = req.route_params.get("rollout_id", "")
    try:
        answer = parse_approval(req.get_body())
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    application = app()
    action = "approve" if answer["approved"] else "reject"
    record = application.rollouts.find(rollout_id)
    model = record["model"] if record else None
    caller: object = None
    try:
        caller, refused = application.authorisation_check(action, req.headers, model=model, rollout=record)
    except AuthError as exc:  # a token that does not validate (401) or keys that cannot be fetched (503)
        refused, status = exc.message, exc.status
        record_action(application.store, action=action, caller=None, model=model, rollout_id=rollout_id,
                      outcome="refused", status=status, reason=refused, comment=answer["comment"])
        return _json({"error": refused}, status)

    def audited(body: dict, status: int) -> func.HttpResponse:  # every answer, as the actions route does
        outcome = {202: "accepted", 403: "refused", 404: "not_found"}.get(status, "invalid")
        record_action(application.store, action=action, caller=caller, model=model, rollout_id=rollout_id,
                      outcome=outcome, status=status, reason=body.get("error", ""), comment=answer["comment"])
        return _json(body, status)

    orchestrations = application.orchestrations(client)
    if not await orchestrations.exists(rollout_id):
        return audited({"error": f"no rollout orchestration {rollout_id!r}"}, 404)
    if record is not None:
        invalid = controls.refusal(action, rollout_id, controls.phase(record, application.rollouts.trail(
            record["model"], rollout_id)))
        if invalid:
            return audited({"error": invalid}, 409)
    if refused:
        return audited({"error": refused}, 403)
    if not await orchestrations.raise_event(rollout_id, APPROVAL_EVENT, answer):
        return audited({"error": f"rollout {rollout_id!r} has finished: it is not awaiting approval"}, 409)
    return audited({"rollout_id": rollout_id, "sent": answer}, 202)


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
