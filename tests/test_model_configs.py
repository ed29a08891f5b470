"""Per-model configuration files (functions/services/model_configs.py) beside MODELOPS_MODELS, and
`modelops models list` / `modelops models validate` run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.domain.config import ConfigError
from functions.services.model_configs import managed_models, read_model_files
from functions.settings import REPO_ROOT

CLI = [sys.executable, "-m", "functions.cli.main"]


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_files_and_the_setting_configure_models_side_by_side(tmp_path):
    write(tmp_path, "iris.yaml", "gates:\n  min_metric: 0.9\ncontract:\n  target: species\n  response_key: result\n")
    write(tmp_path, "regressor.json", json.dumps({"canary": {"steps": [25, 100]}}))
    write(tmp_path, "notes.txt", "not a configuration")
    managed = managed_models('{"credit-card-default": {"approval_required": true}}', tmp_path)
    assert managed.names == ["credit-card-default", "iris", "regressor"]
    assert managed.get("iris").gates.min_metric == 0.9 and managed.get("iris").contract["response_key"] == "result"
    assert managed.get("regressor").canary.steps == (25, 100) and managed.get("credit-card-default").approval_required
    # files alone: only their models (the default model is managed only when nothing is configured)
    assert managed_models(None, tmp_path).names == ["iris", "regressor"]
    assert managed_models(None, None).names == ["credit-card-default"]


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("iris.yaml", "gates:\n  latency_p95_ms: fast\n", "iris.yaml: gates.latency_p95_ms must be float, got 'fast'"),
    ("iris.yaml", "canary: [1, 2\n", "iris.yaml: not valid YAML"),
    ("iris.json", "{oops", "iris.json: not valid JSON"),
    ("iris.json", "[1, 2]", "iris.json: must hold an object of settings"),
    ("iris.json", '{"canary": {"steps": [10, 50]}}', "iris.json: canary.steps must rise strictly to 100"),
    ("iris.json", '{"contract": {"respons_key": "result"}}', "iris.json: contract: unknown field(s) respons_key"),
    ("iris.json", '{"colour": "blue"}', "iris.json: unknown field(s) colour"),
    ("bad name!.json", "{}", "model name 'bad name!' is invalid"),
])
def test_a_bad_file_is_named_with_the_field_and_the_fix(tmp_path, name, text, expected):
    write(tmp_path, name, text)
    with pytest.raises(ConfigError) as info:
        managed_models(None, tmp_path)
    assert expected in str(info.value) and str(tmp_path) in str(info.value)


def test_a_model_configured_twice_is_refused(tmp_path):
    write(tmp_path, "iris.json", "{}")
    with pytest.raises(ConfigError, match="iris configured twice: in MODELOPS_MODELS and in .*iris.json"):
        managed_models('{"iris": {}}', tmp_path)
    write(tmp_path, "iris.yaml", "{}")
    with pytest.raises(ConfigError, match="also has"):
        read_model_files(tmp_path)


def _cli(*args: str, models_dir: Path | None = None, models_json: str | None = None,
         platform: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MODELOPS_MODELS", "MODELOPS_MODELS_DIR")}
    if platform is not None:
        env["MODELOPS_PLATFORM"] = platform
    if models_dir is not None:
        env["MODELOPS_MODELS_DIR"] = str(models_dir)
    if models_json is not None:
        env["MODELOPS_MODELS"] = models_json
    return subprocess.run([*CLI, "models", *args], capture_output=True, text=True, timeout=120, env=env,
                          cwd=REPO_ROOT, stdin=subprocess.DEVNULL)


def test_models_validate_prints_every_problem_and_exits_2(tmp_path):
    write(tmp_path, "iris.yaml", "gates:\n  latency_p95_ms: fast\n")
    write(tmp_path, "regressor.json", '{"canary": {"steps": [10, 50]}}')
    result = _cli("validate", models_dir=tmp_path, models_json='{"credit-card-default": {"poll_seconds": "x"}}')
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert any("MODELOPS_MODELS['credit-card-default'].poll_seconds must be float" in line for line in lines)
    assert any(line.startswith(f"{tmp_path / 'iris.yaml'}: gates.latency_p95_ms") for line in lines)
    assert any(line.startswith(f"{tmp_path / 'regressor.json'}: canary.steps") for line in lines)
    good = tmp_path / "good"
    write(good, "iris.yaml", "gates:\n  min_metric: 0.9\n")
    ok = _cli("validate", "--json", models_dir=good)
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"checked": [str(good / "iris.yaml")], "valid": True,
                                                            "problems": []}


def test_models_validate_refuses_a_component_on_the_local_platform_naming_the_file(tmp_path):
    write(tmp_path, "iris.yaml", "retraining_pipeline: azureml://registries/mlr-shared/components/iris_train/"
                                 "labels/latest\n")
    local = _cli("validate", models_dir=tmp_path, platform="local")
    assert local.returncode == 2
    (line,) = local.stderr.strip().splitlines()
    assert line.startswith(f"{tmp_path / 'iris.yaml'}: retraining_pipeline 'azureml://registries/mlr-shared/"
                           "components/iris_train/labels/latest' is a registered AzureML component, which the "
                           "local platform (MODELOPS_PLATFORM=local) cannot run: set retraining_command")
    assert _cli("validate", models_dir=tmp_path, platform="azure").returncode == 0
    assert _cli("list", models_dir=tmp_path, platform="local").returncode == 2  # what the local app would load


def test_the_local_app_refuses_to_start_with_a_component_it_cannot_run(tmp_path):
    from functions.bootstrap import build_app
    from functions.settings import Settings

    models = '{"iris": {"retraining_pipeline": "azureml:iris_train@latest"}}'
    with pytest.raises(ConfigError, match=r"MODELOPS_MODELS\['iris'\].retraining_pipeline 'azureml:iris_train@latest' "
                                          "is a registered AzureML component, which the local platform"):
        build_app(Settings(platform="local", home=tmp_path / "home", models_json=models))
    assert not (tmp_path / "home").exists()  # refused before the platform was opened


def test_models_list_names_each_models_source(tmp_path):
    write(tmp_path, "iris.yaml", "contract:\n  response_key: result\n")
    result = _cli("list", "--json", models_dir=tmp_path, models_json='{"credit-card-default": {}}')
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["iris"]["source"] == str(tmp_path / "iris.yaml") and rows["iris"]["contract"] == {"response_key": "result"}
    assert rows["credit-card-default"]["source"] == "MODELOPS_MODELS"
    assert rows["iris"]["production_endpoint"] == "iris-prod"
    broken = _cli("list", models_dir=tmp_path / "missing")
    assert broken.returncode == 2 and "no such folder" in broken.stderr


def test_stored_records_carry_a_schema_version_and_older_ones_are_read_newer_ones_refused():
    from functions.ports import PlatformError
    from functions.services.records import SCHEMA_VERSION, RolloutStore
    from tests.fakes import MemoryStore

    store = MemoryStore()
    rollouts = RolloutStore(store)
    rollout = {"id": "r1", "model": "iris", "version": "1", "event_id": "e1"}
    assert rollouts.claim({"run_key": "r1", "model": "iris", "version": "1", "reason": "new"}, {"event_id": "e1"},
                          "2026-12-01T00:00:00+00:00")
    rollouts.audit(rollout, 1, "started", "2026-12-01T00:00:00+00:00", {})
    for key in store.list(""):
        assert json.loads(store.get(key)[0])["schema_version"] == SCHEMA_VERSION, key
    # a record an older modelops wrote (no schema_version) reads as it is
    old = {"id": "r0", "model": "iris", "version": "0", "state": "succeeded", "reason": "", "started": "s",
           "finished": "f", "event_id": "", "topic": ""}
    store.put("rollouts/iris/r0.json", json.dumps(old).encode())
    assert rollouts.get("iris", "r0") == old
    # one a newer modelops wrote is refused, not misread
    store.put("rollouts/iris/r9.json", json.dumps({**old, "id": "r9", "schema_version": SCHEMA_VERSION + 1}).encode())
    with pytest.raises(PlatformError, match="written by a newer modelops"):
        rollouts.get("iris", "r9")


def test_a_models_own_retraining_command_runs_locally_and_its_output_is_registered(tmp_path):
    from functions.adapters.local.jobs import LocalJobs
    from functions.ports import RetrainingRecipe

    registered = []
    jobs = LocalJobs(tmp_path / "home", lambda path, model, tags: registered.append((Path(path), model, tags)))
    script = ("import pathlib, sys; out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True); "
              "(out / 'trained-for.txt').write_text(sys.argv[2])")
    recipe = RetrainingRecipe(command=("{python}", "-c", script, "{output}", "{model}"))
    job = jobs.submit_retraining("retrain-iris-1", "iris", {"modelops.alert_id": "a1"}, recipe=recipe)
    assert job["status"] in ("Queued", "Running", "Completed")
    done = jobs.wait("retrain-iris-1", 120)
    assert done["status"] == "Completed", done
    (folder, model, tags), = registered
    assert model == "iris" and (folder / "trained-for.txt").read_text() == "iris" and tags["modelops.alert_id"] == "a1"


def test_retraining_settings_are_checked():
    with pytest.raises(ConfigError, match=r"retraining_command must write the model to \{output\}"):
        managed_models('{"iris": {"retraining_command": ["python", "train.py"]}}', None)
    with pytest.raises(ConfigError, match="retraining_pipeline must be a pipeline job YAML file .* or a registered "
                                          "component"):
        managed_models('{"iris": {"retraining_pipeline": "pipelines/iris.txt"}}', None)
    with pytest.raises(ConfigError, match="names no version"):
        managed_models('{"iris": {"retraining_pipeline": "azureml:iris-train"}}', None)
    assert managed_models('{"iris": {"retraining_pipeline": "azureml:iris-train:1"}}', None).get("iris")
    cfg = managed_models('{"iris": {"retraining_pipeline": "pipelines/iris.yml", '
                         '"retraining_command": ["python", "-m", "iris.train", "--out", "{output}"]}}', None).get("iris")
    assert cfg.retraining_command == ("python", "-m", "iris.train", "--out", "{output}")


def test_a_model_released_before_contracts_gets_its_production_contract_once():
    """The upgrade path: production/<m>.json but no contracts/ — the export and drift check would
    fail closed until the next release; the adoption reads the production version's files instead."""
    from functions.services.contracts import adopt_production_contracts, current_contract
    from functions.services.records import RolloutStore
    from tests.fakes import FakeModelFiles, FakeRegistry, MemoryStore

    store, registry, files = MemoryStore(), FakeRegistry(), FakeModelFiles()
    rollouts = RolloutStore(store)
    registry.add("credit-card-default", "3")
    registry.promote(registry.workspace["3"], {})
    rollouts.set_production({"id": "r3", "model": "credit-card-default", "version": "3"}, "d", {"d": 100}, "t")
    overrides = {"credit-card-default": {"metric": "accuracy"}, "iris": {}}
    done = adopt_production_contracts(["credit-card-default", "iris"], store, rollouts.production, registry, files,
                                      overrides.get)
    assert done == {"credit-card-default": "adopted the contract of production version 3 "
                                           "(model_card.json + configuration)"}
    adopted = current_contract(store, "credit-card-default")
    assert adopted.metric == "accuracy" and len(adopted.features) == 23
    assert files.reads and all(version == "3" for _, version, _ in files.reads)
    # once: a current contract is never replaced by a later timer
    files.reads.clear()
    assert adopt_production_contracts(["credit-card-default"], store, rollouts.production, registry, files,
                                      overrides.get) == {}
    assert files.reads == []
    # a production version whose files give no contract stays without one, with the reason
    registry.add("iris", "1")
    rollouts.set_production({"id": "r1", "model": "iris", "version": "1"}, "d", {"d": 100}, "t")
    files.files[("iris", "1")] = {"MLmodel": b"flavors: {}\n"}
    done = adopt_production_contracts(["iris"], store, rollouts.production, registry, files, overrides.get)
    assert "no signature" in done["iris"] and current_contract(store, "iris") is None
