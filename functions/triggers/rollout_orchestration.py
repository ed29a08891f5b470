"""Durable Functions: the rollout orchestrator (functions/services/workflow.py, the same generator
the local driver runs) and the undo orchestrator (`undo MODEL [--to VERSION]`). Their one activity
is functions/triggers/rollout_activity.py.
"""

from __future__ import annotations

import azure.durable_functions as df

from functions.shared.orchestration import ORCHESTRATOR, UNDO_ORCHESTRATOR

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def rollout_orchestrator(context: df.DurableOrchestrationContext):
    from functions.services import workflow  # on first replay, not at cold start

    result = yield from workflow.rollout_orchestrator(context)
    return result


@bp.orchestration_trigger(context_name="context", orchestration=UNDO_ORCHESTRATOR)
def undo_orchestrator(context: df.DurableOrchestrationContext):
    from functions.services import workflow

    result = yield from workflow.undo_orchestrator(context)
    return result
