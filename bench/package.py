"""The Function App's installed size and cold start, before and after the lean requirements.txt.

    .venv/bin/python bench/package.py [--before 06843ea] [--runs 5] [--cache build/package-cache]

Before: requirements.txt (and the files it includes with -r) of the `--before` commit, installed
into a clean venv; its code from that commit (git archive). After: requirements.lock (what `make
package` ships) into a clean venv — the same one tests/test_package.py builds — and the working
tree's code. Both venvs are made `--without-pip` and filled by this venv's pip (`pip --python`), so
the sizes are the packages only: `du -sm` of site-packages. Both are cached under --cache, keyed by
what they install.

Cold start: for each trigger, a fresh process in each venv — `import function_app`, then the first
call of that trigger's user function with a fake input, as the Functions host makes it — timed
from outside (interpreter start to exit), the median of --runs. The App behind the triggers is the
real one (services, domain, ml/drift, the Durable client adapter) over in-memory ports
(tests/fakes.py: no Azure is reached, so the Azure SDK clients are not built; their import is the
same before and after and is shown as its own row). drift_check runs a real window: a production
version, its contract, 20,000 exported rows and a 20,000-row reference (the in-function path —
before: pandas and Evidently's HTML report; after: pyarrow → numpy/scipy, no report).
No target is asserted: the figures are for the README.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import io
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import package  # noqa: E402  (tools/package.py)

TRIGGERS = ("health", "model_registered", "alert_webhook", "rollouts", "drift_check")

# Runs inside the measured venv, from the measured tree (argv: trigger, work folder).
HARNESS = r'''
import asyncio, json, sys, time
from pathlib import Path
trigger, work = sys.argv[1], Path(sys.argv[2])
started = time.perf_counter()
import azure.functions as func
import function_app
imported = time.perf_counter()
from functions import bootstrap
from functions.domain.config import load_managed_models
from functions.services.activities import RolloutPorts
from functions.settings import Settings
from tests.fakes import FakeEndpoints, FakeModelFiles, FakeParts, FakeRegistry, FakeTrafficLog, MemoryStore

MODEL = "credit-card-default"
TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/staging"
store = MemoryStore()


class Parts(FakeParts):
    def references(self):
        class References:
            def reference_file(self, model, version, tmp):
                return work / "reference.parquet"
        return References()


class Durable:
    async def get_status(self, instance_id):
        return type("S", (), {"runtime_status": None})()
    async def start_new(self, name, instance_id, client_input):
        return instance_id
    async def raise_event(self, *args, **kwargs):
        return None


ports = RolloutPorts(FakeEndpoints({}), FakeEndpoints({}), FakeRegistry(), FakeTrafficLog(), store, FakeModelFiles())
bootstrap._app = bootstrap.App(Settings.from_env({}), load_managed_models(None), Parts(ports))
functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
user = functions[trigger].get_user_function()
user = getattr(user, "__wrapped__", user)
if trigger == "drift_check":  # the window the timer finds (written before the clock starts)
    from functions.services.contracts import store_contract
    from functions.services.records import RolloutStore
    from functions.shared.contract import ModelContract
    from datetime import datetime, timezone
    contract = json.loads((work / "contract.json").read_text())
    store_contract(store, MODEL, "1", ModelContract.from_dict(contract), current=True)
    RolloutStore(store).set_production({"model": MODEL, "version": "1", "id": "r1"}, "blue", {"blue": 100},
                                       datetime.now(timezone.utc).isoformat())
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    key = f"exports/{MODEL}/1/{hour:%Y-%m-%d}/{hour:%H}/part-{hour:%Y%m%dT%H%M%S}Z.parquet"
    store.put(key, (work / "current.parquet").read_bytes())
ready = time.perf_counter()
if trigger == "health":
    user(func.HttpRequest("GET", "/api/health", body=b""))
elif trigger == "model_registered":
    event = func.EventGridEvent(id="e1", data={"modelName": MODEL, "modelVersion": "2"}, topic=TOPIC,
                                subject=f"models/{MODEL}:2", event_type="Microsoft.MachineLearningServices.ModelRegistered",
                                event_time=None, data_version="1")
    asyncio.run(user(event, Durable()))
elif trigger == "alert_webhook":
    body = (Path("tests/payloads/azmon-common-log-alerts-v2.testaction.json")).read_bytes()
    user(func.HttpRequest("POST", "/api/alerts", body=body, headers={"Content-Type": "application/json"}))
elif trigger == "rollouts":
    user(func.HttpRequest("GET", "/api/rollouts", body=b""))
elif trigger == "drift_check":
    from azure.functions.timer import TimerRequest
    user(TimerRequest(past_due=False))
    assert any(k.endswith("/result.json") for k in store.list(f"drift/{MODEL}/")), "no drift result"
done = time.perf_counter()
print(json.dumps({"import": imported - started, "call": done - ready}))
'''

SDK_IMPORT = ("import time; t = time.perf_counter(); import azure.ai.ml, azure.monitor.query, azure.storage.blob, "
              "azure.identity; print(time.perf_counter() - t)")


def git_file(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def requirements_at(rev: str, folder: Path, path: str = "requirements.txt") -> Path:
    """requirements.txt of `rev` and every file it includes with -r, written under `folder`."""
    text = git_file(rev, path)
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    for line in text.splitlines():
        if line.strip().startswith("-r "):
            include = (Path(path).parent / line.strip()[3:].strip()).as_posix()
            requirements_at(rev, folder, include)
    return target


def tree_at(rev: str, cache: Path) -> Path:
    tree = cache / f"tree-{rev}"
    if not (tree / "function_app.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree)
    return tree


def clean_venv(venv: Path, pip_args: list[str]) -> tuple[Path, float]:
    """A venv holding only what `pip install <pip_args>` installs (cached: venv/.complete)."""
    marker = venv / ".complete"
    if marker.exists():
        return venv / "bin" / "python", json.loads(marker.read_text())["seconds"]
    started = time.perf_counter()
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                           "--disable-pip-version-check", *pip_args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"installing {venv.name} failed:\n{done.stderr[-2000:]}")
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({"seconds": round(seconds, 1)}))
    return venv / "bin" / "python", seconds


def site_packages_mb(python: Path) -> int:
    site = next((python.parent.parent / "lib").glob("python3*/site-packages"))
    return int(subprocess.run(["du", "-sm", str(site)], capture_output=True, text=True, check=True).stdout.split()[0])


def window(work: Path) -> None:
    """A credit-card-shaped window: the contract, a reference and a shifted current part (pyarrow)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml import schema

    work.mkdir(parents=True, exist_ok=True)
    features = [{"name": n, "type": "categorical"} for n in schema.CATEGORICAL]
    features += [{"name": n, "type": "numeric"} for n in schema.NUMERIC]
    row = {n: "1" for n in schema.CATEGORICAL} | {n: 0.0 for n in schema.NUMERIC}
    contract = {"features": features, "target": schema.TARGET, "task": "binary_classification",
                "response_kind": "probability", "sample_request": {"data": [row]}}
    (work / "contract.json").write_text(json.dumps(contract))
    rng = np.random.default_rng(0)
    for name, shift, target in (("reference.parquet", 0.0, True), ("current.parquet", 0.3, False)):
        columns = {n: pa.array(rng.integers(0, 4, 20_000).astype(str)) for n in schema.CATEGORICAL}
        columns |= {n: pa.array(rng.normal(shift, 1.0, 20_000)) for n in schema.NUMERIC}
        if target:
            columns[schema.TARGET] = pa.array(rng.integers(0, 2, 20_000))
        pq.write_table(pa.table(columns), work / name)


