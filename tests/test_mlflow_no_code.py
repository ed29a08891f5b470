"""serving: mlflow_no_code — the gates talk to a no-code MLflow deployment in AzureML's wire shape
({"input_data": <split frame>} in, a bare list out: ModelContract.for_serving) and judge what its
scoring script can answer. Pure tests of the gates' requests and verdicts here; the end-to-end test
runs the gates against a real azureml-inference-server-http process serving an MLflow model with
ml/mlflow_no_code/score.py, the local stand-in for AzureML's script."""

from __future__ import annotations

import json

import pytest

from functions.domain import gates as g
from functions.shared.contract import ModelContract

BINARY = {
    "features": [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical", "domain": ["f", "m"]}],
    "target": "default", "task": "binary_classification", "response_kind": "probability", "metric": "f1",
    "sample_request": {"data": [{"age": 40.0, "sex": "m"}]},
}


def test_the_invalid_requests_sent_to_a_no_code_deployment_are_the_ones_its_server_and_script_refuse():
    wire = ModelContract.from_dict(BINARY).for_serving("mlflow_no_code")
    kinds = g.invalid_requests(wire)
    assert kinds == {
        "not_json": "{'input_data': oops",
        "not_an_object": "[1, 2, 3]",
        "no_input_data": {"data": [[40.0, "m"]]},
        "missing_feature": {"input_data": {"columns": ["sex"], "index": [0], "data": [["m"]]}},
        "numeric_wrong_type": {"input_data": {"columns": ["age", "sex"], "index": [0], "data": [["thirty", "m"]]}},
    }
    # modelops' entry point gets the full set, in its own shape
    assert "extra_feature" in g.invalid_requests(ModelContract.from_dict(BINARY))


def test_a_no_code_deployment_passes_the_contract_gate_with_5xx_for_rows_its_signature_refuses():
    server_error = (500, {"message": "An unexpected error occurred in scoring script. Check the logs for more info."})
    answers = {"not_json": (400, {"message": "POST body could not be decoded as JSON"}),
               "not_an_object": (400, {"message": "POST body should be a JSON dictionary."}),
               "no_input_data": (400, {"message": "A value is not provided for the 'input_data' parameter."}),
               "missing_feature": server_error, "numeric_wrong_type": server_error}
    result = g.judge_contract(answers, g.NO_CODE_REFUSED)
    assert result.passed, result.reason
    assert result.reason == ("3 kinds of invalid request → 4xx with an error; missing_feature, numeric_wrong_type "
                             "refused with a 5xx (AzureML's no-code scoring script has no 4xx for them)")
    assert result.figures["refused_with_5xx"] == ["missing_feature", "numeric_wrong_type"]
    # a row the script scored anyway, a 5xx for the envelope, or the same 5xx through modelops fail
    assert not g.judge_contract({**answers, "missing_feature": (200, [1])}, g.NO_CODE_REFUSED).passed
    assert not g.judge_contract({**answers, "no_input_data": server_error}, g.NO_CODE_REFUSED).passed
    assert not g.judge_contract(answers).passed


def test_the_contract_gate_sends_the_wire_shape_and_allows_5xx_only_for_no_code():
    sent: list = []

    class Answer:
        def __init__(self, status: int, body: object) -> None:
            self.status, self.body, self.elapsed_ms = status, body, 1.0

    def score(body):  # a 500 for a row without "age", whatever the shape; 400 for the rest
        sent.append(body)
        frame = body.get("input_data") if isinstance(body, dict) else None
        rows = body.get("data") if isinstance(body, dict) else None
        no_age = (isinstance(frame, dict) and "age" not in frame["columns"]) or \
            (isinstance(rows, list) and rows and isinstance(rows[0], dict) and "age" not in rows[0])
        return Answer(500 if no_age else 400, {"message": "no"})

    result = g.contract_gate(score, ModelContract.from_dict(BINARY).for_serving("mlflow_no_code"))
    assert result.passed and result.figures["refused_with_5xx"] == ["missing_feature"]
    assert sent[-1] == {"input_data": {"columns": ["age", "sex"], "index": [0], "data": [["thirty", "m"]]}}
    records = g.contract_gate(score, ModelContract.from_dict(BINARY))  # modelops: every kind must be 4xx
    assert not records.passed and records.reason.endswith("missing_feature → 500")


def test_the_compatibility_gate_compares_contracts_and_serving_not_the_derived_wire():
    contract = ModelContract.from_dict(BINARY)
    same = g.judge_compatibility(contract, contract, False, "mlflow_no_code", "mlflow_no_code")
    assert same.passed and same.figures["changes"] == []
    switched = g.judge_compatibility(contract, contract, False, "mlflow_no_code", "modelops")
    assert not switched.passed
    assert switched.figures["changes"] == [
        "serving 'modelops' → 'mlflow_no_code' (another request body and answer: the contract's request and "
        "response → {\"input_data\": <split frame>} in, a bare list out)"]
    assert g.judge_compatibility(contract, contract, True, "modelops", "mlflow_no_code").passed  # allowed


def test_smoke_reads_the_bare_list():
    wire = ModelContract.from_dict(BINARY).for_serving("mlflow_no_code")
    assert g.judge_smoke(wire, 200, [1], 1).reason == "200 with one label per record as a bare JSON list"
    assert not g.judge_smoke(wire, 200, {"predictions": [0.7]}, 1).passed
    assert json.dumps(wire.sample_request) == '{"input_data": {"columns": ["age", "sex"], "index": [0], ' \
                                              '"data": [[40.0, "m"]]}}'



def test_register_refuses_a_no_code_model_whose_contract_needs_probabilities_before_anything_starts(tmp_path):
    """`modelops register` reads the contract as the rollout will, for the model's serving: a
    contract.json gated on log_loss cannot be gated on a no-code deployment's labels (exit 2)."""
    import os
    import subprocess
    import sys

    from functions.settings import REPO_ROOT
    from ml.mlflow_models import save_iris

    folder = save_iris(tmp_path / "iris")
    contract = json.loads((folder / "contract.json").read_text())
    (folder / "contract.json").write_text(json.dumps({**contract, "response_kind": "class_probabilities",
                                                      "metric": "log_loss"}))
    env = {**os.environ, "MODELOPS_HOME": str(tmp_path / "home"),
           "MODELOPS_MODELS": json.dumps({"iris": {"serving": "mlflow_no_code"}})}
    out = subprocess.run([sys.executable, "-m", "functions.cli.main", "register", "--model-dir", str(folder),
                          "--name", "iris"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    assert out.stderr == (f"error: --model-dir {folder} (serving: mlflow_no_code): metric 'log_loss' needs "
                          "probabilities, but serving mlflow_no_code answers what the MLflow model's predict returns "
                          "(labels): set contract.metric to accuracy or f1_macro in the model's configuration, or "
                          "serve it with serving: modelops\n")
    assert not (tmp_path / "home" / "workspace" / "models" / "iris").exists()  # nothing registered


# ---- end to end: the gates against a real server running the no-code scoring script -------------

@pytest.mark.integration
def test_the_rollouts_gates_pass_against_the_no_code_scoring_script_serving_an_mlflow_model(tmp_path):
    """The iris MLflow model deployed no-code on the local platform: LocalEndpoints runs a real
    azureml-inference-server-http with ml/mlflow_no_code/score.py (AzureML's no-code behaviour), and
    the rollout's own activities read the contract and run every gate on AzureML's wire. Gated the
    modelops way — the contract's {"data": [[...]]} — the same deployment fails its smoke gate."""
    from functions.adapters.local.endpoints import LocalEndpoints
    from functions.ports import DeploymentSpec, ModelRef
    from functions.services import activities as act
    from ml.mlflow_models import IRIS_TARGET, iris_frame, save_iris
    from tests.conftest import SERVING_PYTHON, require_serving_env
    from tests.fakes import FakeModelFiles, FakeRegistry, FakeTrafficLog, MemoryStore

    require_serving_env()
    folder = save_iris(tmp_path / "models" / "iris" / "1")
    ref = ModelRef("iris", "1", str(folder), model_type="mlflow_model")
    files = {name: (folder / name).read_bytes() for name in ("MLmodel", "contract.json", "input_example.json")}
    features, target = iris_frame()
    store = MemoryStore()
    store.put("datasets/iris/evaluation.csv", features.assign(**{IRIS_TARGET: target}).to_csv(index=False).encode())
    with LocalEndpoints(tmp_path / "home", SERVING_PYTHON, startup_timeout=60) as eps:
        registry = FakeRegistry(workspace={"1": ref})
        ports = act.RolloutPorts(eps, eps, registry, FakeTrafficLog(), store, FakeModelFiles({("iris", "1"): files}))
        rollout = {"id": "r-1", "model": "iris", "version": "1", "event_id": "e-1", "topic": "t"}
        read = act.read_contract(ports, rollout, serving="mlflow_no_code")
        assert read["ok"], read
        eps.begin_create_endpoint("iris-staging")
        eps.begin_create_deployment(DeploymentSpec("iris-staging", "iris-v1", ref, no_code=True))
        state = eps.wait_deployment("iris-staging", "iris-v1", timeout=60)
        assert state.ready, state

        gates = {"latency_requests": 5, "latency_p95_ms": 10_000.0, "min_metric": 0.9}
        out = act.run_gates(ports, rollout, "staging", "iris-staging", "iris-v1", gates, "iris-prod", "now",
                            serving="mlflow_no_code")
        assert out["passed"], out
        report = json.loads(store.get(out["report_key"])[0])
        by_name = {gate["name"]: gate for gate in report["gates"]}
        assert by_name["smoke"]["reason"] == "200 with one label per record as a bare JSON list"
        assert by_name["smoke"]["figures"]["predictions"] == [0, 0]  # the two setosa rows of the sample
        contract_figures = by_name["contract"]["figures"]
        assert {k: contract_figures[k] for k in ("not_json", "not_an_object", "no_input_data")} == \
            {"not_json": 400, "not_an_object": 400, "no_input_data": 400}  # the inference server's own 400s
        assert contract_figures["refused_with_5xx"] == ["missing_feature", "numeric_wrong_type"]
        assert by_name["quality"]["figures"]["metric"] == "accuracy" and by_name["quality"]["figures"]["value"] > 0.9

        direct = eps.score("iris-staging", {"input_data": {"columns": list(features.columns), "index": [0],
                                                           "data": [[6.7, 3.0, 5.2, 2.3]]}}, deployment="iris-v1")
        assert (direct.status, direct.body) == (200, [2])  # a virginica, as the bare list predict returns

        modelops_way = act.smoke(ports, rollout, "staging", "iris-staging", "iris-v1", serving="modelops")
        assert not modelops_way["passed"]
        assert modelops_way["reason"].startswith("sample request answered 400:") and "input_data" in \
            modelops_way["reason"]
        # no modelops validation or inference logging there: nothing for the export to read
        assert "InputData" not in eps.console_log("iris-staging", "iris-v1").read_text()
