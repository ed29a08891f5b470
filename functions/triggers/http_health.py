"""GET /api/health: liveness plus the non-secret facts an operator checks first."""

from __future__ import annotations

import json

import azure.functions as func

from functions import __version__
from functions.settings import Settings, SettingsError

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _json({"status": "misconfigured", "error": str(exc), "version": __version__}, 503)
    return _json({"status": "ok", "version": __version__, "platform": settings.platform}, 200)


def _json(body: dict, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")
