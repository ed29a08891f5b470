"""Two models the project was never written for, side by side on the real embedded platform, by
configuration only: the seeds' iris classifier registered as an MLflow model (multiclass, 4 numeric
features, rows in, {"result": [...]} out, skops) and a diabetes regression (records, a value per
row). Each is gated on its own metric, rolled out, served under live traffic, exported with its own
columns and drift-checked against its own reference; drift in the regression's traffic retrains
that model only (its own retraining command), and its v2 rolls out under live traffic.

No wall-clock figure is asserted: outcomes, columns, counts, audit trails.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from functions.adapters.local.loadgen import LoadGenerator
from functions.bootstrap import App, build_app
from functions.settings import Settings
from tests.conftest import SERVING_PYTHON, require_serving_env
from tests.model_contracts import diabetes_records, iris_rows

pytestmark = pytest.mark.integration
IRIS, DIABETES = "iris", "diabetes"
BAKE = 2.5
SLICE = timedelta(seconds=5)
LAG = timedelta(seconds=1)
OVERRIDES = {
    "poll_seconds": 0.2,
    "canary": {"bake_seconds": BAKE, "max_error_rate": 0.02, "max_p90_ms": 2000.0, "min_requests": 3,
               "max_bake_seconds": 6 * BAKE},
    "gates": {"latency_requests": 10, "latency_p95_ms": 2000.0, "evaluation_rows": 500},
}
RETRAIN_DIABETES = ["{python}", "-c", "import sys; from ml.sample_models import train_diabetes; "
                    "train_diabetes(sys.argv[1], model_name='diabetes', seed=1)", "{output}"]
MODELS = {
    # the iris MLflow folder brings its contract.json (target, task, rows, "result"); configuration
    # adds only the platform's word: the accuracy it must reach
    IRIS: {"gates": {"min_metric": 0.9}},
    # a lower-is-better metric: min_metric is a ceiling on RMSE
    DIABETES: {"gates": {"min_metric": 80.0, "champion_tolerance": 1.0}, "retraining_command": RETRAIN_DIABETES},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from ml.mlflow_models import save_iris
    from ml.sample_models import train_diabetes

    root = tmp_path_factory.mktemp("models")
    return {IRIS: save_iris(root / "iris"), DIABETES: train_diabetes(root / "diabetes", model_name=DIABETES)}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, models):
    from ml.mlflow_models import IRIS_TARGET, iris_frame
    from ml.sample_models import diabetes_frame

    require_serving_env()
    home = tmp_path_factory.mktemp("many-models")
    settings = Settings.from_env({"MODELOPS_HOME": str(home), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON),
                                  "MODELOPS_MODELS": json.dumps(MODELS),
                                  "MODELOPS_DRIFT_CONFIG": json.dumps({"min_current_rows": 60})})
    with build_app(settings, overrides=OVERRIDES) as p:
        features, target = iris_frame()
        iris_eval = features.assign(**{IRIS_TARGET: target.to_numpy()})
        p.store.put(p.managed.get(IRIS).evaluation_data, iris_eval.to_csv(index=False).encode())
        p.store.put(p.managed.get(DIABETES).evaluation_data, diabetes_frame().to_csv(index=False).encode())
        yield p


def target(platform: App, model: str):
    endpoint = platform.managed.get(model).production_endpoint

    def resolve():
        state = platform.local.production.get_endpoint(endpoint)
        return state.scoring_uri, platform.local.production.get_key(endpoint)

    return resolve


def test_two_models_of_their_own_contracts_roll_out_export_drift_and_retrain_one(platform, models):
    # 1. Both registered at once; their rollouts run concurrently, each on its own endpoints.
    refs = {name: platform.local.workspace.register(folder, name)[0] for name, folder in models.items()}
    outcomes = {o["model"]: o for o in platform.wait_all(timeout=600)}
    for name in (IRIS, DIABETES):
        assert outcomes[name]["state"] == "succeeded", outcomes[name]
        assert outcomes[name]["version"] == refs[name].version
    iris_contract = json.loads(platform.store.get(f"contracts/{IRIS}/current.json")[0])
    diabetes_contract = json.loads(platform.store.get(f"contracts/{DIABETES}/current.json")[0])
    assert iris_contract["source"] == "MLmodel + contract.json" and iris_contract["request_shape"] == "rows"
    assert diabetes_contract["task"] == "regression" and diabetes_contract["source"] == "model_card.json"
    for name, metric in ((IRIS, "accuracy"), (DIABETES, "rmse")):
        report = json.loads(platform.store.get(outcomes[name]["gate_report"])[0])
        quality = next(g for g in report["gates"] if g["name"] == "quality")
        assert quality["passed"] and quality["figures"]["metric"] == metric, quality
    iris_endpoint = platform.managed.get(IRIS).production_endpoint
    diabetes_endpoint = platform.managed.get(DIABETES).production_endpoint
    assert iris_endpoint != diabetes_endpoint
    answer = platform.local.production.score(iris_endpoint, {"data": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.status == 200 and answer.body == {"result": [0]}  # the seeds' shape, served from the MLflow model

    # 2. Live traffic for both: iris from its own population, diabetes from a shifted one.
    with LoadGenerator(target(platform, IRIS), iris_rows(), rate=12, threads=3, max_seconds=900) as iris_load, \
            LoadGenerator(target(platform, DIABETES), diabetes_records(shifted=True), rate=12, threads=3,
                          max_seconds=900) as diabetes_load:
        start = datetime.now(timezone.utc)
        while min(len(iris_load.answers), len(diabetes_load.answers)) < 150:
            time.sleep(0.5)
        end = datetime.now(timezone.utc)
        time.sleep((SLICE + LAG).total_seconds() + 1)  # the window's last slice closes

        # 3. Export: each model's records land in Parquet with its own columns.
        exported = platform.export_logs(now=datetime.now(timezone.utc), slice_length=SLICE, lag=LAG,
                                        since=start.replace(microsecond=0) - timedelta(seconds=10))
        for name, contract in ((IRIS, iris_contract), (DIABETES, diabetes_contract)):
            report = exported[name]
            assert report["error"] == "" and report["rows"] > 0 and report["quarantined"] == 0, report
            columns = set(pq.read_schema(platform.local.home / "store" / report["files"][0]).names)
            assert {f["name"] for f in contract["features"]} <= columns, columns
        assert not {f["name"] for f in iris_contract["features"]} & {f["name"] for f in diabetes_contract["features"]}

        # 4. Drift against each model's own reference: only the shifted one drifts, and only it retrains.
        items = {item["check"]["model"]: item for item in platform.check_drift(now=end + timedelta(seconds=SLICE.seconds),
                                                                      window=end - start + SLICE * 2)}
        assert items[IRIS]["check"]["status"] == "no_drift", items[IRIS]["check"]
        assert items[DIABETES]["check"]["status"] == "drift", items[DIABETES]["check"]
        assert not items[IRIS].get("alert")
        alert = items[DIABETES]["alert"]
        assert alert["status"] == 202 and alert["body"].get("job"), alert
        jobs = [j for j in platform.local.jobs.list_running(IRIS)]
        assert jobs == []
        job = platform.jobs.wait(alert["body"]["job"], timeout=600)
        assert job["status"] == "Completed" and job["model"] == DIABETES, job

        # 5. The retrained version rolls out under live traffic: a canary against the champion.
        second = [o for o in platform.wait_all(timeout=600) if o["model"] == DIABETES
                  and o["version"] == job["registered_version"]][0]
        assert second["state"] == "succeeded", second
        trail = [r["step"] for r in platform.rollouts.trail(DIABETES, second["id"])]
        assert trail.count("traffic") == len(OVERRIDES_STEPS) and "health" in trail
    for load in (iris_load, diabetes_load):
        summary = load.summary()
        assert summary["failed"] == 0, summary
    assert platform.rollouts.production(IRIS)["version"] == refs[IRIS].version  # iris untouched
    assert platform.rollouts.production(DIABETES)["version"] == job["registered_version"]


OVERRIDES_STEPS = (10, 50, 100)
