"""Drift scale-out: above MODELOPS_DRIFT_JOB_ROWS the drift timer submits the drift job
(ml/jobs/drift.yml → python -m ml.steps.drift) instead of computing in the function.

Local: the embedded platform's drift check stages the window in the store, LocalJobs runs the real
step in a subprocess and copies result.json into the store; its verdict is the in-process one.
Azure: AzureJobs.submit_drift through the real azure-ai-ml against tests/fake_arm.py, asserted on
the wire.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests.adapters

from functions.bootstrap import App, build_app
from functions.services.contracts import store_contract
from functions.services.monitoring import drift_job_inputs, drift_job_name, run_drift_check
from functions.ports import Jobs, PlatformError
from functions.settings import Settings, SettingsError
from ml import schema
from ml.datagen import STRONG_DRIFT, generate
from tests.model_contracts import credit_contract

MODEL = schema.MODEL_NAME
NOW = datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)
STAMP = "20260102T030000Z"


def parquet_bytes(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def platform_with_window(tmp_path: Path, job_rows: int) -> App:
    """A local platform whose production model (v1: just a reference sample) has a drifted window of
    2 × 400 exported rows."""
    settings = Settings.from_env({"MODELOPS_HOME": str(tmp_path / "home"), "MODELOPS_DRIFT_JOB_ROWS": str(job_rows)})
    platform = build_app(settings)
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model_card.json").write_text("{}")
    (artifact / "reference.parquet").write_bytes(parquet_bytes(generate(2_000, seed=1)))
    ref, _ = platform.local.workspace.register(artifact, MODEL, emit=False)
    platform.rollouts.set_production({"model": MODEL, "version": ref.version, "id": "rollout-1"}, "blue",
                                     {"blue": 100}, NOW.isoformat())
    store_contract(platform.store, MODEL, ref.version, credit_contract(), current=True)  # as the rollout does
    for i, hour in enumerate((1, 2)):
        sliced = NOW.replace(hour=hour)
        frame = generate(400, seed=10 + i, drift=STRONG_DRIFT)[list(schema.FEATURE_NAMES)]
        platform.store.put(f"exports/{MODEL}/{ref.version}/{sliced:%Y-%m-%d}/{sliced:%H}/"
                           f"part-{sliced:%Y%m%dT%H%M}Z.parquet", parquet_bytes(frame))
    return platform


def reference_of(platform: App):
    return lambda model, version, tmp: Path(platform.local.workspace.get(model, version).uri) / "reference.parquet"


# ------------------------------------------------------------------------------------- settings


def test_the_job_rows_setting_defaults_to_two_million_and_zero_disables() -> None:
    assert Settings.from_env({}).drift_job_rows == 2_000_000
    assert Settings.from_env({"MODELOPS_DRIFT_JOB_ROWS": "0"}).drift_job_rows == 0
    assert Settings.from_env({"MODELOPS_DRIFT_DATASTORE": " modelops "}).drift_datastore == "modelops"
    with pytest.raises(SettingsError, match="MODELOPS_DRIFT_JOB_ROWS"):
        Settings.from_env({"MODELOPS_DRIFT_JOB_ROWS": "-1"})
    template = json.loads((Path(__file__).parent.parent / "local.settings.json.template").read_text())["Values"]
    assert template["MODELOPS_DRIFT_JOB_ROWS"] == "2000000" and "MODELOPS_DRIFT_DATASTORE" in template


def test_job_names_are_deterministic_lower_case_azureml_names() -> None:
    assert drift_job_name(MODEL, "12", STAMP) == "drift-credit-card-default-12-20260102t030000z"
    assert drift_job_name("My.Model", "1", STAMP) == "drift-my-model-1-20260102t030000z"


# ---------------------------------------------------------------------------------------- local


def test_above_the_threshold_the_local_drift_job_computes_the_in_process_verdict(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="modelops.drift")
    with platform_with_window(tmp_path, job_rows=100) as platform:
        (item,) = platform.check_drift(now=NOW, alert=False, report=False)
        check = item["check"]
        name = f"drift-{MODEL}-1-{STAMP.lower()}"
        assert check["status"] == "submitted" and check["job"] == name and check["rows"] == 800
        assert check["dataset_drift"] is None and "alert" not in item
        prefix = f"drift/{MODEL}/1/{STAMP}"
        assert check["result_key"] == f"{prefix}/result.json"
        staged = f"drift-jobs/{MODEL}/1/{STAMP}"
        assert platform.store.list(staged) == [f"{staged}/contract.json", f"{staged}/current/part-00000.parquet",
                                               f"{staged}/current/part-00001.parquet", f"{staged}/reference.parquet"]
        staged_contract = json.loads(platform.store.get(f"{staged}/contract.json")[0])  # what the job compares by
        assert staged_contract == credit_contract().to_dict()

        job = platform.jobs.wait(name, timeout=120)
        assert job["status"] == "Completed", (job, Path(job["log"]).read_text())
        assert job["kind"] == "drift" and job["tags"]["modelops.model_version"] == "1"
        assert job["contract"].endswith(f"{staged}/contract.json")  # passed as --contract
        assert isinstance(platform.jobs, Jobs)
        assert platform.jobs.list_running(MODEL) == []  # drift jobs are no retraining in progress
        by_job = json.loads(platform.store.get(f"{prefix}/result.json")[0])
        assert by_job["status"] == "ok" and by_job["dataset_drift"] is True
        assert job["result_key"] == f"{prefix}/result.json" and job["dataset_drift"] is True
        assert platform.store.get(f"{prefix}/report.html") is None  # report=False → --no-report
        logged = [json.loads(r.getMessage()) for r in caplog.records if "DriftMetrics" in r.getMessage()]
        assert sorted(r["type"] for r in logged) == ["FeatureDriftMetrics", "OverallDriftMetrics"]

        # The next timer run collects the finished job (records logged again for the alert rule,
        # verdict into the history), then re-checks the same window: the same job, not a second one.
        caplog.clear()
        collected, again = platform.check_drift(now=NOW, alert=False, report=False)
        assert collected["check"]["status"] == "drift" and collected["check"]["job"] == name
        assert collected["check"]["dataset_drift"] is True and collected["check"]["result_key"] == f"{prefix}/result.json"
        history = json.loads(platform.store.get(f"drift/{MODEL}/history.json")[0])
        assert history["schema_version"] == 2
        assert history["verdicts"][-1]["dataset_drift"] is True and history["verdicts"][-1]["job"] == name
        assert any("OverallDriftMetrics" in r.getMessage() for r in caplog.records)
        assert platform.store.list(f"drift/{MODEL}/pending/") != []  # the re-submitted window is pending again
        assert again["check"]["job"] == name
        assert [p.name for p in platform.jobs.root.iterdir()] == [name]

        # In-process on the same data (no submitter): the same verdict and the same records.
        in_process = run_drift_check(MODEL, platform.store, reference_of(platform), now=NOW + timedelta(seconds=1),
                                     report=False)
        assert in_process.status == "drift" and in_process.dataset_drift is by_job["dataset_drift"]
        assert in_process.rows == 800 and in_process.job == ""
        assert [r["data"] for r in in_process.records] == [r["data"] for r in by_job["records"]]


def test_below_the_threshold_the_check_computes_in_process(tmp_path) -> None:
    with platform_with_window(tmp_path, job_rows=800) as platform:  # 800 rows is not above 800
        (item,) = platform.check_drift(now=NOW, alert=False, report=False)
        assert item["check"]["status"] == "drift" and item["check"]["job"] == ""
        assert item["check"]["dataset_drift"] is True
        assert list(platform.jobs.root.iterdir()) == []
        assert platform.store.list("drift-jobs/") == []


def test_without_a_submitter_a_large_window_is_computed_in_process(tmp_path) -> None:
    with platform_with_window(tmp_path, job_rows=100) as platform:
        check = run_drift_check(MODEL, platform.store, reference_of(platform), now=NOW, report=False, job_rows=100)
        assert check.status == "drift" and check.job == ""
        assert platform.store.list("drift-jobs/") == []


def test_the_job_gets_the_config_but_not_the_m_of_n_it_cannot_evaluate(tmp_path) -> None:
    submitted = []

    def submit(name, model, version, staged, output, config):
        submitted.append((name, model, version, staged, output, config))
        return {"name": name, "status": "NotStarted"}

    with platform_with_window(tmp_path, job_rows=100) as platform:
        check = run_drift_check(MODEL, platform.store, reference_of(platform), now=NOW, report=False, job_rows=100,
                                submit_drift_job=submit,
                                config={"min_current_rows": 200, "sustain_m": 2, "sustain_n": 3})
    assert check.status == "submitted" and check.report_key == ""
    assert submitted == [(f"drift-{MODEL}-1-{STAMP.lower()}", MODEL, "1", f"drift-jobs/{MODEL}/1/{STAMP}",
                          f"drift/{MODEL}/1/{STAMP}", {"min_current_rows": 200})]


# ------------------------------------------------------------------ a window with a broken part

CORRUPT_KEY = f"exports/{MODEL}/1/2026-01-02/00/part-20260102T0000Z.parquet"
CORRUPT_COPY = f"quarantine/drift/{MODEL}/1/2026-01-02/00/part-20260102T0000Z.parquet"


def add_corrupt_part(platform: App) -> bytes:
    """A part cut short (a writer that died mid-upload, a disk that lost its tail): no footer."""
    whole = parquet_bytes(generate(400, seed=99)[list(schema.FEATURE_NAMES)])
    data = whole[: len(whole) // 2]
    platform.store.put(CORRUPT_KEY, data)
    return data


def test_a_corrupt_part_is_quarantined_and_the_check_still_judges_the_rest(tmp_path) -> None:
    with platform_with_window(tmp_path, job_rows=0) as platform:
        data = add_corrupt_part(platform)
        store = platform.store
        m_of_n = {"sustain_m": 2, "sustain_n": 2}

        check = run_drift_check(MODEL, store, reference_of(platform), now=NOW, report=False, config=m_of_n)

        assert check.status == "drift" and check.dataset_drift is True and check.rows == 800
        assert (check.quarantined_parts, check.quarantined_rows, check.invalid_rows) == (1, 0, 0)
        assert check.quarantine == [CORRUPT_COPY] and store.get(CORRUPT_COPY)[0] == data  # kept for inspection
        note = json.loads(store.get(f"{CORRUPT_COPY}.json")[0])
        assert note["source"] == CORRUPT_KEY and "cannot be read" in note["reason"] and note["bytes"] == len(data)
        assert store.get(CORRUPT_KEY)[0] == data  # the export's own record is left as it is
        result = json.loads(store.get(check.result_key)[0])
        assert [(q["part"], q["copy"]) for q in result["quarantine"]] == [(CORRUPT_KEY, CORRUPT_COPY)]
        assert result["result"]["current"]["quarantined_parts"] == 1
        assert check.sustained is False  # one drifted window of the two M-of-N needs

        # the part is still in the next window: skipped again, the verdict history still advances
        later = run_drift_check(MODEL, store, reference_of(platform), now=NOW + timedelta(hours=1), report=False,
                                config=m_of_n)
        assert later.status == "drift" and later.quarantined_parts == 1 and later.sustained is True
        history = json.loads(store.get(f"drift/{MODEL}/history.json")[0])["verdicts"]
        assert [h["dataset_drift"] for h in history] == [True, True]
        assert store.list("quarantine/") == [CORRUPT_COPY, f"{CORRUPT_COPY}.json"]  # one copy, not one per run


def test_a_part_without_a_footer_is_not_staged_for_the_drift_job(tmp_path) -> None:
    submitted = []

    def submit(name, model, version, staged, output, config):
        submitted.append(staged)
        return {"name": name, "status": "NotStarted"}

    with platform_with_window(tmp_path, job_rows=100) as platform:
        add_corrupt_part(platform)
        check = run_drift_check(MODEL, platform.store, reference_of(platform), now=NOW, report=False, job_rows=100,
                                submit_drift_job=submit)
        staged = platform.store.list(f"drift-jobs/{MODEL}/1/{STAMP}/current/")
    assert check.status == "submitted" and check.rows == 800  # the readable parts' footers
    assert check.quarantined_parts == 1 and check.quarantine == [CORRUPT_COPY]
    assert [key.rsplit("/", 1)[-1] for key in staged] == ["part-00001.parquet", "part-00002.parquet"]
    assert submitted == [f"drift-jobs/{MODEL}/1/{STAMP}"]


def test_nothing_readable_in_the_window_is_insufficient_data_not_a_failure(tmp_path) -> None:
    with platform_with_window(tmp_path, job_rows=0) as platform:
        for key in platform.store.list(f"exports/{MODEL}/"):
            platform.store.put(key, b"PAR1 not a parquet file")
        check = run_drift_check(MODEL, platform.store, reference_of(platform), now=NOW, report=False)
        assert check.status == "insufficient_data" and check.dataset_drift is None and check.records == []
        assert check.quarantined_parts == 2 and "2 unusable part(s) quarantined" in check.reason
        assert platform.store.get(f"drift/{MODEL}/history.json") is None  # no window without a verdict


def test_an_unreadable_history_does_not_wedge_the_check(tmp_path) -> None:
    with platform_with_window(tmp_path, job_rows=0) as platform:
        store = platform.store
        broken = b'[{"at": "2026-01-01T03:00:00+00:00", "version": "1", "dataset_dr'
        store.put(f"drift/{MODEL}/history.json", broken)

        check = run_drift_check(MODEL, store, reference_of(platform), now=NOW, report=False)

        assert check.status == "drift"
        assert store.get(f"quarantine/drift/{MODEL}/history-{STAMP}.json")[0] == broken
        assert [h["dataset_drift"] for h in json.loads(store.get(f"drift/{MODEL}/history.json")[0])["verdicts"]] == [True]


def test_a_history_written_before_schema_versions_is_read_and_a_newer_one_is_refused(tmp_path) -> None:
    """Version 1 (a bare list, what earlier modelops wrote) counts towards M-of-N and is rewritten as
    version 2; one from a newer modelops stops that model's check with both versions named, and
    stays as it is."""
    m_of_n = {"sustain_m": 2, "sustain_n": 2}
    with platform_with_window(tmp_path, job_rows=0) as platform:
        store = platform.store
        old = [{"at": "2026-01-01T03:00:00+00:00", "version": "1", "dataset_drift": True}]
        store.put(f"drift/{MODEL}/history.json", json.dumps(old).encode())
        check = run_drift_check(MODEL, store, reference_of(platform), now=NOW, report=False, config=m_of_n)
        assert check.status == "drift" and check.sustained is True  # the old verdict counted
        rewritten = json.loads(store.get(f"drift/{MODEL}/history.json")[0])
        assert rewritten["schema_version"] == 2 and [h["dataset_drift"] for h in rewritten["verdicts"]] == [True, True]
        result = json.loads(store.get(check.result_key)[0])
        assert result["schema_version"] == 2 and result["dataset_drift"] is True

        newer = json.dumps({"schema_version": 3, "verdicts": [], "windows": {}}).encode()
        store.put(f"drift/{MODEL}/history.json", newer)
        [item] = platform.check_drift(now=NOW + timedelta(hours=1), alert=False, report=False)
        assert item["check"]["status"] == "error" and "newer modelops (record schema 3" in item["error"], item
        assert store.get(f"drift/{MODEL}/history.json")[0] == newer  # left for the newer modelops
        assert store.list("quarantine/") == []


def test_unreadable_drift_job_notes_and_results_are_set_aside(tmp_path) -> None:
    from functions.adapters.local.store import DirectoryStore
    from functions.services.monitoring import collect_drift_jobs

    store = DirectoryStore(tmp_path / "store")
    store.put(f"drift/{MODEL}/pending/a.json", b"{not json")
    store.put(f"drift/{MODEL}/pending/b.json", json.dumps({
        "job": "job-b", "version": "1", "result_key": f"drift/{MODEL}/1/b/result.json", "report_key": "",
        "rows": 5}).encode())
    store.put(f"drift/{MODEL}/1/b/result.json", b'{"status": "ok", "rec')

    (check,) = collect_drift_jobs(store, MODEL, NOW)

    assert check.status == "insufficient_data" and check.job == "job-b" and "cannot be read" in check.reason
    assert store.list(f"drift/{MODEL}/pending/") == []  # neither is read (and failed on) again
    assert store.get(f"quarantine/drift/{MODEL}/pending/a.json")[0] == b"{not json"
    assert check.quarantine == [f"quarantine/drift/{MODEL}/1/results/{STAMP}-b.json"]
    assert store.get(check.quarantine[0])[0] == b'{"status": "ok", "rec'
    assert collect_drift_jobs(store, MODEL, NOW) == []


# ---------------------------------------------------------------------------------------- azure

JOB = f"drift-{MODEL}-1-{STAMP.lower()}"
CODE = "azureml:modelops-ml:3"
ENVIRONMENT = "azureml:credit-card-default-training:2"


@pytest.fixture
def fake(monkeypatch):
    from tests.fake_arm import FakeAzureML

    escaped: list[str] = []

    def guarded(self, request, *args, **kwargs):  # uploads would leave the fake transport
        escaped.append(f"{request.method} {request.url}")
        raise RuntimeError(f"test refused a real network call: {request.method} {request.url}")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", guarded)
    fake = FakeAzureML()
    yield fake
    assert escaped == [] and fake.unhandled == []


def azure_jobs(fake, **kw):
    from functions.adapters.azure.aml import workspace_client
    from functions.adapters.azure.aml_jobs import AzureJobs
    from tests.fake_arm import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE
    from tests.fake_credentials import FakeCredential

    ml = workspace_client(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, credential=FakeCredential(),
                          transport=fake.transport(), retry_backoff_factor=0.0)
    kw.setdefault("drift_code", CODE)
    kw.setdefault("drift_environment", ENVIRONMENT)
    return AzureJobs(ml, **kw)


def test_azure_submit_drift_puts_the_drift_yaml_with_datastore_paths(fake) -> None:
    from tests.fake_arm import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE

    ws = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
          f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
    jobs = azure_jobs(fake, drift_datastore="modelops")
    assert isinstance(jobs, Jobs)
    staged, output = f"drift-jobs/{MODEL}/1/{STAMP}", f"drift/{MODEL}/1/{STAMP}"
    answer = jobs.submit_drift(JOB, MODEL, drift_job_inputs(staged, output, {"min_current_rows": 200}),
                               {"modelops.model_version": "1"})

    (put,) = fake.writes()
    assert put.method == "PUT" and put.path == f"{ws}/jobs/{JOB}"
    props = put.body["properties"]
    assert props["jobType"] == "Command" and props["displayName"] == f"drift {MODEL}"
    assert props["command"] == (
        "python -m ml.steps.drift --reference ${{inputs.reference}} --current ${{inputs.current}} "
        "--output ${{outputs.report}} --model-name credit-card-default --config '{\"min_current_rows\":200}'")
    datastore = "azureml://datastores/modelops/paths"
    assert props["inputs"] == {
        "reference": {"uri": f"{datastore}/{staged}/reference.parquet", "jobInputType": "uri_file"},
        "current": {"uri": f"{datastore}/{staged}/current/", "jobInputType": "uri_folder"}}
    assert props["outputs"] == {"report": {"uri": f"{datastore}/{output}/", "jobOutputType": "uri_folder"}}
    assert props["codeId"] == f"{ws}/codes/modelops-ml/versions/3"  # registered: nothing uploaded
    assert props["environmentId"] == f"{ws}/environments/credit-card-default-training/versions/2"
    assert props["computeId"] == f"{ws}/computes/cpu-cluster"
    assert props["tags"] == {"project": "modelops", "modelops.model_version": "1", "model": MODEL}
    assert answer["name"] == JOB and answer["status"] == "NotStarted" and answer["submitted"] is True

    # A second submission under the same name: the existing job, no second PUT.
    again = jobs.submit_drift(JOB, MODEL, drift_job_inputs(staged, output), {"modelops.model_version": "1"})
    assert again["name"] == JOB and again["submitted"] is False and again["tags"]["model"] == MODEL
    assert len(fake.writes()) == 1
    # Drift (command) jobs are not retraining in progress.
    assert jobs.list_running(MODEL) == []


def test_azure_submit_drift_passes_the_staged_contract_as_a_file_input(fake) -> None:
    """The submitter always sends the contract run_drift_check staged (contract.json): a uri_file
    input the YAML does not declare, read by the step as --contract."""
    from functions.services.monitoring import drift_job_submitter

    jobs = azure_jobs(fake, drift_datastore="modelops")
    staged, output = f"drift-jobs/{MODEL}/1/{STAMP}", f"drift/{MODEL}/1/{STAMP}"
    submit = drift_job_submitter(jobs, report=False)
    submit(JOB, MODEL, "1", staged, output, {})

    (put,) = fake.writes()
    props = put.body["properties"]
    datastore = "azureml://datastores/modelops/paths"
    assert props["inputs"]["contract"] == {"uri": f"{datastore}/{staged}/contract.json", "jobInputType": "uri_file"}
    assert props["command"] == (
        "python -m ml.steps.drift --reference ${{inputs.reference}} --current ${{inputs.current}} "
        "--output ${{outputs.report}} --contract ${{inputs.contract}} --model-name credit-card-default --no-report")


def test_azure_submit_drift_needs_a_datastore_and_a_lower_case_name(fake) -> None:
    jobs = azure_jobs(fake)
    inputs = drift_job_inputs(f"drift-jobs/{MODEL}/1/{STAMP}", f"drift/{MODEL}/1/{STAMP}", {}, report=False)
    with pytest.raises(PlatformError, match="MODELOPS_DRIFT_DATASTORE"):
        jobs.submit_drift(JOB, MODEL, inputs, {})
    with pytest.raises(PlatformError, match="lower case"):
        jobs.submit_drift(JOB.upper(), MODEL, {**inputs, "datastore": "modelops"}, {})
    assert fake.writes() == []
    # The datastore may also come with the inputs; report=False → --no-report.
    jobs.submit_drift(JOB, MODEL, {**inputs, "datastore": "mlstore"}, {})
    (put,) = fake.writes()
    assert put.body["properties"]["command"].endswith("--model-name credit-card-default --no-report")
    assert put.body["properties"]["inputs"]["current"]["uri"].startswith("azureml://datastores/mlstore/paths/")


def test_one_models_failing_drift_check_never_stops_the_others(tmp_path) -> None:
    """A second managed model whose production reference is gone: its check is an error item, and
    the first model is still judged."""
    settings = Settings.from_env({"MODELOPS_HOME": str(tmp_path / "home"),
                                  "MODELOPS_MODELS": json.dumps([MODEL, "broken-model"])})
    with platform_with_window(tmp_path, job_rows=0) as base:
        platform = build_app(settings)
        platform.rollouts.set_production({"model": "broken-model", "version": "9", "id": "rollout-9"}, "d9",
                                         {"d9": 100}, NOW.isoformat())
        store_contract(platform.store, "broken-model", "9", credit_contract(), current=True)
        sliced = NOW.replace(hour=1)
        platform.store.put(f"exports/broken-model/9/{sliced:%Y-%m-%d}/{sliced:%H}/part-{sliced:%Y%m%dT%H%M}Z.parquet",
                           parquet_bytes(generate(400, seed=3)[list(schema.FEATURE_NAMES)]))
        items = platform.check_drift(now=NOW, alert=False, report=False)
        platform.close()
    by_model = {item["check"]["model"]: item for item in items}
    assert set(by_model) == {MODEL, "broken-model"}
    assert by_model["broken-model"]["check"]["status"] == "error"
    assert "broken-model:9 not found" in by_model["broken-model"]["error"]
    assert by_model[MODEL]["check"]["status"] in ("drift", "no_drift") and "error" not in by_model[MODEL]
    assert base.local.home == platform.local.home
