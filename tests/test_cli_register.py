"""`modelops register` and `modelops rollouts retry` as a user runs them (CLI subprocesses, real
inference servers): honest exit codes (0 succeeded, 2 bad input, 3 the rollout did not succeed),
the evaluation data the README's path needs, `--no-wait` ending its rollout consistently, and a
version that can be tried again. One home for the module, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.adapters.local.endpoints import read_states
from functions.adapters.local.store import DirectoryStore
from functions.services.records import RolloutStore
from functions.settings import REPO_ROOT
from ml.datagen import generate
from tests.conftest import SERVING_PYTHON, require_serving_env

pytestmark = pytest.mark.integration
MODEL = "credit-card-default"
V1, V2 = "credit-card-default-v1", "credit-card-default-v2"
# short bakes and no client traffic: a canary here is judged on silence, which must fail
CONFIG = {MODEL: {"poll_seconds": 0.2, "canary": {"bake_seconds": 1.0, "max_bake_seconds": 2.0},
                  "gates": {"latency_requests": 5, "latency_p95_ms": 10000.0, "evaluation_rows": 300,
                            "min_roc_auc": 0.6, "champion_tolerance": 0.05}}}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    require_serving_env()
    return tmp_path_factory.mktemp("cli-home")


def run(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELOPS_HOME": str(home), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON),
           "MODELOPS_MODELS": json.dumps(CONFIG)}
    return subprocess.run([sys.executable, "-m", "functions.cli.main", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rollouts(home: Path) -> RolloutStore:
    return RolloutStore(DirectoryStore(home / "store"))


@pytest.fixture(scope="module")
def evaluation_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "evaluation.csv"
    generate(600, seed=1234).to_csv(path, index=False)
    return path


def test_on_a_fresh_home_register_asks_for_the_evaluation_data_and_registers_nothing(home, artifact_dir):
    out = run(home, "register", "--model-dir", str(artifact_dir))
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "--evaluation-data FILE" in out.stderr
    assert "datasets/credit-card-default/evaluation.csv" in out.stderr
    assert not (home / "workspace" / "models" / MODEL).exists() or not any((home / "workspace" / "models" / MODEL)
                                                                           .iterdir())


def test_evaluation_data_that_cannot_be_used_is_refused_before_anything_starts(home, artifact_dir, tmp_path):
    semicolons = tmp_path / "eval.csv"
    generate(50, seed=3).to_csv(semicolons, index=False, sep=";")
    out = run(home, "register", "--model-dir", str(artifact_dir), "--evaluation-data", str(semicolons))
    assert out.returncode == 2 and out.stderr.startswith("error: --evaluation-data") and "lacks column" in out.stderr


def test_register_with_evaluation_data_releases_the_first_version_and_exits_0(home, artifact_dir, evaluation_csv):
    out = run(home, "register", "--model-dir", str(artifact_dir), "--evaluation-data", str(evaluation_csv), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["version"] == "1" and result["rollouts"][0]["state"] == "succeeded"
    stored = DirectoryStore(home / "store").get(f"datasets/{MODEL}/evaluation.csv")
    assert stored is not None and stored[0] == evaluation_csv.read_bytes()


def test_a_rejected_version_exits_3_and_production_keeps_the_champion(home, bad_artifact):
    out = run(home, "register", "--model-dir", str(bad_artifact))  # evaluation data is kept from before
    assert out.returncode == 3, out
    assert "rollout → rejected: gate failed: quality" in out.stdout
    assert read_states(home / "production")["credit-card-default-prod"]["traffic"] == {V1: 100}


def test_no_wait_registers_and_ends_its_rollout_consistently_with_how_to_run_it(home, artifact_dir):
    out = run(home, "register", "--model-dir", str(artifact_dir), "--no-wait")
    assert out.returncode == 0, out
    assert "registered credit-card-default:3" in out.stdout
    assert "rollout → abandoned:" in out.stdout and "--no-wait" in out.stdout
    assert "run it with: modelops rollouts retry credit-card-default 3" in out.stdout
    record = [r for r in rollouts(home).list(MODEL) if r["version"] == "3"][0]
    assert record["state"] == "abandoned" and rollouts(home).running_ids() == []
    production = read_states(home / "production")["credit-card-default-prod"]
    assert production["traffic"] == {V1: 100} and set(production["deployments"]) == {V1}


def test_a_retried_version_runs_again_with_its_own_audited_run_and_exits_3_when_it_fails(home):
    first = [r for r in rollouts(home).list(MODEL) if r["version"] == "3"][0]
    out = run(home, "rollouts", "retry", MODEL, "3", "--comment", "now with time to run", "--json")
    # no client calls this endpoint: the canary sees no traffic, is extended, then rolled back
    assert out.returncode == 3, out
    result = json.loads(out.stdout)
    assert result["rollout_id"] == first["id"] + "-retry1"
    assert result["rollout"]["state"] == "rolled_back" and "not enough traffic" in result["rollout"]["reason"]
    started = rollouts(home).trail(MODEL, result["rollout_id"])[0]
    assert started["details"]["retry"]["of"] == first["id"]
    assert started["details"]["retry"]["comment"] == "now with time to run"
    assert started["details"]["retry"]["by"].endswith("(cli)")
    assert read_states(home / "production")["credit-card-default-prod"]["traffic"] == {V1: 100}
    # the original event redelivered stays a duplicate
    event = {"topic": first["topic"], "subject": f"models/{MODEL}:3", "id": "again",
             "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
             "data": {"modelName": MODEL, "modelVersion": "3"}}
    payload = home / "again.json"
    payload.write_text(json.dumps([event]))
    again = run(home, "events", "send", str(payload), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["decisions"][0]["action"] == "duplicate"


def test_a_retry_that_makes_no_sense_is_refused_in_one_line(home):
    out = run(home, "rollouts", "retry", MODEL, "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "nothing to retry" in out.stderr


def test_status_shows_every_state_and_no_owner_once_commands_are_done(home):
    out = run(home, "status", "--json")
    assert out.returncode == 0
    view = json.loads(out.stdout)
    assert view["owner"] is None
    assert {r["state"] for r in view["rollouts"]} == {"succeeded", "rejected", "abandoned", "rolled_back"}
    assert view["production"][MODEL]["version"] == "1"


def test_state_files_holding_endpoint_keys_are_private(home):
    for workspace in ("staging", "production"):
        for path in (home / workspace / "endpoints").glob("*/state.json"):
            assert path.stat().st_mode & 0o777 == 0o600, path