def cold_starts(python: Path, tree: Path, work: Path, runs: int) -> dict[str, dict[str, float]]:
    out = {}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONPATH": str(tree), "MODELOPS_HOME": str(work / "home"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    for trigger in TRIGGERS:
        walls, imports, calls = [], [], []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run([str(python), "-c", HARNESS, trigger, str(work)], cwd=tree, env=env,
                                  capture_output=True, text=True, timeout=600)
            walls.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"{trigger} in {python.parent.parent.name}: {done.stderr.strip()[-1500:]}")
            inner = json.loads(done.stdout.strip().splitlines()[-1])
            imports.append(inner["import"])
            calls.append(inner["call"])
        out[trigger] = {"wall": statistics.median(walls), "import": statistics.median(imports),
                        "call": statistics.median(calls)}
    sdk = [float(subprocess.run([str(python), "-c", SDK_IMPORT], env=env, capture_output=True, text=True,
                                check=True).stdout) for _ in range(runs)]
    out["(Azure SDK import)"] = {"wall": statistics.median(sdk), "import": statistics.median(sdk), "call": 0.0}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="06843ea", help="the commit whose requirements.txt is 'before'")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "package-cache")
    args = parser.parse_args()
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)

    before_reqs = requirements_at(args.before, cache / f"requirements-{args.before}")
    before_python, before_install = clean_venv(cache / f"venv-before-{args.before}", ["-r", str(before_reqs)])
    after_python, after_install = clean_venv(cache / f"venv-{package.lock_digest()[:16]}",
                                             ["--require-hashes", "-r", str(package.LOCK)])
    sizes = {"before": site_packages_mb(before_python), "after": site_packages_mb(after_python)}
    print(f"installed size (du -sm site-packages of a clean venv; pip and setuptools not included)")
    print(f"  before ({args.before} requirements.txt): {sizes['before']:>6} MB  (install {before_install:.0f} s)")
    print(f"  after  (requirements.lock)        : {sizes['after']:>6} MB  (install {after_install:.0f} s)")
    print(f"  after / before                    : {sizes['after'] / sizes['before']:>9.2f}   (goal ≤ 0.60)")

    work = cache / "bench-window"
    window(work)
    before = cold_starts(before_python, tree_at(args.before, cache), work, args.runs)
    after = cold_starts(after_python, ROOT, work, args.runs)
    print(f"\ncold start: a fresh process per trigger, import function_app + the first call (median of {args.runs})")
    print(f"  {'trigger':22} {'before s':>9} {'after s':>9} {'after/before':>13}   (import + call, after)")
    for trigger in before:
        b, a = before[trigger]["wall"], after[trigger]["wall"]
        print(f"  {trigger:22} {b:9.2f} {a:9.2f} {a / b:13.2f}   "
              f"({after[trigger]['import']:.2f} + {after[trigger]['call']:.2f})")
    ratio = sizes["after"] / sizes["before"]
    print(f"\n{'PASS' if ratio <= 0.60 else 'FAIL'}: installed size {ratio:.0%} of before (goal ≤ 60%)")
    return 0 if ratio <= 0.60 else 1


if __name__ == "__main__":
    sys.exit(main())
