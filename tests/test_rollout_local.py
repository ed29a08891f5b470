"""Rollouts on the real local platform: inference-server processes behind front doors, the real
event handler, the workflow under the local driver, live traffic through the production front door.

Order matters (module-scoped platform): v1 first release → v2 under load → bad v3 rejected →
v4 canary with injected errors rolled back → concurrency and ordering of deliveries.

No wall-clock figure is asserted: the request rate a rollout serves under live traffic is printed
by `make bench-rollout` (bench/rollout_load.py). These tests assert outcomes, counts, audit trails
and the order of events (timestamps the test records); deadlines are hang guards only.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from functions.adapters.local.loadgen import LoadGenerator
from functions.shared.eventgrid import model_registered_payload
from functions.bootstrap import App, build_app
from functions.domain.config import deployment_name
from functions.settings import Settings
from ml.datagen import generate
from functions.services.records import RolloutStore
from tests.conftest import SERVING_PYTHON, require_serving_env, seed_evaluation_data
from tests.races import RaceStore, run_together

pytestmark = pytest.mark.integration
MODEL = "credit-card-default"
BAKE = 2.5
OVERRIDES = {
    "poll_seconds": 0.2,
    "instance_count": 2,  # two server workers per deployment, as two instances would be
    # 30-40 requests/s offered × 10% × 2.5 s ≈ 7 canary requests in a first window; a thinner window
    # (a loaded machine) is extended, up to 4 bakes, rather than judged
    "canary": {"bake_seconds": BAKE, "max_error_rate": 0.02, "max_p90_ms": 2000.0, "min_requests": 4,
               "max_bake_seconds": 4 * BAKE},
    "gates": {"latency_requests": 20, "latency_p95_ms": 2000.0, "evaluation_rows": 1000, "min_roc_auc": 0.65},
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    require_serving_env()
    home = tmp_path_factory.mktemp("local-platform")
    settings = Settings.from_env({"MODELOPS_HOME": str(home), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON)})
    with build_app(settings, overrides=OVERRIDES) as p:
        seed_evaluation_data(p.store, MODEL, rows=1000)
        yield p


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, artifact_dir, bad_artifact):
    """v1 = the session artifact; v2 = retrained on other data; bad = constant predictions."""
    from ml.training import train_from_file

    root = tmp_path_factory.mktemp("artifacts")
    data = root / "v2.csv"
    generate(6_000, seed=21).to_csv(data, index=False)
    v2 = root / "v2"
    train_from_file(data, v2, search_iterations=1, seed=3)
    return {"v1": artifact_dir, "v2": v2, "bad": bad_artifact}


def register(platform: App, folder: Path) -> dict:
    ref, _ = platform.local.workspace.register(folder, MODEL)
    outcomes = [o for o in platform.wait_all(timeout=300) if o.get("version") == ref.version]
    assert outcomes, f"no rollout ran for version {ref.version}"
    return outcomes[0]


def production_target(platform: App):
    cfg = platform.managed.get(MODEL)

    def target():
        state = platform.local.production.get_endpoint(cfg.production_endpoint)
        return state.scoring_uri, platform.local.production.get_key(cfg.production_endpoint)

    return target


def load_rows() -> list[dict]:
    return generate(300, seed=77, labelled=False).to_dict(orient="records")


def steps(platform: App, outcome: dict) -> list[str]:
    return [r["step"] for r in platform.rollouts.trail(MODEL, outcome["id"])]


class TrafficWatcher(threading.Thread):
    """Records every production traffic map it sees change, with time.time() — the clock the load
    generator stamps its answers with — so the test can order answers against traffic changes."""

    def __init__(self, platform: App) -> None:
        super().__init__(daemon=True)
        self.endpoint = platform.managed.get(MODEL).production_endpoint
        self.production = platform.local.production
        self.seen: list[tuple[float, dict | None]] = []
        self._done = threading.Event()

    def run(self) -> None:
        last: object = ()
        while not self._done.is_set():
            state = self.production.get_endpoint(self.endpoint)
            traffic = dict(state.traffic) if state is not None else None
            if traffic != last:
                self.seen.append((time.time(), traffic))
                last = traffic
            self._done.wait(0.01)

    def __enter__(self) -> "TrafficWatcher":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join(60)

    def first(self, predicate, after: float = 0.0) -> float | None:
        """When a map matching `predicate` was first seen after `after` (None: never)."""
        return next((at for at, traffic in self.seen if at > after and traffic and predicate(traffic)), None)


def sent_at(answer) -> float:
    """When the load generator sent the request (its answer's time minus the latency it measured)."""
    return answer.at - answer.latency_ms / 1000


def wait_for_answers(load: LoadGenerator, more_than: int) -> None:
    """Until the clients have more than `more_than` answers; their max_seconds is the hang guard."""
    while len(load.answers) <= more_than:
        assert any(w.is_alive() for w in load._workers), "the load generator stopped"
        time.sleep(0.05)


def test_first_version_is_released_to_production(platform, artifacts):
    outcome = register(platform, artifacts["v1"])
    assert outcome["state"] == "succeeded", outcome
    cfg = platform.managed.get(MODEL)
    assert platform.local.production.get_endpoint(cfg.production_endpoint).traffic == {deployment_name(MODEL, "1"): 100}
    answer = platform.local.production.score(cfg.production_endpoint, json.loads(
        (Path(__file__).parent.parent / "ml" / "sample.json").read_text()))
    assert answer.status == 200 and 0 <= answer.body["predictions"][0] <= 1
    # production serves the registry copy
    registry_copy = platform.local.registry.get_registry_model(MODEL, "1")
    assert registry_copy is not None and registry_copy.tags["source_event_id"]


def test_v2_rolls_out_under_live_traffic_with_zero_failed_requests(platform, artifacts):
    # offered 40/s by 12 clients; every answer a 200 at whatever rate the machine served (the rate
    # is a benchmark figure: make bench-rollout), and the traffic ran across the whole canary
    v1, v2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")
    with TrafficWatcher(platform) as watcher, \
            LoadGenerator(production_target(platform), load_rows(), rate=40, threads=12) as load:
        wait_for_answers(load, 0)  # traffic flows before the event arrives...
        outcome = register(platform, artifacts["v2"])
        wait_for_answers(load, len(load.answers) + 20)  # ...and after the last step
    summary = load.summary()
    assert outcome["state"] == "succeeded", outcome
    assert summary["failed"] == 0, summary
    assert summary["by_deployment"].get(v1, 0) > 0 and summary["by_deployment"].get(v2, 0) > 0
    trail = steps(platform, outcome)
    for step in ("started", "contract", "staging_deployment_created", "gates", "staging_traffic", "promoted",
                 "production_deployment_created", "production_smoke", "traffic", "health", "succeeded"):
        assert step in trail, step
    judged = [r["details"] for r in platform.rollouts.trail(MODEL, outcome["id"])
              if r["step"] == "health" and not r["details"].get("extended")]
    assert trail.count("traffic") == 3 and len(judged) == 3 and all(d["healthy"] for d in judged)
    # each step was judged on live requests the canary served (min_requests of them at least)
    assert all(d["figures"]["requests"] >= OVERRIDES["canary"]["min_requests"] for d in judged), judged
    traffic_maps = [r["details"]["traffic"] for r in platform.rollouts.trail(MODEL, outcome["id"])
                    if r["step"] == "traffic"]
    assert traffic_maps == [{v1: 90, v2: 10}, {v1: 50, v2: 50}, {v1: 0, v2: 100}]
    # the load ran before the canary got traffic and after v2 took it all (the test's own clock)
    canary_from = watcher.first(lambda t: t.get(v2, 0) > 0)
    v2_alone = watcher.first(lambda t: t.get(v2) == 100)
    assert canary_from is not None and v2_alone is not None, watcher.seen
    assert min(a.at for a in load.answers) < canary_from < v2_alone < max(a.at for a in load.answers)
    cfg = platform.managed.get(MODEL)
    assert platform.local.production.get_endpoint(cfg.production_endpoint).traffic == {v2: 100}
    assert platform.local.production.get_deployment(cfg.production_endpoint, v1) in (None,) or \
        platform.local.production.get_deployment(cfg.production_endpoint, v1).provisioning_state == "Deleting"


def test_a_bad_model_is_rejected_at_staging_and_production_keeps_the_champion(platform, artifacts):
    outcome = register(platform, artifacts["bad"])
    assert outcome["state"] == "rejected", outcome
    assert "quality" in outcome["reason"]
    cfg = platform.managed.get(MODEL)
    champion = deployment_name(MODEL, "2")
    assert platform.local.production.get_endpoint(cfg.production_endpoint).traffic == {champion: 100}
    report = json.loads(platform.store.get(outcome["gate_report"])[0])
    assert {g["name"]: g["passed"] for g in report["gates"]}["quality"] is False
    assert platform.local.registry.get_registry_model(MODEL, outcome["version"]) is None


def test_a_canary_with_injected_errors_is_rolled_back_and_only_its_share_fails(platform, artifacts):
    cfg = platform.managed.get(MODEL)
    champion = deployment_name(MODEL, "2")
    next_version = str(int(platform.local.workspace.versions(MODEL)[-1]) + 1)
    canary = deployment_name(MODEL, next_version)
    injected: list[float] = []

    def inject_when_deployed(stop: threading.Event):
        # after the production smoke test, as soon as the canary receives live traffic
        while not stop.is_set():
            state = platform.local.production.get_endpoint(cfg.production_endpoint)
            if state is not None and state.traffic.get(canary, 0) > 0:
                injected.append(time.time())  # before the fault exists: no failure can precede it
                platform.local.production.inject_fault(cfg.production_endpoint, canary, error_rate=1.0, status=500)
                return
            time.sleep(0.05)

    stop = threading.Event()
    injector = threading.Thread(target=inject_when_deployed, args=(stop,), daemon=True)
    injector.start()
    with TrafficWatcher(platform) as watcher, \
            LoadGenerator(production_target(platform), load_rows(), rate=30, threads=8) as load:
        wait_for_answers(load, 0)
        outcome = register(platform, artifacts["v2"])
        wait_for_answers(load, len(load.answers) + 20)  # the champion keeps serving after the rollback
    stop.set()
    assert outcome["state"] == "rolled_back", outcome
    assert "health check failed at 10%" in outcome["reason"] and "error rate" in outcome["reason"]
    assert outcome["figures"]["errors"] > 0
    summary = load.summary()
    # Requests the champion served never failed; failures are the canary's only.
    assert summary["failed_by_deployment"].get(champion, 0) == 0
    assert set(summary["failed_by_deployment"]) <= {canary}
    failures = [a for a in load.answers if a.status != 200]
    assert failures, "the injected errors should have been visible"
    # ...and confined to one health window, shown by the order of events rather than by seconds:
    # one canary step (10%), judged once → rolled back; and by the test's own timestamps, the canary
    # got traffic (and only then its fault) → every failure → the rollback's traffic map.
    trail = platform.rollouts.trail(MODEL, outcome["id"])
    assert [r["details"]["traffic"] for r in trail if r["step"] == "traffic"] == [{champion: 90, canary: 10}]
    judged = [r["details"] for r in trail if r["step"] == "health" and not r["details"].get("extended")]
    assert len(judged) == 1 and judged[0]["healthy"] is False and judged[0]["percent"] == 10, judged
    ending = next(r for r in reversed(trail) if r["step"] == "rolled_back")
    assert ending["details"]["traffic"] == {champion: 100}
    # after it only the cost step (staging_cleanup: instance_count 2 is scaled to 1 once the version is decided)
    assert [r["step"] for r in trail[trail.index(ending) + 1:]] == ["staging_cleanup"]
    canary_from = watcher.first(lambda t: t.get(canary, 0) > 0)
    canary_until = watcher.first(lambda t: t.get(canary, 0) == 0 and t.get(champion) == 100, after=canary_from or 0)
    assert injected and canary_from is not None and canary_until is not None, watcher.seen
    assert all(a.at > injected[0] for a in failures)  # answered after the fault was injected
    assert all(sent_at(a) < canary_until for a in failures)  # sent before the canary lost its traffic
    assert max(a.at for a in load.answers) > canary_until  # and the clients kept going afterwards
    assert summary["failed"] <= 0.3 * summary["requests"]
    assert platform.local.production.get_endpoint(cfg.production_endpoint).traffic == {champion: 100}


def test_a_canary_nobody_calls_is_rolled_back_not_promoted(platform, artifacts):
    """No data is not success: with no client traffic the canary's windows hold no requests, the
    bake is extended up to max_bake_seconds and the rollout fails; the champion keeps serving."""
    cfg = platform.managed.get(MODEL)
    champion = platform.local.production.get_endpoint(cfg.production_endpoint).traffic
    outcome = register(platform, artifacts["v2"])  # its wait_all(timeout=300) is the hang guard
    assert outcome["state"] == "rolled_back", outcome
    assert "not enough traffic" in outcome["reason"] and "0 request(s)" in outcome["reason"]
    assert platform.local.production.get_endpoint(cfg.production_endpoint).traffic == champion
    health = [r["details"] for r in platform.rollouts.trail(MODEL, outcome["id"]) if r["step"] == "health"]
    assert [d.get("extended", False) for d in health] == [True, True, True, False]  # 4 × BAKE in all
    assert health[-1]["figures"]["baked_seconds"] == pytest.approx(4 * BAKE)  # the workflow's count, not a clock


def test_fifty_concurrent_deliveries_of_one_event_start_one_rollout_and_an_older_one_is_skipped(
        platform, artifacts):
    older, older_payload = platform.local.workspace.register(artifacts["v2"], MODEL, emit=False)
    ref, payload = platform.local.workspace.register(artifacts["v2"], MODEL, emit=False)
    # every delivery decides before any claim is written (RaceStore): only the create-only claim picks one
    race = RaceStore(platform.store, f"rollouts/{MODEL}/", contenders=50, timeout=60.0)
    platform.rollouts = RolloutStore(race)
    with LoadGenerator(production_target(platform), load_rows(), rate=30, threads=8):  # the canary needs traffic
        try:
            delivered = run_together(50, lambda i: platform.deliver(json.dumps(payload)), race)
        finally:
            platform.rollouts = RolloutStore(platform.store)
        results = [a.decision.action for accepted in delivered for a in accepted]
        assert results.count("rollout") == 1 and results.count("duplicate") == 49
        assert (race.waited, race.won, race.lost) == (50, 1, 49)
        # the older version's event arrives late, while the newer one rolls out
        late = platform.deliver(json.dumps(older_payload))[0].decision
        assert late.action == "skip" and f"newer version ({ref.version}) is already rolling out" in late.reason
        outcomes = [o for o in platform.wait_all(timeout=300) if o.get("version") == ref.version]
    assert len(outcomes) == 1 and outcomes[0]["state"] == "succeeded", outcomes
    assert platform.rollouts.get(MODEL, late.run_key)["state"] == "skipped"
    assert platform.deliver(json.dumps(older_payload))[0].decision.action == "duplicate"


def test_a_version_older_than_production_is_skipped(platform):
    event = [model_registered_payload(platform.local.workspace.topic, MODEL, "0", {})]
    decision = platform.deliver(json.dumps(event))[0].decision
    assert decision.action == "skip" and "not newer than production version" in decision.reason
    assert platform.rollouts.get(MODEL, decision.run_key)["state"] == "skipped"


@pytest.mark.parametrize("payload", [b"{not json", b"[]", b'[{"eventType": 5}]', b'{"data": []}',
                                     json.dumps([{"eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                                                  "topic": "t", "subject": "models/x", "data": {}}]).encode()])
def test_malformed_deliveries_are_dropped_without_an_exception(platform, payload):
    accepted = platform.deliver(payload)
    assert all(a.decision.action == "invalid" for a in accepted)
