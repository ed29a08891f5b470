"""Inference-log export throughput: 1,000,000 records from a local Log Analytics query service,
through the real azure-monitor-query client, into Parquet.

Acceptance target: >= 100,000 rows/s and peak RSS <= 600 MB for the exporting process.

One command:  .venv/bin/python bench/export.py   [--store azurite] [--rows N] [--runs K]
  1. starts the fake Log Analytics query service (tests/fake_log_analytics.py, a real HTTP server
     on 127.0.0.1) in this process with the export's evaluator (tests/fake_inference_logs.py) and
     loads AmlOnlineEndpointConsoleLog rows: score.py InputData lines, 1–8 records per request
     (uniform), spread evenly over `--hours` hours, two deployments of two versions; every answer
     row is evaluated and JSON-encoded before timing starts, so the server only streams bytes;
  2. runs the export in a child process (so the server's memory is not counted): core.export
     .export_model over LogAnalyticsInferenceLogs (LogsQueryClient.send_request) into a
     DirectoryStore on a temporary folder (default) or Azurite (`--store azurite`, BlobStore on
     azure-storage-blob, in-memory, loopback);
  3. the child imports its libraries first (pyarrow also imports pandas on first use, paid once
     per process by a Functions host too; recorded as imports_seconds in the results), then times
     export_model end to end (summary queries, fetches, Arrow parsing, sorting, Parquet writing,
     store writes, watermark) and samples its own RSS with psutil every 10 ms; the peak reported
     is the larger of that and the kernel's VmHWM for the process;
  4. the parent checks the exported row count against what it loaded, prints a table and a
     PASS/FAIL line, and writes bench/results/export.json (all runs).
Exit code 0 whether or not the target is met (a report); non-zero if the measurement failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "export.json"
TARGET_ROWS_PER_S = 100_000
TARGET_PEAK_RSS_MB = 600
MODEL = "credit-card-default"
WORKSPACE = "6f1c1c6e-0000-4000-8000-00000000beef"
T0 = datetime(2026, 5, 9, 0, 0, tzinfo=timezone.utc)


class BenchError(RuntimeError):
    pass


# --- data ---------------------------------------------------------------------------------------

def console_rows(records: int, hours: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """AmlOnlineEndpointConsoleLog rows holding `records` InputData records in total."""
    from ml.schema import FEATURES
    from tests.fake_inference_logs import input_line

    rng = random.Random(seed)
    span = hours * 3600.0
    rows: list[dict[str, Any]] = []
    made = 0
    categorical = [(f.name, f.domain) for f in FEATURES if f.kind == "categorical"]
    request = 0
    while made < records:
        n = min(rng.randint(1, 8), records - made)
        batch = []
        for _ in range(n):
            record: dict[str, Any] = {name: rng.choice(domain) for name, domain in categorical}
            record["credit_limit"] = float(rng.randrange(10_000, 800_000, 10_000))
            record["age"] = rng.randint(21, 79)
            for i in range(1, 7):
                record[f"bill_amount_{i}"] = round(rng.uniform(-5_000, 300_000), 2)
            for i in range(1, 7):
                record[f"payment_amount_{i}"] = float(rng.randrange(0, 50_000))
            batch.append(record)
        at = T0 + timedelta(seconds=span * made / records)
        version, deployment = ("3", "blue") if request % 10 else ("4", "green")  # a 10 % canary
        rows.append({"TimeGenerated": at, "DeploymentName": deployment, "ContainerName": "inference-server",
                     "Message": input_line(MODEL, version, f"{request:08x}-bench", batch)})
        made += n
        request += 1
    return rows, made


# --- the exporting child ------------------------------------------------------------------------

def _vm_hwm_mb() -> float | None:
    """The kernel's peak RSS of this process (VmHWM). Unlike getrusage's ru_maxrss it is not
    inherited from the parent across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child(args: argparse.Namespace) -> int:
    warm = time.perf_counter()
    import psutil
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 - imported before timing, as in a warm Functions host
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from azure.core.credentials import AccessToken

    pa.scalar(None, pa.string())  # pyarrow imports pandas on first use of scalars/arrays: do it now
    warm = time.perf_counter() - warm

    from functions.adapters.azure.inference_logs import LogAnalyticsInferenceLogs, inference_logs_client
    from functions.services.export import export_model

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("bench-token", int(time.time()) + 3600)

    if args.store == "azurite":
        from functions.adapters.azure.blob_store import blob_store_from_settings

        store: Any = blob_store_from_settings(connection_string=args.connection_string, container="bench-export")
    else:
        from functions.adapters.local.store import DirectoryStore

        store = DirectoryStore(args.store_dir)
    from functions.services.contracts import store_contract
    from tests.model_contracts import credit_contract

    store_contract(store, MODEL, "3", credit_contract(), current=True)  # the export types its table by it
    client = inference_logs_client(endpoint=args.url, credential=Credential())
    source = LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False)

    process = psutil.Process()
    peak = {"rss": process.memory_info().rss}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], process.memory_info().rss)
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    rss_before = process.memory_info().rss
    sampler.start()
    started = time.perf_counter()
    cpu_started = time.process_time()
    report = export_model(MODEL, source, store, now=datetime.fromisoformat(args.now),
                          since=datetime.fromisoformat(args.since), lag=timedelta(minutes=10))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    stop.set()
    sampler.join()
    peak["rss"] = max(peak["rss"], process.memory_info().rss)
    out = {
        "rows": report.rows, "malformed": report.malformed, "files": len(report.files), "slices": len(report.slices),
        "seconds": elapsed, "cpu_seconds": cpu, "rows_per_s": report.rows / elapsed if elapsed else 0.0,
        "peak_rss_mb": peak["rss"] / 2**20, "rss_before_mb": rss_before / 2**20, "vm_hwm_mb": _vm_hwm_mb(),
        "imports_seconds": warm,
        "queries": source.queries, "splits": source.splits, "error": report.error,
    }
    print(json.dumps(out))
    return 0


