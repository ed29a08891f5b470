"""Which operator control makes sense for a rollout now: a pure decision over its record and audit
trail (the steps the workflow recorded), so an invalid one is answered 409 naming the state before
any event is raised.

    phase               from the record and the newest trail steps
    ──────────────────  ───────────────────────────────────────────────────────
    <finished state>    the record is not running (succeeded, rejected, rolled_back, ...)
    undo                a running undo (kind "undo"): no control applies
    awaiting_approval   the newest step is awaiting_approval
    paused              a canary step was paused and not resumed since
    canary              traffic was shifted after the production smoke test
    staging/production  anything earlier

    approve, reject     awaiting_approval
    abort               any running phase
    pause               canary
    resume              paused
    promote             canary or paused (full: skip the remaining steps)
    retry               a finished rollout that did not succeed (handoff.accept_retry decides further)

A control raised in a phase where the workflow cannot act on it would be recorded as ignored; this
check tells the operator at once instead. (A pause followed at once by a resume may be refused: the
trail says "paused" only once the workflow has taken the pause.)
"""

from __future__ import annotations

from typing import Any, Iterable

CONTROLS = ("approve", "reject", "abort", "pause", "resume", "promote")
RETRYABLE = ("rejected", "rolled_back", "failed", "abandoned")
_CANARY_START = "production_smoke"


def phase(record: dict[str, Any], trail: Iterable[dict[str, Any]]) -> str:
    """The rollout's phase (see the module docstring)."""
    state = record.get("state") or "running"
    if state != "running":
        return state
    if record.get("kind") == "undo":  # its own orchestration, which waits for no control
        return "undo"
    steps = [s.get("step") for s in sorted(trail, key=lambda s: s.get("seq", 0))]
    if steps and steps[-1] == "awaiting_approval":
        return "awaiting_approval"
    if _CANARY_START in steps:
        after = steps[steps.index(_CANARY_START) + 1:]
        if "traffic" in after:
            pauses = [s for s in after if s in ("paused", "resumed", "promoted", "promoted_full")]
            return "paused" if pauses and pauses[-1] == "paused" else "canary"
        return "production"
    return "staging"


def refusal(action: str, rollout_id: str, current: str) -> str | None:
    """None when `action` applies in phase `current`, else the 409's message naming the state."""
    if action not in CONTROLS + ("retry",):
        raise ValueError(f"unknown control {action!r}")
    if current == "undo":
        return f"{rollout_id} is an undo in progress (it runs to its end, gated by its smoke test): nothing to {action}"
    running = current in ("staging", "production", "awaiting_approval", "canary", "paused")
    if action == "retry":
        if current in RETRYABLE:
            return None
        if running:
            return f"rollout {rollout_id} is running ({current}): nothing to retry until it ends"
        return f"rollout {rollout_id} is {current}: nothing to retry"
    if not running:
        what = {"approve": "nothing to approve", "reject": "nothing to reject", "abort": "nothing to abort",
                "pause": "nothing to pause", "resume": "nothing to resume", "promote": "nothing to promote"}[action]
        return f"rollout {rollout_id} is {current}: {what}"
    if action in ("approve", "reject"):
        return None if current == "awaiting_approval" else \
            f"rollout {rollout_id} is running ({current}): it is not awaiting approval"
    if action == "abort":
        return None
    if action == "pause":
        if current == "canary":
            return None
        if current == "paused":
            return f"rollout {rollout_id} is paused already: resume or abort it"
        return f"rollout {rollout_id} is running ({current}): pause holds a canary step, and it is not in one"
    if action == "resume":
        return None if current == "paused" else f"rollout {rollout_id} is running ({current}, not paused): " \
                                                 "nothing to resume"
    # promote
    return None if current in ("canary", "paused") else \
        f"rollout {rollout_id} is running ({current}): promote skips canary steps, and it is not in its canary"
