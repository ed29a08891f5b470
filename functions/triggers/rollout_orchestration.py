"""Durable Functions: the rollout orchestrator and its one dispatcher activity.

The workflow itself (functions/services/workflow.py) is shared with the local driver; these are the
Azure entry points only.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions.services import workflow

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=workflow.ORCHESTRATOR)
def rollout_orchestrator(context: df.DurableOrchestrationContext):
    result = yield from workflow.rollout_orchestrator(context)
    return result


@bp.activity_trigger(input_name="payload", activity=workflow.ACTIVITY)
def rollout_activity(payload: dict[str, Any]) -> Any:
    from functions.bootstrap import app
    from functions.services.activities import dispatch

    return dispatch(app().ports, payload)
