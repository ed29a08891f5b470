"""GET /api/health: liveness plus the non-secret facts an operator checks first.

`?deep=1` also runs the platform's checks (App.health_checks: in Azure, each managed endpoint and
its diagnostic setting, the Log Analytics tables, the rights those reads need, the store) and
answers 200 when every check holds, 503 with the failing ones named otherwise. Plain `GET
/api/health` stays a liveness probe that touches nothing.
"""

from __future__ import annotations

import json

import azure.functions as func

from functions import __version__
from functions.settings import Settings, SettingsError

bp = func.Blueprint()

DEEP = ("1", "true", "yes")


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _json({"status": "misconfigured", "error": str(exc), "version": __version__}, 503)
    body = {"status": "ok", "version": __version__, "platform": settings.platform}
    if (req.params.get("deep") or "").lower() not in DEEP:
        return _json(body, 200)
    try:
        from functions.bootstrap import app  # the App (and its adapters) only for a deep look

        checks = app().health_checks()
    except SettingsError as exc:
        return _json({**body, "status": "misconfigured", "error": str(exc)}, 503)
    except Exception as exc:  # noqa: BLE001 - a health probe answers; it does not crash
        return _json({**body, "status": "failing", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}, 503)
    failing = [c.name for c in checks if not c.ok]
    body.update(status="failing" if failing else "ok", failing=failing, checks=[c.to_dict() for c in checks])
    return _json(body, 503 if failing else 200)


def _json(body: dict, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")
