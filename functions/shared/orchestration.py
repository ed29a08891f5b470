"""The Durable function names of the rollout, defined here only: the triggers register them, the
hand-off starts ORCHESTRATOR, the workflow calls ACTIVITY and waits for APPROVAL_EVENT, and the
local driver runs the same generator under the same names. (A module of its own, stdlib only, so
the trigger modules can name them at cold start without importing the workflow.)"""

ORCHESTRATOR = "rollout_orchestrator"
ACTIVITY = "rollout_activity"
APPROVAL_EVENT = "approval"
# Operator controls reach a running rollout as one external event (abort | pause | resume | promote),
# data {"action", "by", "via", "comment", "at", ...}: Durable buffers events raised before the
# orchestration waits for them, and the local driver does the same.
CONTROL_EVENT = "control"
# `undo` (production back to a previous champion) is its own orchestration, not a rollout step.
UNDO_ORCHESTRATOR = "undo_orchestrator"
