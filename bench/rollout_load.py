"""A rollout under live traffic on the local platform: requests/s served, failures, duration.

Target (what tests/test_rollout_local.py used to assert; it now asserts zero failures, the audit
trail and the order of events, at whatever rate the machine serves): while a new version rolls out
(staging → gates → registry → canary 10 → 50 → 100), the production front door serves >= 20
requests/s with zero failed requests, and the rollout succeeds.

One command:  .venv/bin/python bench/rollout_load.py [--rollouts 3]   (make bench-rollout)
  1. trains v1 and v2 (ml.datagen + ml.training, one search iteration) into a temp folder;
  2. opens the embedded local platform on a temporary home with the rollout test's settings
     (2.5 s bakes, two server workers per deployment), seeds the quality gate's evaluation data and
     releases v1 (no load);
  3. 12 client threads offer 40 requests/s (single rows) through the production front door — the
     test's load — and the v2 artifact is registered --rollouts times in a row (v2, v3, …: each a
     full rollout replacing the previous champion);
  4. per rollout: the requests answered between its registration and its end, per second, the
     failures, who served them, the duration and the state; PASS/FAIL against the target, and
     bench/results/rollout_load.json.
Exit code 0 whether or not the target is met (a report); 2 if the measurement itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "rollout_load.json"
TARGET_RPS = 20.0
MODEL = "credit-card-default"
OVERRIDES = {  # tests/test_rollout_local.py's settings
    "poll_seconds": 0.2,
    "instance_count": 2,
    "canary": {"bake_seconds": 2.5, "max_error_rate": 0.02, "max_p90_ms": 2000.0, "min_requests": 4,
               "max_bake_seconds": 10.0},
    "gates": {"latency_requests": 20, "latency_p95_ms": 2000.0, "evaluation_rows": 1000, "min_roc_auc": 0.65},
}


class BenchError(RuntimeError):
    """The measurement could not be made."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=3, help="rollouts under load, one after another (default 3)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s offered (default 40)")
    parser.add_argument("--threads", type=int, default=12, help="client threads (default 12)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    args = parser.parse_args(argv)
    if args.rollouts < 1 or args.rate <= 0 or args.threads < 1:
        parser.error("--rollouts, --rate and --threads must be positive")
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nERROR: the measurement failed: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from functions.adapters.local.loadgen import LoadGenerator
    from functions.bootstrap import build_app
    from functions.settings import Settings
    from ml.datagen import generate

    python = Path(os.environ.get("MODELOPS_SERVING_PYTHON", REPO_ROOT / ".venv-serve" / "bin" / "python"))
    if not python.exists():
        raise BenchError(f"serving environment missing at {python}: run `make env`")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="modelops-bench-rollout-") as tmp:
        work = Path(tmp)
        v1, v2 = train(work, "v1", seed=7), train(work, "v2", seed=21)
        settings = Settings.from_env({"MODELOPS_HOME": str(work / "home"), "MODELOPS_SERVING_PYTHON": str(python)})
        with build_app(settings, overrides=OVERRIDES) as app:
            app.store.put(f"datasets/{MODEL}/evaluation.csv", generate(1000, seed=1234).to_csv(index=False).encode())
            first = register(app, v1)
            if first["state"] != "succeeded":
                raise BenchError(f"v1 was not released: {first}")
            endpoint = app.managed.get(MODEL).production_endpoint

            def target() -> tuple[str, str]:
                state = app.local.production.get_endpoint(endpoint)
                return state.scoring_uri, app.local.production.get_key(endpoint)

            rows = generate(300, seed=77, labelled=False).to_dict(orient="records")
            results = []
            with LoadGenerator(target, rows, rate=args.rate, threads=args.threads, max_seconds=3600) as load:
                while not load.answers:
                    time.sleep(0.05)
                for _ in range(args.rollouts):
                    started = time.time()
                    outcome = register(app, v2)
                    ended = time.time()
                    inside = [a for a in list(load.answers) if started <= a.at < ended]
                    result = {
                        "version": outcome.get("version"), "state": outcome.get("state"),
                        "reason": outcome.get("reason", ""), "seconds": ended - started,
                        "requests": len(inside), "rps": len(inside) / (ended - started),
                        "failed": sum(1 for a in inside if a.status != 200),
                        "by_deployment": dict(Counter(a.deployment for a in inside)),
                        "p99_ms": _percentile([a.latency_ms for a in inside], 99),
                    }
                    results.append(result)
                    print(f"rollout v{result['version']}: {result['state']} in {result['seconds']:.1f} s; "
                          f"{result['requests']} requests = {result['rps']:.1f}/s served, {result['failed']} failed, "
                          f"p99 {result['p99_ms']:.0f} ms; by deployment {result['by_deployment']}", flush=True)
            total = load.summary()
    report = {
        "benchmark": "rollout under live traffic (local platform)",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": {"rps_min": TARGET_RPS, "failed": 0, "state": "succeeded"},
        "rollouts": results,
        "worst_rps": min(r["rps"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "load_total": {k: total[k] for k in ("requests", "failed", "rate")},
        "config": {"rate_offered": args.rate, "threads": args.threads, "overrides": OVERRIDES},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
    }
    report["passed"] = (report["worst_rps"] >= TARGET_RPS and report["failed"] == 0
                        and all(r["state"] == "succeeded" for r in results))
    m = report["machine"]
    print(f"\nmachine: {m['cpus']} CPUs, load average {m['loadavg_before'][0]:.2f} before / "
          f"{m['loadavg_after'][0]:.2f} after; offered {args.rate:.0f} requests/s by {args.threads} clients")
    print(f"{'PASS' if report['passed'] else 'FAIL'}: worst rollout served {report['worst_rps']:.1f} requests/s with "
          f"{report['failed']} failed, states {[r['state'] for r in results]} "
          f"(target: >= {TARGET_RPS:.0f} requests/s, 0 failed, succeeded)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results written to {args.out}")
    return 0


def train(work: Path, name: str, seed: int) -> Path:
    from ml.datagen import generate
    from ml.training import train_from_file

    data = work / f"{name}.csv"
    generate(6_000, seed=seed).to_csv(data, index=False)
    out = work / "artifacts" / name
    t0 = time.perf_counter()
    train_from_file(data, out, search_iterations=1, seed=seed)
    print(f"trained {name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def register(app: Any, folder: Path) -> dict:
    ref, _ = app.local.workspace.register(folder, MODEL)
    outcomes = [o for o in app.wait_all(timeout=600) if o.get("version") == ref.version]
    if not outcomes:
        raise BenchError(f"no rollout ran for version {ref.version}")
    return outcomes[0]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


if __name__ == "__main__":
    sys.exit(main())
