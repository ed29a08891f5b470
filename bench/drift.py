"""Drift computation: ml.drift against a bare numpy/scipy script and Evidently's DataDriftPreset, side by side.

Acceptance targets (reference 30,000 rows, current 1,000,000 rows, 23 features + target):
ml.drift's wall time and peak memory within 1.5x of a bare numpy/scipy computation of the same
statistics (bench/drift_bare.py), and about 10x faster than Evidently's DataDriftPreset.

One command, self-contained:  .venv/bin/python bench/drift.py
  1. generates the reference and a drifted current (ml.datagen) and writes both as Parquet, once,
     into a temporary folder;
  2. runs each implementation in a fresh Python process on those same two files (interpreter start,
     imports, reading, computing and writing a small JSON all count): ours (ml.drift.compute_drift,
     no HTML report) and bare alternate for --repeats rounds, then Evidently runs --evidently-repeats
     times (it is the slow one);
  3. measures each process's wall time (spawn to exit) and peak RSS (os.wait4's ru_maxrss: that
     process alone);
  4. checks that the three agree (scores to 1e-9, drift flags, dataset drift), prints every run,
     the medians and the ratios, and writes bench/results/drift.json.
Exit code 0 whether or not the targets are met (this is a report); 1 when the implementations
disagree or a run fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO_ROOT))

BARE_SCRIPT = Path(__file__).resolve().with_name("drift_bare.py")
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "drift.json"
TARGET_WALL_RATIO = 1.5
TARGET_MEMORY_RATIO = 1.5
TARGET_EVIDENTLY_SPEEDUP = 10.0
TOLERANCE = 1e-9
# A realistic partial drift: some columns drift, most do not, so the flags are a real comparison.
DRIFT = {"credit_limit_factor": 1.1, "age_shift": 2.0, "repayment_delay_shift": 0.3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-rows", type=int, default=30_000)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of ours + bare (default 3)")
    parser.add_argument("--evidently-repeats", type=int, default=1, help="Evidently runs (default 1; 0 skips it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data files, outputs)")
    parser.add_argument("--child", choices=("ours", "evidently", "data"), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, *args.paths)
    if args.reference_rows <= 1000 or args.current_rows < 1 or args.repeats < 1 or args.evidently_repeats < 0:
        parser.error("need --reference-rows > 1000 (the bare script has no small-sample tests), --repeats >= 1")
    if args.keep:
        folder = Path(tempfile.mkdtemp(prefix="drift-bench-"))
        print(f"keeping {folder}")
        return run(args, folder)
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        return run(args, Path(tmp))


# ------------------------------------------------------------------------------------ the parent


def run(args: argparse.Namespace, folder: Path) -> int:
    reference, current = write_data(folder, args.reference_rows, args.current_rows, args.seed)
    plan = [name for _ in range(args.repeats) for name in ("ours", "bare")] + ["evidently"] * args.evidently_repeats
    runs: list[dict[str, Any]] = []
    print(f"\n{'run':>3}  {'impl':<10}{'wall s':>9}{'cpu s':>8}{'peak RSS MB':>13}{'VmHWM MB':>10}"
          f"{'load s':>9}{'stats s':>9}{'loadavg':>9}")
    for i, name in enumerate(plan, 1):
        result = measure(name, reference, current, folder / f"{i:02d}-{name}")
        runs.append(result)
        seconds = result["seconds"]
        print(f"{i:>3}  {name:<10}{result['wall_s']:>9.2f}{result['cpu_s']:>8.2f}{result['peak_rss_mb']:>13.0f}"
              f"{result['polled_vm_hwm_mb']:>10.0f}{seconds['load']:>9.2f}{seconds['scores']:>9.2f}"
              f"{result['loadavg_1m_before']:>9.2f}")
    report = build_report(args, runs, folder)
    print_summary(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nresults written to {args.out}")
    return 0 if report["agreement"]["agree"] else 1


def write_data(folder: Path, reference_rows: int, current_rows: int, seed: int) -> tuple[Path, Path]:
    """Generated in a child process: this parent stays small, because a child's ru_maxrss starts
    from the RSS of the process it was spawned from (Linux keeps the pre-exec high-water mark)."""
    started = time.perf_counter()
    reference = folder / "reference.parquet"
    current = folder / "current.parquet"
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "data", str(reference), str(current),
         str(reference_rows), str(current_rows), str(seed)],
        check=True, cwd=REPO_ROOT,
    )
    print(f"data: reference {reference_rows:,} rows ({reference.stat().st_size / 1e6:.1f} MB), "
          f"current {current_rows:,} rows ({current.stat().st_size / 1e6:.1f} MB), drift {DRIFT}, "
          f"written in {time.perf_counter() - started:.1f} s")
    return reference, current


def command(name: str, reference: Path, current: Path, out: Path) -> list[str]:
    if name == "bare":
        return [sys.executable, str(BARE_SCRIPT), str(reference), str(current), str(out / "scores.json")]
    return [sys.executable, str(Path(__file__).resolve()), "--child", name, str(reference), str(current), str(out)]


def measure(name: str, reference: Path, current: Path, out: Path) -> dict[str, Any]:
    """One fresh process: wall time from spawn to exit; peak RSS two ways: os.wait4's ru_maxrss
    (exact, but never below this parent's RSS at spawn) and /proc VmHWM polled every 10 ms (the
    exec'd program's own high-water mark, up to the last poll)."""
    out.mkdir(parents=True)
    env = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONHASHSEED": "0"}
    load_before = os.getloadavg()[0]  # the machine may be shared: record how busy it was
    hwm_kb = 0
    with (out / "stdout.txt").open("wb") as stdout, (out / "stderr.txt").open("wb") as stderr:
        started = time.perf_counter()
        argv = command(name, reference, current, out)
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=REPO_ROOT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
            time.sleep(0.01)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (out / "stderr.txt").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{name} failed with exit code {proc.returncode}:\n{tail}")
    scores = json.loads((out / "scores.json").read_text())
    return {
        "impl": name,
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: kilobytes
        "polled_vm_hwm_mb": hwm_kb / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": os.getloadavg()[0],
        "seconds": scores.pop("seconds", {}),
        "scores": scores,
    }


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def build_report(args: argparse.Namespace, runs: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    names = [n for n in ("ours", "bare", "evidently") if any(r["impl"] == n for r in runs)]
    summary = {}
    for name in names:
        mine = [r for r in runs if r["impl"] == name]
        summary[name] = {
            "runs": len(mine),
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "wall_s_min": min(r["wall_s"] for r in mine),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in mine),
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in mine),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in mine),
            "polled_vm_hwm_mb_median": statistics.median(r["polled_vm_hwm_mb"] for r in mine),
        }
    ratios = {
        "ours_over_bare_wall": summary["ours"]["wall_s_median"] / summary["bare"]["wall_s_median"],
        "ours_over_bare_cpu": summary["ours"]["cpu_s_median"] / summary["bare"]["cpu_s_median"],
        "ours_over_bare_peak_rss": summary["ours"]["peak_rss_mb_median"] / summary["bare"]["peak_rss_mb_median"],
    }
    if "evidently" in summary:
        ratios["evidently_over_ours_wall"] = summary["evidently"]["wall_s_median"] / summary["ours"]["wall_s_median"]
        ratios["evidently_over_ours_cpu"] = summary["evidently"]["cpu_s_median"] / summary["ours"]["cpu_s_median"]
        ratios["evidently_over_ours_peak_rss"] = (
            summary["evidently"]["peak_rss_mb_median"] / summary["ours"]["peak_rss_mb_median"]
        )
    versions = {}
    for module in ("numpy", "scipy", "pandas", "pyarrow", "evidently"):
        try:
            versions[module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            versions[module] = None
    first = {name: next(r for r in runs if r["impl"] == name)["scores"] for name in names}
    return {
        "benchmark": "drift",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "reference_rows": args.reference_rows,
            "current_rows": args.current_rows,
            "columns": len(first["ours"]["features"]),
            "drift": DRIFT,
            "seed": args.seed,
            "format": "parquet (pandas.to_parquet, pyarrow)",
        },
        "targets": {
            "ours_over_bare_wall_max": TARGET_WALL_RATIO,
            "ours_over_bare_peak_rss_max": TARGET_MEMORY_RATIO,
            "evidently_over_ours_wall_about": TARGET_EVIDENTLY_SPEEDUP,
        },
        "passed": {
            "wall": ratios["ours_over_bare_wall"] <= TARGET_WALL_RATIO,
            "memory": ratios["ours_over_bare_peak_rss"] <= TARGET_MEMORY_RATIO,
        },
        "summary": summary,
        "ratios": ratios,
        "agreement": agreement(first),
        "runs": runs,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "libraries": versions,
        },
        "method": "each run is a fresh process on the same Parquet files; wall = spawn to exit; "
        "peak RSS = os.wait4 ru_maxrss of that process (floor: the parent's RSS at spawn, see "
        "parent_peak_rss_mb); polled_vm_hwm_mb = /proc VmHWM sampled every 10 ms; "
        "ours = ml.drift.compute_drift without report",
        "parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def agreement(scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every implementation against ours: same columns, scores within 1e-9, same flags and verdict."""
    ours = {f["feature_name"]: f for f in scores["ours"]["features"]}
    out: dict[str, Any] = {"tolerance": TOLERANCE, "agree": True}
    for name, other in scores.items():
        if name == "ours":
            continue
        theirs = {f["feature_name"]: f for f in other["features"]}
        same_columns = set(theirs) == set(ours)
        common = sorted(set(theirs) & set(ours))
        worst = max((abs(ours[c]["drift_score"] - theirs[c]["drift_score"]) for c in common), default=float("nan"))
        flags = [c for c in common if ours[c]["drift_detected"] != theirs[c]["drift_detected"]]
        names = [c for c in common if ours[c]["stattest_name"] != theirs[c]["stattest_name"]]
        verdict = other["dataset_drift"] == scores["ours"]["dataset_drift"]
        agree = same_columns and worst <= TOLERANCE and not flags and not names and verdict
        out[name] = {
            "same_columns": same_columns,
            "max_abs_score_diff": worst,
            "flag_mismatches": flags,
            "stattest_mismatches": names,
            "dataset_drift_equal": verdict,
            "agree": agree,
        }
        out["agree"] = out["agree"] and agree
    out["n_drifted_ours"] = sum(f["drift_detected"] for f in ours.values())
    out["dataset_drift_ours"] = scores["ours"]["dataset_drift"]
    return out


