"""Durable Functions: the rollout's one activity, `rollout_activity`, which runs the activity the
workflow named (functions/services/activities.py) with the App's ports."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions.shared.orchestration import ACTIVITY

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=ACTIVITY)
def rollout_activity(payload: dict[str, Any]) -> Any:
    from functions.bootstrap import app
    from functions.services.activities import dispatch

    return dispatch(app().ports, payload)
