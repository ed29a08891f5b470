"""Every rollout activity is safe to run again (functions/services/activities.py): a host that died
after an activity did its work but before its result was recorded runs it again on resume, as
Durable does (at-least-once). Here every activity runs twice — the workflow sees the second
answer, as after such a resume — and a rollout that succeeds (then undone), and one rolled back end
exactly as with one run: same outcome, same trail (no step twice, none missing), same endpoints."""

from __future__ import annotations

from functions.adapters.local.orchestrator import LocalOrchestrator
from functions.domain.config import deployment_name
from functions.services.activities import OPS, dispatch
from functions.services.workflow import rollout_orchestrator, undo_orchestrator
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse)


class Twice(Harness):
    def __init__(self, models, overrides=None, *, twice: bool) -> None:
        super().__init__(models, overrides)
        self.ran: list[str] = []

        def run(payload):
            self.ran.append(payload["op"])
            first = dispatch(self.platform, payload)
            return dispatch(self.platform, payload) if twice else first

        self.driver = LocalOrchestrator({"rollout": rollout_orchestrator, "undo": undo_orchestrator},
                                        {"rollout_activity": run})


def rolled(twice: bool, second_model, figures=None, undo: bool = False):
    # staging_cleanup "delete": the cost step runs too (the default scales, a no-op at one instance)
    h = Twice({"1": GOOD, "2": second_model}, {"approval_required": True, "staging_cleanup": "delete"}, twice=twice)
    h.roll("1", approve={"approved": True, "by": "ana"})
    if figures:
        h.health.figures[deployment_name(MODEL, "2")] = figures
    out = h.roll("2", approve={"approved": True, "by": "ana"})
    if undo:  # production back to version 1 (its deployment is gone: re-created from the registry)
        h.driver.start("undo", "undo-1", {"undo": {"id": "undo-1", "model": MODEL, "version": "1", "by": "ana"},
                                          "config": h.config.to_dict()})
        out = h.driver.wait("undo-1", 30).output
    trail = [(r["seq"], r["step"], r["details"].get("percent")) for r in h.rollouts.trail(MODEL, out["id"])]
    endpoints = (h.staging.live(h.config.staging_endpoint), h.production.live(h.config.production_endpoint))
    return h, out["state"], out["reason"], trail, endpoints, h.rollouts.production(MODEL)["version"]


# the paths between them run every activity (the rollback: delete_deployment; the undo: version_contract)
PATHS = [("succeeds, then undone", GOOD, None, True), ("rolled back in the canary", GOOD, (200, 40, 30.0), False)]


def test_each_path_ends_the_same_when_every_activity_runs_twice():
    ran = set()
    for path, model, figures, undo in PATHS:
        once = rolled(False, model, figures, undo)
        twice = rolled(True, model, figures, undo)
        assert once[1] == ("succeeded" if undo else "rolled_back") and once[5] == "1", once  # v1 serves again
        assert twice[1:] == once[1:], path
        seqs = [seq for seq, _, _ in twice[3]]
        assert seqs == list(range(1, len(seqs) + 1)), path
        ran |= set(twice[0].ran)
    assert ran == set(OPS)  # every activity was repeated (a new one must join a path above)