def print_summary(report: dict[str, Any]) -> None:
    data, summary, ratios = report["data"], report["summary"], report["ratios"]
    print(f"\ndrift: reference {data['reference_rows']:,} rows vs current {data['current_rows']:,} rows, "
          f"{data['columns']} columns, medians over runs")
    print(f"{'impl':<10}{'runs':>5}{'wall s':>9}{'min s':>8}{'cpu s':>8}{'peak RSS MB':>13}{'VmHWM MB':>10}")
    for name, s in summary.items():
        print(f"{name:<10}{s['runs']:>5}{s['wall_s_median']:>9.2f}{s['wall_s_min']:>8.2f}{s['cpu_s_median']:>8.2f}"
              f"{s['peak_rss_mb_median']:>13.0f}{s['polled_vm_hwm_mb_median']:>10.0f}")
    passed = report["passed"]
    print(f"ours/bare wall      {ratios['ours_over_bare_wall']:.2f}  (target <= {TARGET_WALL_RATIO})  "
          f"{'PASS' if passed['wall'] else 'FAIL'}")
    print(f"ours/bare cpu       {ratios['ours_over_bare_cpu']:.2f}  (user+sys: less sensitive to a busy machine)")
    print(f"ours/bare peak RSS  {ratios['ours_over_bare_peak_rss']:.2f}  (target <= {TARGET_MEMORY_RATIO})  "
          f"{'PASS' if passed['memory'] else 'FAIL'}")
    if "evidently_over_ours_wall" in ratios:
        print(f"evidently/ours wall {ratios['evidently_over_ours_wall']:.1f}x  "
              f"(target about {TARGET_EVIDENTLY_SPEEDUP:.0f}x); cpu {ratios['evidently_over_ours_cpu']:.1f}x; "
              f"peak RSS {ratios['evidently_over_ours_peak_rss']:.1f}x")
    agree = report["agreement"]
    for name in ("bare", "evidently"):
        if name in agree:
            a = agree[name]
            print(f"agreement ours vs {name}: max |score diff| {a['max_abs_score_diff']:.1e}, "
                  f"flag mismatches {len(a['flag_mismatches'])}, stattest mismatches {len(a['stattest_mismatches'])}, "
                  f"dataset_drift equal {a['dataset_drift_equal']}")
    print(f"drifted columns (ours): {agree['n_drifted_ours']} of {data['columns']}, "
          f"dataset_drift {agree['dataset_drift_ours']}; all agree: {agree['agree']}")