# --- the parent ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="records to load and export (default 1000000)")
    parser.add_argument("--hours", type=int, default=5, help="hours the records span (default 5)")
    parser.add_argument("--runs", type=int, default=1, help="timed export runs, each into a fresh store (default 1)")
    parser.add_argument("--store", choices=("directory", "azurite"), default="directory",
                        help="where the Parquet goes: a DirectoryStore (default) or Azurite through BlobStore")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--store-dir", help=argparse.SUPPRESS)
    parser.add_argument("--connection-string", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.rows < 1 or args.hours < 1 or args.runs < 1:
        parser.error("--rows, --hours and --runs must be positive")

    import psutil

    from functions.adapters.azure.inference_logs import fetch_query
    from functions.shared.export_table import ExportLayout
    from tests.fake_inference_logs import InferenceLogEvaluator
    from tests.model_contracts import credit_contract
    from tests.fake_log_analytics import CONSOLE_TABLE, FakeLogAnalytics

    now = T0 + timedelta(hours=args.hours, minutes=30)  # every hour is whole and past the 10 min lag
    print(f"loading {args.rows:,} records over {args.hours} h into the fake Log Analytics ...", flush=True)
    t = time.perf_counter()
    rows, made = console_rows(args.rows, args.hours, args.seed)
    fake = FakeLogAnalytics(workspace_ids={WORKSPACE})
    fake.add_rows(CONSOLE_TABLE, rows)
    messages = len(rows)
    del rows
    evaluator = InferenceLogEvaluator(fake)
    fake.evaluator = evaluator
    evaluator.precompute(fetch_query(MODEL, T0, now, ExportLayout.for_contract(credit_contract())))  # encode every answer row now, not while timed
    gc.freeze()  # millions of long-lived objects: keep the cyclic GC from walking them while serving
    print(f"  {messages:,} console lines, answers pre-encoded in {time.perf_counter() - t:.1f} s", flush=True)

    azurite = None
    runs: list[dict[str, Any]] = []
    try:
        fake.start()
        connection_string = None
        if args.store == "azurite":
            from tests.azurite import _stop, connection_string as azurite_connection, start_azurite

            azurite_dir = Path(tempfile.mkdtemp(prefix="bench-azurite-"))
            proc, port, _ = start_azurite(azurite_dir)
            azurite = (proc, _stop)
            connection_string = azurite_connection(port)
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-export-") as store_dir:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--url", fake.url,
                       "--store", args.store, "--store-dir", store_dir, "--now", now.isoformat(),
                       "--since", T0.isoformat()]
                if connection_string:
                    cmd += ["--connection-string", connection_string]
                server_cpu = psutil.Process().cpu_times()
                load_before = os.getloadavg()[0]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO_ROOT))
                server_cpu_after = psutil.Process().cpu_times()
                if done.returncode != 0:
                    raise BenchError(f"export child failed ({done.returncode}):\n{done.stderr[-4000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["server_cpu_seconds"] = (server_cpu_after.user + server_cpu_after.system
                                                - server_cpu.user - server_cpu.system)
                result["load_average_before"] = load_before
                if result["rows"] != made:
                    raise BenchError(f"exported {result['rows']} rows, loaded {made}")
                if args.store == "directory":
                    result["parquet_mb"] = sum(p.stat().st_size for p in Path(store_dir).rglob("*.parquet")) / 2**20
                    result["rows_in_files"] = _rows_in_files(Path(store_dir))
                    if result["rows_in_files"] != made:
                        raise BenchError(f"Parquet files hold {result['rows_in_files']} rows, loaded {made}")
                if fake.errors:
                    raise BenchError(f"fake Log Analytics errors: {fake.errors[:3]}")
                runs.append(result)
                print(f"  run {run + 1}: {result['rows']:,} rows in {result['seconds']:.2f} s = "
                      f"{result['rows_per_s']:,.0f} rows/s, peak RSS {result['peak_rss_mb']:.0f} MB "
                      f"(VmHWM {result['vm_hwm_mb']:.0f} MB), {result['queries']} queries, exporter CPU "
                      f"{result['cpu_seconds']:.1f} s, server CPU {result['server_cpu_seconds']:.1f} s, "
                      f"load {load_before:.1f}", flush=True)
                if args.store == "azurite" and run + 1 < args.runs:
                    _clear_container(connection_string)
    finally:
        fake.stop()
        if azurite is not None:
            azurite[1](azurite[0])

    best = max(runs, key=lambda r: r["rows_per_s"])
    worst_rss = max(max(r["peak_rss_mb"], r["vm_hwm_mb"] or 0) for r in runs)
    passed = best["rows_per_s"] >= TARGET_ROWS_PER_S and worst_rss <= TARGET_PEAK_RSS_MB
    summary = {
        "benchmark": "inference-log export: fake Log Analytics (azure-monitor-query send_request) -> Parquet",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_end": list(os.getloadavg())},
        "store": "DirectoryStore (temporary folder)" if args.store == "directory" else
                 "Azurite (in-memory, loopback) via BlobStore / azure-storage-blob",
        "records": made, "console_lines": messages, "hours": args.hours,
        "targets": {"rows_per_s": TARGET_ROWS_PER_S, "peak_rss_mb": TARGET_PEAK_RSS_MB},
        "runs": runs,
        "best_rows_per_s": best["rows_per_s"], "max_peak_rss_mb": worst_rss,
        "pass": passed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if args.out.exists():
        try:
            previous = json.loads(args.out.read_text())
        except ValueError:
            previous = {}
    by_store = previous.get("by_store", {}) if isinstance(previous.get("by_store"), dict) else {}
    by_store[args.store] = summary  # the latest run of each store; every run is also in the history
    history = list(previous.get("history", [])) + [
        {k: summary[k] for k in ("when", "store", "records", "best_rows_per_s", "max_peak_rss_mb", "pass")}
        | {"rows_per_s": [round(r["rows_per_s"]) for r in runs], "load": [r["load_average_before"] for r in runs]}]
    args.out.write_text(json.dumps({"benchmark": summary["benchmark"], "targets": summary["targets"],
                                    "by_store": by_store, "history": history[-30:]}, indent=2) + "\n")
    print(f"\n{'rows/s (best)':>24}: {best['rows_per_s']:,.0f}   target >= {TARGET_ROWS_PER_S:,}")
    print(f"{'peak RSS (max)':>24}: {worst_rss:,.0f} MB   target <= {TARGET_PEAK_RSS_MB} MB")
    print(f"{'store':>24}: {summary['store']}")
    print(("PASS" if passed else "FAIL") + f"  (results in {args.out})")
    return 0


def _rows_in_files(root: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in root.rglob("*.parquet"))


def _clear_container(connection_string: str | None) -> None:
    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(connection_string, "bench-export")
    for name in list(client.list_blob_names()):
        client.delete_blob(name)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
