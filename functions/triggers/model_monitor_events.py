"""Event Grid trigger: AzureML RunStatusChanged → when a model-monitor threshold was breached, the
same retraining decision an Azure Monitor alert gets. Bad events are logged and dropped; only
transient failures raise (Event Grid retries)."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.shared.logs import log_event

bp = func.Blueprint()
logger = logging.getLogger("modelops.monitor")


@bp.function_name("run_status_changed")
@bp.event_grid_trigger(arg_name="event")
def run_status_changed(event: func.EventGridEvent) -> None:
    from functions.bootstrap import app
    from functions.domain.alerts import AlertError, alert_from_run_status
    from functions.services.retraining import handle_alert
    from functions.triggers.rollout_events import event_to_dict

    try:
        alert = alert_from_run_status(event_to_dict(event))
    except AlertError as exc:
        log_event(logger, "run_status_dropped", logging.WARNING, event_id=event.id, reason=exc.message)
        return
    if alert is None:
        return  # an ordinary run: not a monitor signal
    application = app()
    answer = handle_alert(alert, application.store, application.jobs, application.alert_policy)
    log_event(logger, "model_monitor_signal", event_id=event.id, status=answer.status, **answer.body)
    if answer.status == 503:
        raise RuntimeError(answer.body.get("error", "transient failure"))  # Event Grid redelivers
