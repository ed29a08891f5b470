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


def event_to_dict(event: func.EventGridEvent) -> dict[str, Any]:
    """func.EventGridEvent back to the Event Grid schema dict the domain parser reads."""
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
    from functions.bootstrap import app
    from functions.ports import PlatformError
    from functions.services.handoff import accept_events, start_accepted

    application = app()
    try:
        raw = event_to_dict(event)
    except Exception as exc:  # a payload the binding could not even map: log and drop
        log_event(logger, "model_registered_dropped", logging.WARNING, reason=f"unreadable event: {exc}")
        return
    try:
        accepted = accept_events([raw], application.managed, application.rollouts,
                                 application.settings.allowed_topics, freezes=application.freezes)
    except PlatformError as exc:
        if exc.transient:
            raise  # storage unavailable: let Event Grid redeliver
        log_event(logger, "model_registered_dropped", logging.ERROR, event_id=raw.get("id"), reason=str(exc))
        return
    await start_accepted(accepted, application.orchestrations(client), application.rollouts)
    try:  # a freeze that expired since the timer last ran; the timer retries whatever fails here
        await application.release_due_freezes(client)
    except Exception as exc:  # noqa: BLE001 - never turn a delivered event into a redelivery
        log_event(logger, "freeze_release_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:300])
