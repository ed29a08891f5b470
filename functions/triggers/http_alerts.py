"""POST /api/alerts: Azure Monitor action-group webhook (common alert schema) → retraining.

Answers fast (submission never waits for the job): 202 retrain, 200 skip/ignore, 4xx with a JSON
error for bad input, 503 for transient platform failures (the action group retries only
408/429/503/504). With MODELOPS_WEBHOOK_AUDIENCE set, a valid Entra ID bearer token is required
(Secure Webhook action).
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.shared.logs import log_event

bp = func.Blueprint()
logger = logging.getLogger("modelops.alerts")


def _json(body: dict, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


@bp.function_name("alert_webhook")
@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def alert_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from functions.bootstrap import app
    from functions.domain.config import ConfigError
    from functions.ports import AuthError, PlatformError
    from functions.services.retraining import handle_alert_body
    from functions.settings import SettingsError

    try:
        application = app()
        application.authorize_webhook(req.headers.get("Authorization"))
    except AuthError as exc:
        log_event(logger, "alert_unauthorised", logging.WARNING, status=exc.status, reason=exc.message)
        return _json({"error": exc.message}, exc.status)
    except (SettingsError, ConfigError) as exc:
        # misconfigured: answer 503 with the reason, so the action group retries while it is fixed
        log_event(logger, "alert_misconfigured", logging.ERROR, error=str(exc))
        return _json({"error": f"the alert webhook is misconfigured: {exc}"}, 503)
    dry_run = (req.params.get("dryRun") or "").lower() in ("1", "true", "yes")
    try:
        answer = handle_alert_body(req.get_body(), application.store, application.jobs, application.alert_policy,
                                   dry_run=dry_run, max_bytes=application.settings.alert_max_bytes)
    except PlatformError as exc:  # building a port itself failed (e.g. storage unreachable)
        return _json({"error": f"temporarily unable to process the alert: {str(exc)[:300]}"},
                     503 if exc.transient else 502)
    return _json(answer.body, answer.status)
