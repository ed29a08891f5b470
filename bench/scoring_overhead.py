"""Scoring overhead: the real ml/score.py against a bare predict_proba script, side by side.

Acceptance target: on azureml-inference-server-http with one worker, single-row requests on
loopback, the p99 latency of score.py (validation + logging + predict) is within 1.25x of
bench/bare_score.py (predict_proba only), both measured in one run, 2,000 requests each.

One command, self-contained:  .venv/bin/python bench/scoring_overhead.py   (or `make bench-scoring`)
  1. generates labelled data (ml.datagen) and trains the product's model (ml.training, default search)
     into a temporary folder laid out like an AzureML mount (<name>/<version>/);
  2. starts two real azmlinfsrv processes from .venv-serve on that artifact, one per script;
  3. warms both up, then sends the same sequence of single-row requests to each, interleaved
     request by request (the order inside each pair alternates) so machine noise hits both alike;
  4. prints the table and a PASS/FAIL line, and writes bench/results/scoring_overhead.json.
Latency is client-side (perf_counter around the HTTP call, body included). Exit code is 0 whether
or not the target is met (this is a report); non-zero only if the measurement itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO_ROOT))

BARE_SCRIPT = Path(__file__).resolve().with_name("bare_score.py")
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "scoring_overhead.json"
TARGET_P99_RATIO = 1.25
MODEL_NAME = "credit-card-default"
NAMES = ("real", "bare")


class BenchError(RuntimeError):
    """The measurement could not be made (bad response, server down)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per script (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests per script first (default 100)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of generated training data (default 10000)")
    parser.add_argument("--block", type=int, default=1,
                        help="requests per script before switching to the other (default 1: strict alternation)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (artifact, console logs)")
    parser.add_argument("--real-script", type=Path, default=None,
                        help="score the 'real' side with this script instead of ml/score.py (A/B of a change)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or args.rows < 100 or args.block < 1:
        parser.error("need --requests >= 1, --warmup >= 0, --rows >= 100, --block >= 1")
    from functions.adapters.local.inference_server import ServingError

    try:
        return run(args)
    except (BenchError, ServingError) as exc:
        hint = "" if args.keep else " (rerun with --keep to inspect the servers' console logs)"
        print(f"\nERROR: the measurement failed{hint}: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from functions.adapters.local.inference_server import InferenceServer
    from functions.settings import SCORE_SCRIPT, Settings

    settings = Settings.from_env()
    args.real_script = real_script = (args.real_script or SCORE_SCRIPT).resolve()
    with ExitStack() as stack:
        if args.keep:
            work = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelops-bench-")))
        print(f"workdir: {work}{' (kept)' if args.keep else ''}")

        artifact, train_info = prepare_artifact(work, args.rows, args.seed)
        bodies = request_bodies(args.warmup + args.requests, seed=args.seed + 1)

        servers = {}
        for name, script in (("real", real_script), ("bare", BARE_SCRIPT)):
            t0 = time.perf_counter()
            server = InferenceServer(model_dir=artifact, serving_python=settings.serving_python,
                                     console_log=work / "logs" / f"{name}.log", entry_script=script)
            stack.enter_context(server)  # stopped on exit, failure or Ctrl-C
            servers[name] = server
            print(f"started {name:4s} {_show(script)} on {server.scoring_uri} "
                  f"(pid {server.pid}, {time.perf_counter() - t0:.1f}s)")

        results = measure(servers, bodies, args.warmup, args.requests, args.block)
        report = build_report(args, results, train_info)
        print_report(report)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nresults written to {args.out}")
    return 0


def prepare_artifact(work: Path, rows: int, seed: int) -> tuple[Path, dict[str, Any]]:
    from ml.datagen import generate
    from ml.training import train_from_file

    data = work / "train.csv"
    t0 = time.perf_counter()
    generate(rows, seed=seed).to_csv(data, index=False)
    artifact = work / "models" / MODEL_NAME / "1"  # AzureML mounts <name>/<version>
    print(f"training on {rows} generated rows (default search) ...", flush=True)
    info = train_from_file(data, artifact)
    elapsed = time.perf_counter() - t0
    print(f"trained in {elapsed:.1f}s: roc_auc {info['roc_auc']:.3f}, hyperparameters {info['hyperparameters']}")
    return artifact, {"rows": rows, "seed": seed, "seconds": round(elapsed, 1), "roc_auc": info["roc_auc"],
                      "hyperparameters": info["hyperparameters"]}


def request_bodies(n: int, seed: int) -> list[bytes]:
    """n single-row request bodies from fresh generated rows (unseen by training), serialised once."""
    from ml.datagen import generate

    records = generate(n, seed=seed, labelled=False).to_dict(orient="records")
    return [json.dumps({"data": [row]}).encode() for row in records]


def measure(servers: dict[str, Any], bodies: list[bytes], warmup: int, n: int, block: int) -> dict[str, Any]:
    import psutil
    import requests

    sessions = {name: requests.Session() for name in NAMES}
    headers = {"Content-Type": "application/json"}
    latency: dict[str, list[float]] = {name: [] for name in NAMES}
    run_ms: dict[str, list[float]] = {name: [] for name in NAMES}  # server's own timing of run()
    new_connections = {name: 0 for name in NAMES}

    def call(name: str, i: int, timed: bool) -> None:
        body = bodies[i]
        t0 = time.perf_counter()
        try:
            response = sessions[name].post(servers[name].scoring_uri, data=body, headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise BenchError(f"{name}: request {i} failed: {exc}") from None
        elapsed = (time.perf_counter() - t0) * 1000
        check(name, i, response)
        if timed:
            latency[name].append(elapsed)
            run_ms[name].append(float(response.headers.get("x-ms-run-fn-exec-ms", "nan")))
            if response.headers.get("Connection", "").lower() == "close":
                new_connections[name] += 1

    for i in range(warmup):
        for name in NAMES if i % 2 == 0 else NAMES[::-1]:
            call(name, i, timed=False)

    # Interleave in blocks of `block` requests; alternate which script goes first in each round,
    # so neither always follows the other. Both see the same bodies in the same order.
    psutil.cpu_percent(None)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    start = warmup
    round_no = 0
    while start < warmup + n:
        stop = min(start + block, warmup + n)
        for name in NAMES if round_no % 2 == 0 else NAMES[::-1]:
            for i in range(start, stop):
                call(name, i, timed=True)
        start, round_no = stop, round_no + 1
    wall = time.perf_counter() - t0
    cpu_percent = psutil.cpu_percent(None)
    load_after = os.getloadavg()
    for session in sessions.values():
        session.close()
    return {"latency_ms": latency, "run_fn_ms": run_ms, "closed_connections": new_connections,
            "wall_seconds": wall, "cpu_percent": cpu_percent, "loadavg_before": load_before,
            "loadavg_after": load_after}


def check(name: str, i: int, response: Any) -> None:
    text = response.text[:300]
    if response.status_code != 200:
        raise BenchError(f"{name}: request {i} answered {response.status_code}: {text}")
    try:
        predictions = response.json()["predictions"]
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"{name}: request {i} answered 200 without a predictions list: {text}") from None
    if (not isinstance(predictions, list) or len(predictions) != 1 or not isinstance(predictions[0], float)
            or not 0.0 <= predictions[0] <= 1.0):
        raise BenchError(f"{name}: request {i}: expected one probability, got {text}")


def stats(values: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])  # linear interpolation
    return {"n": int(a.size), "mean": float(a.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "max": float(a.max())}


def build_report(args: argparse.Namespace, results: dict[str, Any], train_info: dict[str, Any]) -> dict[str, Any]:
    import psutil

    client = {name: stats(results["latency_ms"][name]) for name in NAMES}
    server = {name: stats(results["run_fn_ms"][name]) for name in NAMES}
    ratios = {k: client["real"][k] / client["bare"][k] for k in ("mean", "p50", "p95", "p99")}
    return {
        "benchmark": "scoring_overhead",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": {"metric": "p99 client latency ratio real/bare", "max_ratio": TARGET_P99_RATIO},
        "passed": ratios["p99"] <= TARGET_P99_RATIO,
        "ratios": ratios,
        "client_latency_ms": client,
        "server_run_fn_ms": server,  # azmlinfsrv's x-ms-run-fn-exec-ms: time inside run() only
        "config": {"requests": args.requests, "warmup": args.warmup, "block": args.block, "rows_per_request": 1,
                   "workers": 1, "scripts": {"real": _show(args.real_script),
                                             "bare": _show(BARE_SCRIPT)},
                   "training": train_info},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "loadavg_before": results["loadavg_before"],
            "loadavg_after": results["loadavg_after"],
            "cpu_percent_during": results["cpu_percent"],
        },
        "wall_seconds": results["wall_seconds"],
        "connections_closed_by_server": results["closed_connections"],
        "raw_ms": {"client": results["latency_ms"], "run_fn": results["run_fn_ms"]},
    }


def _show(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def print_report(report: dict[str, Any]) -> None:
    cols = ("n", "mean", "p50", "p95", "p99", "max")

    def table(title: str, data: dict[str, dict[str, float]]) -> None:
        print(f"\n{title}")
        print(f"{'script':<30}" + "".join(f"{c:>9}" for c in cols))
        labels = {name: f"{name}  {report['config']['scripts'][name]}" for name in NAMES}
        for name in NAMES:
            row = data[name]
            print(f"{labels[name]:<30}" + f"{row['n']:>9d}" + "".join(f"{row[c]:>9.3f}" for c in cols[1:]))

    machine = report["machine"]
    print(f"\nmachine: {machine['cpus']} CPUs, load average {machine['loadavg_before'][0]:.2f} before / "
          f"{machine['loadavg_after'][0]:.2f} after, CPU {machine['cpu_percent_during']:.0f}% during the "
          f"{report['wall_seconds']:.1f}s timed run")
    closed = report["connections_closed_by_server"]
    if any(closed.values()):
        print(f"note: the server closed the connection after {closed['real']}/{closed['bare']} responses "
              "(gunicorn sync worker: no keep-alive), so each request paid a new loopback TCP connect")
    table("client latency, ms (single-row POST /score on 127.0.0.1, one worker, interleaved)",
          report["client_latency_ms"])
    table("server time inside run(), ms (x-ms-run-fn-exec-ms)", report["server_run_fn_ms"])
    r = report["ratios"]
    print(f"\nratio real/bare: mean {r['mean']:.3f}  p50 {r['p50']:.3f}  p95 {r['p95']:.3f}  p99 {r['p99']:.3f}")
    verdict = "PASS" if report["passed"] else "FAIL"
    print(f"{verdict}: p99 ratio {r['p99']:.3f} {'<=' if report['passed'] else '>'} {TARGET_P99_RATIO} "
          f"(target: p99 ratio <= {TARGET_P99_RATIO})")


if __name__ == "__main__":
    sys.exit(main())
