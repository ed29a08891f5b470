"""`modelops demo`: the main job on the embedded local platform, narrated.

train v1 → register (ModelRegistered) → staging → gates → registry → production at 100%
live traffic through the production front door (≥ 20 requests/s)
train v2 → register → staging → gates → registry → canary 10 → 50 → 100 under that traffic
summary: requests served and failed per deployment, the audit trail, gate report paths.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from functions.settings import SAMPLE_REQUEST, Settings

Echo = Callable[[str], None]
MODEL = "credit-card-default"
DEMO_OVERRIDES = {
    "poll_seconds": 0.5,
    "instance_count": 2,  # locally: two inference-server workers per deployment
    "canary": {"bake_seconds": 4.0, "max_error_rate": 0.01, "max_p90_ms": 2000.0},
    "gates": {"latency_requests": 30, "latency_p95_ms": 2000.0, "evaluation_rows": 2000},
}


def run_demo(settings: Settings, workdir: Path, *, rows: int = 20_000, echo: Echo = print,
             search_iterations: int = 3) -> dict[str, Any]:
    from functions.adapters.local.loadgen import LoadGenerator
    from functions.bootstrap import LocalPlatform, seed_evaluation_data
    from ml.datagen import generate
    from ml.training import train_from_file

    started = time.perf_counter()
    if workdir.exists():
        shutil.rmtree(workdir)  # the demo's own state only: every run tells the same story
    data_dir, models_dir = workdir / "data", workdir / "artifacts"
    data_dir.mkdir(parents=True)
    settings = replace(settings, home=workdir / "platform", models_json=None)

    with LocalPlatform(settings, overrides=DEMO_OVERRIDES) as platform:
        cfg = platform.managed.get(MODEL)
        seed_evaluation_data(platform.store, MODEL, rows=2000)

        def train(version_label: str, seed: int) -> Path:
            path = data_dir / f"train-{version_label}.csv"
            generate(rows, seed=seed).to_csv(path, index=False)
            metrics = train_from_file(path, models_dir / version_label, seed=seed,
                                      search_iterations=search_iterations)
            echo(f"      trained on {metrics['n_train']:,} rows: held-out ROC AUC {metrics['roc_auc']:.3f}, "
                 f"F1 {metrics['f1']:.3f}")
            return models_dir / version_label

        def release(folder: Path) -> dict[str, Any]:
            ref, payload = platform.workspace.register(folder, MODEL)
            echo(f"      registered {MODEL}:{ref.version} → ModelRegistered event {payload[0]['id'][:8]}… "
                 "delivered to the handler")
            decision = platform.rollouts.decisions()[-1]
            echo(f"      decision: {decision['action']} ({decision['reason']})")
            outcome = [o for o in platform.wait_all(timeout=900) if o.get("version") == ref.version][0]
            for record in platform.rollouts.trail(MODEL, outcome["id"]):
                echo(f"        {_describe(record)}")
            echo(f"      rollout {MODEL}:{ref.version} → {outcome['state']}: {outcome.get('reason', '')}")
            return outcome

        echo(f"[1/5] training v1 on {rows:,} generated rows")
        v1_dir = train("v1", seed=0)
        echo("[2/5] registering v1: staging → gates → registry → production")
        first = release(v1_dir)
        if first["state"] != "succeeded":
            raise RuntimeError(f"v1 did not reach production: {first.get('reason')}")
        sample = platform.production.score(cfg.production_endpoint, json.loads(SAMPLE_REQUEST.read_text()))
        echo(f"      ml/sample.json via the production endpoint: {sample.status} {json.dumps(sample.body)}")

        def target() -> tuple[str, str]:
            state = platform.production.get_endpoint(cfg.production_endpoint)
            return state.scoring_uri, platform.production.get_key(cfg.production_endpoint)

        traffic_rows = generate(500, seed=99, labelled=False).to_dict(orient="records")
        echo("[3/5] live traffic: 8 clients, 25 requests/s through the production front door")
        with LoadGenerator(target, traffic_rows, rate=25, threads=8) as load:
            echo("[4/5] training v2 on fresh data while v1 serves")
            v2_dir = train("v2", seed=1)
            echo("[5/5] registering v2: staging → gates → registry → canary 10 → 50 → 100 under load")
            second = release(v2_dir)
            time.sleep(1.0)
        traffic = load.summary()
        production = platform.production.get_endpoint(cfg.production_endpoint)
        echo("")
        echo(f"live traffic: {traffic['requests']:,} requests at {traffic['rate']} req/s, "
             f"{traffic['failed']} failed; served by {traffic['by_deployment']}")
        echo(f"production traffic now: {production.traffic}")
        reports = [r.get("gate_report") for r in (first, second) if r.get("gate_report")]
        for report in reports:
            echo(f"gate report: {platform.home / 'store' / report}")
        echo(f"audit trail: {platform.home / 'store' / 'audit' / MODEL}  (also: modelops status --audit, "
             f"MODELOPS_HOME={platform.home})")
        summary = {
            "v1": first, "v2": second, "traffic": traffic, "production_traffic": production.traffic,
            "gate_reports": [str(platform.home / "store" / r) for r in reports],
            "home": str(platform.home), "seconds": round(time.perf_counter() - started, 1),
        }
    echo(f"done in {summary['seconds']} s")
    return summary


def _describe(record: dict[str, Any]) -> str:
    d = record["details"]
    step = record["step"]
    at = record["at"][11:19]
    if step == "gates":
        order = ["smoke", "contract", "latency", "quality", "error"]
        items = sorted(d.get("results", {}).items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9)
        results = ", ".join(f"{k} {'✓' if v['passed'] else '✗'}" for k, v in items)
        return f"{at} gates: {results}"
    if step == "traffic":
        return f"{at} traffic {d.get('traffic')}"
    if step == "health":
        f = d.get("figures", {})
        return (f"{at} health at {d.get('percent')}%: {'ok' if d.get('healthy') else 'FAILED'} "
                f"({f.get('requests')} requests, {f.get('errors')} errors, p90 {f.get('p90_ms')} ms)")
    if step == "promoted":
        return f"{at} promoted to the registry ({d.get('registry_uri')})"
    keys = {k: v for k, v in d.items() if k in ("deployment", "endpoint", "reason", "removed")}
    return f"{at} {step} {json.dumps(keys) if keys else ''}".rstrip()
