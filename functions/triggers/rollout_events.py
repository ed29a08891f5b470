"""Event Grid trigger: ModelRegistered → decide → start the rollout orchestration (hand-off only).

Event Grid waits 30 s and redelivers the whole batch on any exception, for up to 24 h. So this
function validates, dedupes and hands off in milliseconds; bad events are logged and dropped
(returning normally), and only transient failures (storage unreachable) raise to get a retry.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.shared.logs import log_event

bp = df.Blueprint()
logger = logging.getLogger("modelops.events")
ORCHESTRATOR = "rollout_orchestrator"


def event_to_dict(event: func.EventGridEvent) -> dict[str, Any]:
    """func.EventGridEvent back to the Event Grid schema dict the core parser reads."""
    try:
        data = event.get_json()
    except ValueError:
        data = None
    return {
        "id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else "", "data": data,
        "dataVersion": event.data_version,
    }


@bp.function_name("model_registered")
@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def model_registered(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    from functions.bootstrap import runtime
    from functions.services.handoff import accept_events
    from functions.ports import PlatformError

    rt = runtime()
    try:
        raw = event_to_dict(event)
    except Exception as exc:  # a payload the binding could not even map: log and drop
        log_event(logger, "model_registered_dropped", logging.WARNING, reason=f"unreadable event: {exc}")
        return
    try:
        accepted = accept_events([raw], rt.managed, rt.rollouts, rt.settings.allowed_topics)
    except PlatformError as exc:
        if exc.transient:
            raise  # storage unavailable: let Event Grid redeliver
        log_event(logger, "model_registered_dropped", logging.ERROR, event_id=raw.get("id"), reason=str(exc))
        return
    for item in accepted:
        if item.decision.action != "rollout":
            continue
        instance_id = item.decision.run_key
        try:
            status = await client.get_status(instance_id)
            if status is not None and getattr(status, "runtime_status", None) is not None:
                log_event(logger, "model_registered_duplicate", instance_id=instance_id,
                          status=str(status.runtime_status))
                continue
            await client.start_new(ORCHESTRATOR, instance_id, item.orchestration_input)
            log_event(logger, "rollout_started", instance_id=instance_id, model=item.decision.model,
                      version=item.decision.version)
        except Exception:
            # release the claim so the redelivery can start it
            rt.rollouts.release(item.decision.model, instance_id)
            raise
