"""The AzureML assets load with azure-ai-ml's own loaders, and the step scripts they run work.

No Azure: the YAML is loaded and validated offline, and the steps run for real as subprocesses,
invoked exactly as each component's `command` says (rendered here the way AzureML renders it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ML = REPO / "ml"
COMPONENTS = ML / "components"
ENV_DIR = ML / "environments"
STEPS = ("prepare", "train", "evaluate", "register")
BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.(\w+)\s*\}\}")
OPTIONAL_BLOCK = re.compile(r"\$\[\[(.*?)\]\]")

# azure-ai-ml's schemas use marshmallow options that marshmallow 3.x deprecates (hundreds of warnings).
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning")


def load_component(name: str) -> Any:
    from azure.ai.ml import load_component

    return load_component(COMPONENTS / f"{name}.yml")


def resolved(base_path: Any, relative: Any) -> Path:
    return (Path(base_path) / str(relative)).resolve()


def bound(value: Any) -> str:
    """A node input as written in the YAML: a ${{parent...}} binding or a literal."""
    data = getattr(value, "_data", value)
    return str(getattr(data, "path", data))


# --------------------------------------------------------------------------------------- components


@pytest.mark.parametrize("name", STEPS)
def test_component_runs_its_step_in_the_training_environment(name: str) -> None:
    from azure.ai.ml.entities import CommandComponent, Environment

    component = load_component(name)
    assert isinstance(component, CommandComponent)
    assert component._validate().passed

    # The code snapshot is the repository root, so `python -m ml.steps.<name>` imports the ml package.
    code = resolved(component.base_path, component.code)
    assert code == REPO
    assert (code / "ml" / "__init__.py").is_file() and (code / "ml" / "steps" / f"{name}.py").is_file()
    assert component.command.startswith(f"python -m ml.steps.{name} ")

    # The environment is the training.yml build context (loaded through `file:`, so it is anonymous).
    env = component.environment
    assert isinstance(env, Environment)
    assert Path(env.path).resolve() == ENV_DIR
    assert env.build.dockerfile_path == "training.Dockerfile"

    # Every binding in the command is declared, and every declared port is used.
    used = {(kind, port) for kind, port in BINDING.findall(component.command)}
    declared = {("inputs", k) for k in component.inputs} | {("outputs", k) for k in component.outputs}
    assert used == declared


def test_train_component_defaults_are_inside_the_search_space_types() -> None:
    component = load_component("train")
    assert component.inputs["max_depth"].type == "integer"  # 0 = no limit
    assert component.inputs["max_features"].type == "string"  # "sqrt" or "0.3"
    assert component.outputs["model"].type == "uri_folder"


def test_evaluate_champion_is_optional() -> None:
    component = load_component("evaluate")
    champion = component.inputs["champion_model"]
    assert champion.optional is True and champion.type == "custom_model"
    assert "$[[--champion ${{inputs.champion_model}}]]" in component.command


# --------------------------------------------------------------------------------- training pipeline


@pytest.fixture(scope="module")
def pipeline() -> Any:
    from azure.ai.ml import load_job

    return load_job(ML / "pipelines" / "train.yml")


def test_pipeline_has_the_four_steps_in_order(pipeline: Any) -> None:
    from azure.ai.ml.entities import PipelineJob

    assert isinstance(pipeline, PipelineJob)
    assert pipeline._validate().passed
    assert list(pipeline.jobs) == list(STEPS)
    assert [node.type for node in pipeline.jobs.values()] == ["command", "sweep", "command", "command"]
    assert pipeline.settings.default_compute == "cpu-cluster"  # the loader strips `azureml:`

    jobs = pipeline.jobs
    assert bound(jobs["train"].inputs["train_data"]) == "${{parent.jobs.prepare.outputs.train_data}}"
    assert bound(jobs["evaluate"].inputs["model"]) == "${{parent.jobs.train.outputs.model}}"
    assert bound(jobs["evaluate"].inputs["test_data"]) == "${{parent.jobs.prepare.outputs.test_data}}"
    assert bound(jobs["register"].inputs["model"]) == "${{parent.jobs.train.outputs.model}}"
    assert bound(jobs["register"].inputs["metrics"]) == "${{parent.jobs.evaluate.outputs.metrics}}"
    assert jobs["register"].identity.type == "user_identity"
    for name in ("prepare", "evaluate", "register"):
        assert jobs[name].component.command.startswith(f"python -m ml.steps.{name} ")


def test_pipeline_inputs(pipeline: Any) -> None:
    data = pipeline.inputs["training_data"]._data
    assert data.type == "uri_file"
    assert data.path == "credit-card-default-train@latest"
    assert pipeline.inputs["model_name"]._data == "credit-card-default"
    assert bound(pipeline.jobs["prepare"].inputs["data"]) == "${{parent.inputs.training_data}}"
    for node in ("train", "register"):
        assert bound(pipeline.jobs[node].inputs["model_name"]) == "${{parent.inputs.model_name}}"


def test_sweep_searches_the_training_search_space(pipeline: Any) -> None:
    from azure.ai.ml.entities import CommandComponent

    from ml.steps.train import parse_max_depth, parse_max_features
    from ml.training import TrainConfig

    sweep = pipeline.jobs["train"]
    assert sweep.type == "sweep"
    assert sweep.objective.primary_metric == "roc_auc" and sweep.objective.goal == "maximize"
    assert sweep.sampling_algorithm.type == "random"
    assert 1 < sweep.limits.max_total_trials <= 20
    assert sweep.limits.max_concurrent_trials <= sweep.limits.max_total_trials
    assert isinstance(sweep.trial, CommandComponent)
    assert sweep.trial.command.startswith("python -m ml.steps.train ")
    assert set(sweep.search_space) <= set(sweep.trial.inputs)

    parse = {"max_depth": parse_max_depth, "max_features": parse_max_features}
    searched = {
        name: {parse.get(name, lambda v: v)(v) for v in space.values}
        for name, space in sweep.search_space.items()
        if space.type == "choice"
    }
    expected = {k.removeprefix("model__"): set(v) for k, v in TrainConfig().search_space.items()}
    assert searched == expected


def test_champion_can_be_bound_at_submission() -> None:
    from azure.ai.ml import load_job

    job = load_job(
        ML / "pipelines" / "train.yml",
        params_override=[{"jobs.evaluate.inputs.champion_model": {
            "type": "custom_model", "path": "azureml:credit-card-default:3"}}],
    )
    champion = job.jobs["evaluate"].inputs["champion_model"]._data
    assert champion.type == "custom_model" and champion.path == "credit-card-default:3"
    assert job._validate().passed


# ------------------------------------------------------------------------------------------ drift job


def test_drift_job() -> None:
    from azure.ai.ml import load_job
    from azure.ai.ml.entities import Command

    job = load_job(ML / "jobs" / "drift.yml")
    assert isinstance(job, Command)
    assert job._validate().passed
    assert job.command.startswith("python -m ml.steps.drift ")
    assert resolved(job.base_path, job.code) == REPO
    assert job.compute == "cpu-cluster"
    assert job.inputs["reference"]._data.type == "uri_file"
    assert job.inputs["current"]._data.type in ("uri_folder", "uri_file")
    assert job.outputs["report"].type == "uri_folder"
    assert Path(job.environment.path).resolve() == ENV_DIR


def test_drift_step_runs_the_drift_computation_and_names_bad_input(tmp_path: Path) -> None:
    from ml.datagen import STRONG_DRIFT, generate

    generate(2000, seed=1).to_csv(tmp_path / "reference.csv", index=False)
    generate(1000, seed=2, drift=STRONG_DRIFT, labelled=False).to_csv(tmp_path / "current.csv", index=False)
    done = run_step(f"python -m ml.steps.drift --reference {tmp_path / 'reference.csv'} "
                    f"--current {tmp_path / 'current.csv'} --output {tmp_path / 'out'} --no-report", tmp_path)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["dataset_drift"] is True and result["status"] == "ok"
    assert '"type":"OverallDriftMetrics"' in done.stdout  # the job's records reach its console log
    bad = run_step(f"python -m ml.steps.drift --reference {tmp_path / 'missing.csv'} "
                   f"--current {tmp_path / 'current.csv'} --output {tmp_path / 'out2'}", tmp_path, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "missing.csv" in bad.stderr


# ---------------------------------------------------------------------------- endpoints, deployment


@pytest.mark.parametrize("name", ["staging", "production"])
def test_endpoints(name: str) -> None:
    from azure.ai.ml import load_online_endpoint
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    endpoint = load_online_endpoint(ML / "endpoints" / f"{name}-endpoint.yml")
    assert isinstance(endpoint, ManagedOnlineEndpoint)
    assert endpoint.auth_mode == "key"
    assert endpoint.name.startswith("credit-card-default-")
    assert endpoint.tags["stage"] == name


def test_deployment_template() -> None:
    from azure.ai.ml import load_online_deployment
    from azure.ai.ml.entities import ManagedOnlineDeployment

    deployment = load_online_deployment(ML / "endpoints" / "deployment.yml")
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert deployment.model == "credit-card-default:1"
    assert deployment.endpoint_name == "credit-card-default-staging"
    assert deployment.instance_type == "Standard_DS3_v2" and deployment.instance_count == 1
    assert deployment.app_insights_enabled is True

    code = resolved(deployment.base_path, deployment.code_configuration.code)
    assert deployment.code_configuration.scoring_script == "score.py"
    assert code == ML and (code / "score.py").is_file()

    for probe in (deployment.liveness_probe, deployment.readiness_probe):
        assert probe is not None
        assert all(v is not None for v in (probe.initial_delay, probe.period, probe.timeout,
                                            probe.success_threshold, probe.failure_threshold))
    assert deployment.request_settings.request_timeout_ms > 0
    assert deployment.request_settings.max_concurrent_requests_per_instance >= 1
    assert int(deployment.environment_variables["MODELOPS_MAX_ROWS"]) > 0

    env = deployment.environment
    assert Path(env.path).resolve() == ENV_DIR and env.build.dockerfile_path == "serving.Dockerfile"


# -------------------------------------------------------------------------------------- environments


@pytest.mark.parametrize("name", ["training", "serving"])
def test_environment_builds_from_the_folder_with_the_one_sklearn_pin(name: str) -> None:
    from azure.ai.ml import load_environment

    env = load_environment(ENV_DIR / f"{name}.yml")
    assert env.name == f"credit-card-default-{name}"
    context = resolved(env.base_path, env.build.path)
    assert context == ENV_DIR
    pins = (context / "runtime-pins.txt").read_text().splitlines()
    assert any(re.fullmatch(r"scikit-learn==[\w.]+", line.strip()) for line in pins)

    dockerfile = (context / env.build.dockerfile_path).read_text()
    requirements = context / f"{name}-requirements.txt"
    assert "runtime-pins.txt" in dockerfile and requirements.name in dockerfile
    lines = [line.strip() for line in requirements.read_text().splitlines()]
    assert "-r runtime-pins.txt" in lines
    assert not any(line.startswith("scikit-learn") for line in lines)  # pinned in one place only


# ----------------------------------------------------------------------------------- code snapshot


def test_code_snapshot_is_the_ml_package_only() -> None:
    """/.amlignore narrows the repository-root snapshot to ml/ (the SDK's own ignore-file logic)."""
    from azure.ai.ml._utils._asset_utils import get_ignore_file

    ignore = get_ignore_file(REPO)
    assert Path(ignore.path).name == ".amlignore"
    for path in ML.rglob("*"):
        if path.is_file():
            expect_excluded = "__pycache__" in path.parts or path.suffix == ".pyc"
            assert ignore.is_file_excluded(path) == expect_excluded, path
    for entry in REPO.iterdir():
        if entry.name != "ml":
            assert ignore.is_file_excluded(entry / "x.py"), entry
            assert ignore.is_file_excluded(entry) or entry.is_dir(), entry


# ------------------------------------------------------------------------------- steps, run for real


def step_env() -> dict[str, str]:
    """This machine's environment without any AzureML/MLflow run context."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLFLOW_"))}


def render(component: Any, values: dict[str, Any]) -> str:
    """The component's command as AzureML renders it: defaults fill unset inputs, optional blocks drop."""
    values = {**{k: v.default for k, v in component.inputs.items() if v.default is not None}, **values}

    def optional(match: re.Match) -> str:
        return match.group(1) if all(p in values for _, p in BINDING.findall(match.group(1))) else ""

    command = OPTIONAL_BLOCK.sub(optional, component.command)
    return BINDING.sub(lambda m: shlex.quote(str(values[m.group(2)])), command)


def run_step(command: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    assert argv[0] == "python"
    done = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=step_env(), capture_output=True,
                          text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def run_component(name: str, values: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess:
    component = load_component(name)
    return run_step(render(component, values), resolved(component.base_path, component.code), check)


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory) -> Path:
    from ml.datagen import generate

    path = tmp_path_factory.mktemp("data") / "labelled.csv"
    generate(3_000, seed=11).to_csv(path, index=False)
    return path


def test_steps_prepare_train_evaluate_register(tmp_path: Path, labelled_csv: Path) -> None:
    from ml import artifact

    train_dir, test_dir, model_dir, metrics_dir = (tmp_path / n for n in ("train", "test", "model", "metrics"))

    run_component("prepare", {"data": labelled_csv, "seed": 5, "train_data": train_dir, "test_data": test_dir})
    assert (train_dir / "train.parquet").is_file() and (test_dir / "test.parquet").is_file()

    hyper = {"n_estimators": 25, "max_depth": 0, "min_samples_leaf": 20, "max_features": "0.3"}
    done = run_component("train", {"train_data": train_dir, **hyper, "model": model_dir})
    assert re.search(r"^metric roc_auc=0\.\d+$", done.stdout, re.M)  # the sweep's metric, printed
    card = artifact.read_card(model_dir)
    assert {p.name for p in model_dir.iterdir()} >= {"model.joblib", "model_card.json", "reference.parquet"}
    assert card["hyperparameters"] == {"n_estimators": 25, "max_depth": None, "min_samples_leaf": 20,
                                       "max_features": 0.3}
    assert card["training_data"]["rows"] == 2_400
    assert card["training_data"]["fingerprint"].startswith("sha256:")
    assert 0.5 < card["metrics"]["cv_roc_auc"] <= 1.0

    # The candidate doubles as its own champion: the champion's roc_auc must be the same number.
    run_component("evaluate", {"model": model_dir, "test_data": test_dir, "champion_model": model_dir,
                               "metrics": metrics_dir})
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert {"f1", "precision", "recall", "accuracy"} <= set(metrics)
    assert metrics["n_test"] == 600
    assert metrics["champion_roc_auc"] == pytest.approx(metrics["roc_auc"])

    done = run_component("register", {"model": model_dir, "metrics": metrics_dir, "dry_run": True})
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    plan = report["would_register"]
    assert plan["name"] == "credit-card-default" and plan["type"] == "custom_model"
    assert "model_card.json" in plan["files"]
    assert float(plan["tags"]["roc_auc"]) == pytest.approx(metrics["roc_auc"], abs=1e-5)
    assert plan["tags"]["data_fingerprint"] == card["training_data"]["fingerprint"]
    assert plan["card_metrics"]["roc_auc"] == metrics["roc_auc"]  # held-out metrics merged into the card
    assert plan["card_metrics"]["cv_roc_auc"] == card["metrics"]["cv_roc_auc"]
    assert artifact.read_card(model_dir)["metrics"] == card["metrics"]  # the train output is untouched


def test_register_without_dry_run_needs_azureml(tmp_path: Path) -> None:
    done = run_component("register", {"model": tmp_path, "metrics": tmp_path}, check=False)
    assert done.returncode == 2
    assert "not running on AzureML" in done.stderr and "--dry-run" in done.stderr


def test_prepare_rejects_bad_data_in_one_line(tmp_path: Path, labelled_csv: Path) -> None:
    import pandas as pd

    bad = tmp_path / "bad.csv"
    pd.read_csv(labelled_csv).drop(columns=["age"]).to_csv(bad, index=False)
    done = run_component("prepare", {"data": bad, "train_data": tmp_path / "tr", "test_data": tmp_path / "te"},
                         check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {bad}: missing column(s) age"]
