"""Per-model configuration files (functions/services/model_configs.py) beside MODELOPS_MODELS, and
`modelops models list` / `modelops models validate` run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from functions.adapters.local.store import DirectoryStore
from functions.domain.config import ConfigError
from functions.domain.decisions import Facts, decide
from functions.domain.events import ModelRegistered
from functions.services.model_configs import STORE_PREFIX, ModelConfigs, managed_models, read_model_files
from tests.fakes import MemoryStore
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
         home: Path | None = None, platform: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MODELOPS_MODELS", "MODELOPS_MODELS_DIR")}
    env["MODELOPS_HOME"] = str(home or tempfile.mkdtemp(prefix="modelops-home-"))  # its store: config/models/
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


# ------------------------------------------------------------------------ configuration in the store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class UnreadableStore(MemoryStore):
    def list(self, prefix: str) -> list[str]:
        from functions.ports import PlatformError

        raise PlatformError("storage account unreachable", transient=True)


def event_for(model: str) -> ModelRegistered:
    return ModelRegistered(event_id="e-1", topic="", subject=f"models/{model}:1", event_time="2026-12-01T00:00:00Z",
                           model_name=model, model_version="1")


@pytest.mark.parametrize("store_kind", ["memory", "directory"])
def test_a_model_configured_in_the_store_is_managed_from_the_next_read_without_a_restart(tmp_path, store_kind):
    store = MemoryStore() if store_kind == "memory" else DirectoryStore(tmp_path / "store")
    clock = Clock()
    configs = ModelConfigs('{"credit-card-default": {}}', None, {"poll_seconds": 0.5}, refresh_seconds=60,
                           clock=clock)
    assert configs.current(store).names == ["credit-card-default"]
    store.put(f"{STORE_PREFIX}iris.yaml", b"gates:\n  min_metric: 0.9\n")
    store.put(f"{STORE_PREFIX}README.md", b"notes beside the files are not configuration")
    assert configs.current(store).names == ["credit-card-default"]  # read at most every refresh_seconds
    clock.now = 61
    managed = configs.current(store)
    assert managed.names == ["credit-card-default", "iris"] and managed.invalid == {}
    assert managed.get("iris").gates.min_metric == 0.9 and managed.get("iris").poll_seconds == 0.5  # overrides apply

    # an invalid update: the model keeps its last valid configuration; the problem names the file and field
    store.put(f"{STORE_PREFIX}iris.yaml", b"gates:\n  min_metric: high\n")
    clock.now = 122
    managed = configs.current(store)
    assert managed.get("iris").gates.min_metric == 0.9 and managed.invalid == {}
    assert configs.problems["iris"].startswith(f"store {STORE_PREFIX}iris.yaml: gates.min_metric"), configs.problems

    # a model whose only file is invalid is not managed, and the decision on its event says why
    store.put(f"{STORE_PREFIX}wine.json", b'{"canary": {"steps": [10, 50]}}')
    store.put(f"{STORE_PREFIX}broken.yaml", b"gates: [unclosed\n")
    clock.now = 183
    managed = configs.current(store)
    assert "wine" not in managed.names and managed.invalid["wine"].startswith(f"store {STORE_PREFIX}wine.json: "
                                                                              "canary.steps")
    assert "not valid YAML" in managed.invalid["broken"]
    decision = decide(event_for("wine"), Facts(managed=managed))
    assert decision.action == "ignore" and "invalid configuration" in decision.reason and "canary.steps" in decision.reason


def test_a_store_file_never_overrides_the_setting_and_two_files_of_one_model_are_refused():
    store = MemoryStore()
    store.put(f"{STORE_PREFIX}credit-card-default.json", b'{"approval_required": true}')
    store.put(f"{STORE_PREFIX}iris.json", b"{}")
    store.put(f"{STORE_PREFIX}iris.yaml", b"{}")
    configs = ModelConfigs('{"credit-card-default": {}}', None, refresh_seconds=0)
    managed = configs.current(store)
    assert managed.get("credit-card-default").approval_required is False  # the setting's stands
    assert "configured in MODELOPS_MODELS" in configs.problems["credit-card-default"]
    assert "iris" not in managed.names and "keep one file per model" in managed.invalid["iris"]


def test_store_models_replace_the_implicit_default_and_an_unreadable_store_keeps_the_last_answer():
    store = MemoryStore()
    configs = ModelConfigs(None, None, refresh_seconds=0)
    assert configs.current(store).names == ["credit-card-default"]  # nothing configured anywhere
    store.put(f"{STORE_PREFIX}iris.json", b"{}")
    assert configs.current(store).names == ["iris"]
    broken = UnreadableStore()
    assert configs.current(broken).names == ["iris"]
    from functions.ports import PlatformError

    with pytest.raises(PlatformError):
        configs.current(broken, strict=True)


def test_the_app_manages_what_the_store_holds_and_decides_on_its_events(tmp_path):
    from functions.bootstrap import build_app
    from functions.settings import Settings

    settings = Settings.from_env({"MODELOPS_HOME": str(tmp_path / "home"), "MODELOPS_MODELS": '{"credit": {}}',
                                  "MODELOPS_CONFIG_REFRESH_SECONDS": "0"})
    app = build_app(settings)
    app.store.put(f"{STORE_PREFIX}iris.yaml", b"canary:\n  steps: [25, 100]\n")
    assert app.managed.names == ["credit", "iris"] and app.managed.get("iris").canary.steps == (25, 100)
    event = {"id": "e-9", "topic": app.local.workspace.topic, "subject": "models/iris:1", "eventType":
             "Microsoft.MachineLearningServices.ModelRegistered", "eventTime": "2026-12-01T00:00:00Z",
             "data": {"ModelName": "iris", "ModelVersion": "1"}, "dataVersion": "", "metadataVersion": "1"}
    [accepted] = app.deliver([event], dry_run=True)
    assert accepted.decision.action == "rollout", accepted.decision
    assert accepted.orchestration_input["config"]["canary"]["steps"] == [25, 100]
    assert "iris" in app.alert_policy.managed  # a drift alert on it is handled too


def test_models_put_validates_stores_lists_and_removes(tmp_path):
    home = tmp_path / "home"
    bad = write(tmp_path / "bad", "iris.yaml", "gates:\n  latency_p95_ms: fast\n")
    refused = _cli("put", str(bad), home=home)
    assert refused.returncode == 2 and refused.stderr.strip() == f"error: {bad}: gates.latency_p95_ms must be float, got 'fast'", refused.stderr
    assert not (home / "store" / "config").exists()  # nothing stored
    good = write(tmp_path, "iris.yaml", "gates:\n  min_metric: 0.9\n")
    stored = _cli("put", str(good), home=home, models_json='{"credit-card-default": {}}')
    assert stored.returncode == 0 and "stored config/models/iris.yaml" in stored.stdout, stored.stderr
    twice = _cli("put", str(write(tmp_path, "credit-card-default.json", "{}")), home=home,
                 models_json='{"credit-card-default": {}}')
    assert twice.returncode == 2 and "configured in MODELOPS_MODELS" in twice.stderr
    rows = {r["model"]: r for r in json.loads(_cli("list", "--json", home=home,
                                                    models_json='{"credit-card-default": {}}').stdout)}
    assert rows["iris"]["source"] == f"store {STORE_PREFIX}iris.yaml" and rows["credit-card-default"]
    # a file someone stored without `put`: `validate --store` names it
    (home / "store" / "config" / "models" / "wine.json").write_text('{"canary": {"steps": [50]}}')
    checked = _cli("validate", "--store", "--json", home=home)
    report = json.loads(checked.stdout)
    assert checked.returncode == 2 and report["problems"][0].startswith(f"store {STORE_PREFIX}wine.json: canary.steps")
    assert _cli("remove", "iris", home=home).returncode == 0
    assert _cli("remove", "iris", home=home).returncode == 2
    assert "iris" not in {r["model"] for r in json.loads(_cli("list", "--json", home=home).stdout)}


def test_models_validate_names_an_unknown_drift_setting(tmp_path):
    write(tmp_path, "iris.yaml", "drift:\n  min_current_rows: 50\n  drift_shares: 0.3\n")
    result = _cli("validate", models_dir=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{tmp_path / 'iris.yaml'}: drift.drift_shares is not a drift setting (known: "), line
    assert "drift_share" in line and "min_current_rows" in line
