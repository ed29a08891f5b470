"""Durable Functions: the rollout orchestrator (functions/services/workflow.py, the same generator
the local driver runs). Its one activity is functions/triggers/rollout_activity.py.
"""

from __future__ import annotations

import azure.durable_functions as df

from functions.services import workflow

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=workflow.ORCHESTRATOR)
def rollout_orchestrator(context: df.DurableOrchestrationContext):
    result = yield from workflow.rollout_orchestrator(context)
    return result
