"""`modelops demo`: the whole loop on the embedded local application, narrated.

v1 trained → registered (ModelRegistered) → staging → gates → registry → production, and beside it
the seeds' iris classifier, an MLflow model with its own contract (rows in, {"result": [...]} out)
live traffic through both production front doors (25 + 25 requests/s, never stops)
clean traffic → export timer → drift timer: no drift
drifted traffic → export → drift detected (HTML report) → local alert rule → webhook
→ retraining job (subprocess: train on the newest labelled data → register v2)
→ ModelRegistered → staging → gates → registry → canary 10 → 50 → 100 under live traffic
(iris is exported and drift-checked against its own reference all along, and never retrained)
summary: requests served/failed per deployment, audit trail, gate and drift report paths.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from functions.settings import SAMPLE_REQUEST, Settings

Echo = Callable[[str], None]
MODEL = "credit-card-default"
IRIS = "iris"  # a second model of another contract, managed side by side
MODELS = {MODEL: {}, IRIS: {"gates": {"min_metric": 0.9}}}
DEMO_OVERRIDES = {
    "poll_seconds": 0.5,
    "instance_count": 2,  # locally: two inference-server workers per deployment
    # 25 requests/s × 10% × 4 s ≈ 10 canary requests in the first window: judge on at least 5,
    # and give a slow first window up to 16 s before calling it
    "canary": {"bake_seconds": 4.0, "max_error_rate": 0.01, "max_p90_ms": 2000.0, "min_requests": 5,
               "max_bake_seconds": 16.0},
    "gates": {"latency_requests": 30, "latency_p95_ms": 2000.0, "evaluation_rows": 1500},
}
SLICE = timedelta(seconds=5)  # export slices (production: 1 hour)
LAG = timedelta(seconds=1)  # ingestion lag (production: 10 minutes)
PHASE_SECONDS = 22.0  # traffic per phase: ~550 requests at 25/s (≥ 200 in whole export slices)
# ...and at least this many answers per phase, however long a busy machine takes to serve them: the
# drift check needs 200 rows in the window's whole slices (fewer is insufficient_data, not a verdict)
PHASE_ANSWERS = 400
PHASE_MAX_SECONDS = 240.0


def run_demo(settings: Settings, workdir: Path, *, rows: int = 10_000, echo: Echo = print,
             search_iterations: int = 2) -> dict[str, Any]:
    from functions.adapters.local.jobs import labelled_dir
    from functions.adapters.local.loadgen import LoadGenerator
    from functions.bootstrap import build_app
    from ml.datagen import STRONG_DRIFT, generate
    from ml.training import train_from_file

    started = time.perf_counter()
    if workdir.exists():
        shutil.rmtree(workdir)  # the demo's own state only: every run tells the same story
    settings = replace(settings, home=workdir / "platform", models_json=json.dumps(MODELS), models_dir=None,
                       drift_config_json=json.dumps({"min_current_rows": 200}), retrain_cooldown_hours=24.0)

    def step(n: int, text: str) -> None:
        echo(f"[{n}/8 {time.perf_counter() - started:5.0f}s] {text}")

    with build_app(settings, overrides=DEMO_OVERRIDES) as application:
        cfg = application.managed.get(MODEL)
        eval_key = f"datasets/{MODEL}/evaluation.csv"
        application.store.put(eval_key, generate(1500, seed=1234).to_csv(index=False).encode())

        step(1, f"training v1 on {rows:,} generated rows")
        data = workdir / "data" / "train-v1.csv"
        data.parent.mkdir(parents=True, exist_ok=True)
        generate(rows, seed=0).to_csv(data, index=False)
        metrics = train_from_file(data, workdir / "artifacts" / "v1", search_iterations=search_iterations)
        echo(f"      held-out ROC AUC {metrics['roc_auc']:.3f}")

        step(2, "registering v1, and iris (an MLflow model) beside it: ModelRegistered → staging → gates → "
                "registry → production")
        iris_folder = _iris(application, workdir / "artifacts" / "iris")
        first, iris = _release(application, workdir / "artifacts" / "v1", echo, also=(IRIS, iris_folder))
        if first["state"] != "succeeded" or iris["state"] != "succeeded":
            raise RuntimeError(f"v1 or iris did not reach production: {first.get('reason')} / {iris.get('reason')}")

        def target_of(endpoint: str) -> Callable[[], tuple[str, str]]:
            def target() -> tuple[str, str]:
                state = application.local.production.get_endpoint(endpoint)
                return state.scoring_uri, application.local.production.get_key(endpoint)
            return target

        import numpy as np

        from ml.mlflow_models import iris_frame

        target = target_of(cfg.production_endpoint)
        # rows in feature order (the seeds' request shape), shuffled: the data set is sorted by species,
        # and a window of a partial pass over it in order would be a biased sample (drift it never had)
        iris_features = iris_frame()[0].to_numpy()
        iris_rows = iris_features[np.random.default_rng(7).permutation(len(iris_features))].tolist()

        clean_rows = generate(2000, seed=99, labelled=False).to_dict(orient="records")
        drifted_rows = generate(2000, seed=98, drift=STRONG_DRIFT, labelled=False).to_dict(orient="records")
        with LoadGenerator(target, clean_rows, rate=25, threads=8, max_seconds=600) as load, \
                LoadGenerator(target_of(application.managed.get(IRIS).production_endpoint), iris_rows, rate=25,
                              threads=4, max_seconds=600) as iris_load:
            step(3, f"live traffic: 25 requests/s from today's population (and 25/s to iris) for {PHASE_SECONDS:.0f} s")
            clean_start = _now()
            _serve(load, 0, PHASE_SECONDS)
            drift_start = _now()
            switched_at = len(load.answers)
            load.rows = drifted_rows  # the population changes: richer, older, later payers
            time.sleep((SLICE + LAG).total_seconds() + 1)  # let the clean window's last slice close
            step(4, "export timer (console logs → Parquet), then drift timer")
            # the clean window ends where the last export slice wholly before the switch ends
            clean_end = drift_start - timedelta(seconds=drift_start.timestamp() % SLICE.total_seconds())
            clean = _monitor(application, echo, clean_start, clean_end)

            step(5, f"the population drifts (credit limits ×1.8, ages +8, more late payments); "
                    f"{PHASE_SECONDS:.0f} s of traffic")
            # ground truth for the new population arrives: labelled data for retraining and gates
            labelled = labelled_dir(application.local.home, MODEL)
            labelled.mkdir(parents=True, exist_ok=True)
            generate(rows, seed=2, drift=STRONG_DRIFT).to_csv(labelled / "0002-after-drift.csv", index=False)
            application.store.put(eval_key, generate(1500, seed=4321, drift=STRONG_DRIFT).to_csv(index=False).encode())
            _serve(load, switched_at, max(0.0, PHASE_SECONDS - (_now() - drift_start).total_seconds()))
            drift_end = _now()
            time.sleep((SLICE + LAG).total_seconds() + 1)
            step(6, "export timer, then drift timer → local alert rule → webhook")
            drifted = _monitor(application, echo, drift_start, drift_end)
            alert = drifted.get("alert")
            if not alert or alert["status"] != 202:
                raise RuntimeError(f"expected a retraining alert, got {alert}")
            job_name = alert["body"]["job"]
            if drifted["iris"]["check"]["status"] != "no_drift" or drifted["iris"].get("alert"):
                raise RuntimeError(f"iris's traffic did not change, yet: {drifted['iris']['check']}")

            step(7, f"retraining job {job_name}: trains on the newest labelled data, registers v2")
            job = application.jobs.wait(job_name, timeout=900)
            echo(f"      job {job['status']}: registered version {job.get('registered_version')}")
            if job["status"] != "Completed":
                raise RuntimeError(f"retraining failed: {job.get('error')}")
            second = [o for o in application.wait_all(timeout=900)
                      if o.get("model") == MODEL and o.get("version") == job["registered_version"]][0]
            _narrate(application, second, echo)
            time.sleep(1.0)
        traffic = load.summary()
        iris_traffic = iris_load.summary()
        production = application.local.production.get_endpoint(cfg.production_endpoint)

        step(8, "summary")
        echo(f"live traffic: {traffic['requests']:,} requests at {traffic['rate']} req/s, {traffic['failed']} failed; "
             f"served by {traffic['by_deployment']}")
        echo(f"production traffic now: {production.traffic}")
        echo(f"iris: {iris_traffic['requests']:,} requests, {iris_traffic['failed']} failed; drift "
             f"{clean['iris']['check']['status']} then {drifted['iris']['check']['status']}; still version "
             f"{application.rollouts.production(IRIS)['version']}")
        echo(f"drift: clean window {clean['check']['status']}, drifted window {drifted['check']['status']}")
        store_dir = application.local.home / "store"
        reports = [r.get("gate_report") for r in (first, second) if r.get("gate_report")]
        for report in reports:
            echo(f"gate report:  {store_dir / report}")
        for item in (clean, drifted):
            if item["check"].get("report_key"):
                echo(f"drift report: {store_dir / item['check']['report_key']}")
        echo(f"audit trail:  {store_dir / 'audit' / MODEL}  (MODELOPS_HOME={application.local.home} modelops status --audit)")
        summary = {
            "v1": first, "v2": second, "traffic": traffic, "production_traffic": production.traffic,
            "drift": {"clean": clean["check"], "drifted": drifted["check"]}, "alert": alert, "job": job,
            "gate_reports": [str(store_dir / r) for r in reports], "home": str(application.local.home),
            "iris": {"rollout": iris, "traffic": iris_traffic, "production": application.rollouts.production(IRIS),
                     "drift": {"clean": clean["iris"]["check"], "drifted": drifted["iris"]["check"]},
                     "exported_rows": clean["iris"]["exported_rows"] + drifted["iris"]["exported_rows"],
                     "retrained": [j for j in application.local.jobs.list_running(IRIS)]},
            "seconds": round(time.perf_counter() - started, 1),
        }
    echo(f"done in {summary['seconds']} s")
    return summary


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _serve(load: Any, since: int, seconds: float) -> None:
    """Let live traffic run for `seconds`, then on until PHASE_ANSWERS answers have come since
    answer number `since` (at most PHASE_MAX_SECONDS in all)."""
    started = time.monotonic()
    time.sleep(seconds)
    while len(load.answers) - since < PHASE_ANSWERS and time.monotonic() - started < PHASE_MAX_SECONDS:
        time.sleep(0.5)


def _monitor(application: Any, echo: Echo, start: datetime, end: datetime) -> dict[str, Any]:
    exported = application.export_logs(now=_now(), slice_length=SLICE, lag=LAG,
                                    since=start.replace(second=0, microsecond=0) - timedelta(minutes=1))
    report = exported[MODEL]
    echo(f"      exported {report['rows']} rows into {len(report['files'])} Parquet files "
         f"(malformed lines: {report['malformed']})" + (f"; error: {report['error']}" if report["error"] else ""))
    items = application.check_drift(now=end, window=end - start)
    # this window's check of each model (after the results of any finished jobs)
    item = [i for i in items if i["check"]["model"] == MODEL][-1]
    iris = [i for i in items if i["check"]["model"] == IRIS][-1]
    iris["exported_rows"] = exported[IRIS]["rows"]
    echo(f"      iris: exported {exported[IRIS]['rows']} rows{'; error: ' + exported[IRIS]['error'] if exported[IRIS]['error'] else ''}"
         f"; drift {iris['check']['status']} {iris['check'].get('reason', '')}".rstrip())
    item["iris"] = iris
    check = item["check"]
    overall = next((r["data"] for r in check["records"] if r.get("type") == "OverallDriftMetrics"), None)
    if overall:
        echo(f"      drift: {check['status']} — {overall['n_drifted_features']} of {overall['n_features']} columns "
             f"drifted on {check['rows']} rows (dataset_drift={overall['dataset_drift']})")
    else:
        echo(f"      drift: {check['status']} {check.get('reason', '')}")
    if check.get("report_key"):
        echo(f"      report: {application.local.home / 'store' / check['report_key']}")
    if item.get("alert"):
        body = item["alert"]["body"]
        echo(f"      alert {body.get('alert_id', '')[-12:]} → webhook: {item['alert']['status']} {body.get('action')} "
             f"({body.get('reason') or body.get('error')})")
    return item


def _iris(application: Any, folder: Path) -> Path:
    """The seeds' iris classifier as an MLflow model folder (+ contract.json, reference sample), and
    its labelled evaluation data in the store."""
    from ml.mlflow_models import IRIS_TARGET, iris_frame, save_iris

    features, target = iris_frame()
    application.store.put(application.managed.get(IRIS).evaluation_data,
                          features.assign(**{IRIS_TARGET: target.to_numpy()}).to_csv(index=False).encode())
    return save_iris(folder)


def _release(application: Any, folder: Path, echo: Echo, also: tuple[str, Path] | None = None) -> Any:
    ref, payload = application.local.workspace.register(folder, MODEL)
    echo(f"      registered {MODEL}:{ref.version} → ModelRegistered {payload[0]['id'][:8]}… → handler")
    other = None
    if also is not None:  # registered at once: the two rollouts run side by side
        other, _ = application.local.workspace.register(also[1], also[0])
        echo(f"      registered {also[0]}:{other.version} (MLflow model) → its own rollout")
    done = application.wait_all(timeout=900)
    outcome = [o for o in done if o.get("model") == MODEL and o.get("version") == ref.version][0]
    _narrate(application, outcome, echo)
    if other is not None:
        second = [o for o in done if o.get("model") == also[0] and o.get("version") == other.version][0]
        echo(f"      rollout {also[0]}:{second['version']} → {second['state']}: {second.get('reason', '')}")
    sample = application.local.production.score(application.managed.get(MODEL).production_endpoint,
                                       json.loads(SAMPLE_REQUEST.read_text()))
    echo(f"      ml/sample.json via the production endpoint: {sample.status} {json.dumps(sample.body)}")
    if other is not None:
        answer = application.local.production.score(application.managed.get(also[0]).production_endpoint,
                                                    {"data": [[5.1, 3.5, 1.4, 0.2]]})
        echo(f"      iris [[5.1, 3.5, 1.4, 0.2]] via its production endpoint: {answer.status} {json.dumps(answer.body)}")
        return outcome, second
    return outcome


def _narrate(application: Any, outcome: dict[str, Any], echo: Echo) -> None:
    for record in application.rollouts.trail(MODEL, outcome["id"]):
        echo(f"        {_describe(record)}")
    echo(f"      rollout {MODEL}:{outcome['version']} → {outcome['state']}: {outcome.get('reason', '')}")


def _describe(record: dict[str, Any]) -> str:
    d = record["details"]
    step = record["step"]
    at = record["at"][11:19]
    if step == "gates":
        order = ["smoke", "contract", "latency", "quality", "error"]
        items = sorted(d.get("results", {}).items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9)
        return f"{at} gates: " + ", ".join(f"{k} {'✓' if v['passed'] else '✗'}" for k, v in items)
    if step == "traffic":
        return f"{at} traffic {d.get('traffic')}"
    if step == "health":
        f = d.get("figures", {})
        return (f"{at} health at {d.get('percent')}%: {'ok' if d.get('healthy') else 'FAILED'} "
                f"({f.get('requests')} requests, {f.get('errors')} errors, p90 {f.get('p90_ms')} ms)")
    if step == "promoted":
        return f"{at} promoted to the registry"
    keys = {k: v for k, v in d.items() if k in ("deployment", "reason", "removed")}
    return f"{at} {step} {json.dumps(keys) if keys else ''}".rstrip()