# ------------------------------------------------------------------------------------ the children


def run_child(name: str, reference: str, current: str, out: str, *extra: str) -> int:
    """Compute the drift in this (fresh) process and write scores.json in one shape for all three."""
    if name == "data":
        from ml.datagen import Drift, generate

        reference_rows, current_rows, seed = int(out), int(extra[0]), int(extra[1])
        generate(reference_rows, seed=seed).to_parquet(reference, index=False)
        generate(current_rows, seed=seed + 1, drift=Drift(**DRIFT)).to_parquet(current, index=False)
        return 0
    if name == "ours":
        from ml.drift import compute_drift

        compute_drift(reference, current, out)
        result = json.loads((Path(out) / "result.json").read_text())
        _overall, features = result["records"]
        payload = {
            "features": features["data"],
            "dataset_drift": result["dataset_drift"],
            "seconds": result["seconds"],
        }
    else:
        payload = evidently_scores(reference, current)
    (Path(out) / "scores.json").write_text(json.dumps(payload))
    return 0


def evidently_scores(reference_path: str, current_path: str) -> dict[str, Any]:
    import re

    import pandas as pd

    started = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    loaded = time.perf_counter()
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)  # current first
    done = time.perf_counter()
    types = snapshot.context.data_definition
    features: dict[str, dict[str, Any]] = {}
    dataset_drift = None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            features[config["column"]] = {"feature_name": config["column"], "drift_score": float(metric["value"])}
    for test in snapshot.dict()["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            feature = features[params["column"]]
            feature["drift_detected"] = test["status"] == "FAIL"
            feature["feature_type"] = types.get_column_type(params["column"]).value
            feature["stattest_name"] = re.search(r"method is (.*)\. The drift threshold", test["description"]).group(1)
        elif params["type"].endswith(":DriftedColumnsCount"):
            dataset_drift = test["status"] == "FAIL"  # the test is share < drift_share
    return {
        "features": list(features.values()),
        "dataset_drift": dataset_drift,
        "seconds": {"load": loaded - started, "scores": done - loaded},
    }


if __name__ == "__main__":
    raise SystemExit(main())
