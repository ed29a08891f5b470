"""Which distributions the Function App imports at run time, measured: run test files under an
import tracer and list the installed distributions whose modules the App's own code paths loaded.

    .venv/bin/python bench/runtime_imports.py [--json FILE] [pytest args …]   (default: DEFAULT_TESTS)

How an import is attributed. Every `import` statement (builtins.__import__, so imports of modules
already loaded count too) and every module load (the "import" audit event, which catches
importlib.import_module) is looked at with its call stack:
- library frames (site-packages, the standard library, importlib) and ml/ frames are passed over,
  innermost first; the first other frame decides: it counts for the Function App when that frame
  is the App's code — function_app.py or functions/, but the CLI (functions/cli/) and the embedded
  platform (functions/adapters/local/), which are not the Azure Function App;
- so a library the App imports counts with everything it imports in turn, now or lazily at call
  time; ml/ code counts when the App called it (the drift check), not when a test did; and a test's
  fake called back by an SDK (tests/…) imports for the test.
- "the App" in the output: imported by the App's own files (or ml/ reached from them); "a library":
  only by the libraries they import. A module a test had imported before the App did is seen as the
  App's import statement only (its own imports ran earlier): pip's dependency metadata covers those.
The imported modules' files are then mapped to the distributions that installed them (their RECORD).
What this cannot see is a path no test drives; tests/test_package.py checks the other way round
(statically) that every third-party module the App's files import is installed by requirements.txt.
"""

from __future__ import annotations

import argparse
import builtins
import json
import sys
import sysconfig
import threading
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The test files that drive the Function App's trigger paths in Azure mode (the real SDKs against the
# fake ARM, the fake Log Analytics and Azurite), its triggers as the host calls them, and the drift
# and export services the timers run.
DEFAULT_TESTS = [
    "tests/test_function_app.py", "tests/test_triggers.py", "tests/test_alert_triggers.py",
    "tests/test_azure_aml_adapter.py", "tests/test_azure_jobs.py", "tests/test_azure_model_files.py",
    "tests/test_blob_store.py", "tests/test_inference_logs_azure.py", "tests/test_log_analytics_traffic.py",
    "tests/test_query_answer.py", "tests/test_entra.py", "tests/test_canary_health.py",
    "tests/test_drift_scaleout.py", "tests/test_drift_contracts.py", "tests/test_export_contracts.py",
    "tests/test_export_protocol.py", "tests/test_export_quarantine.py", "tests/test_export_keys.py",
    "tests/test_workflow_replay.py", "tests/test_config_validation.py", "tests/test_many_models_azure.py",
]

APP_FILES = (ROOT / "function_app.py",)
APP_DIR = ROOT / "functions"
ML_DIR = ROOT / "ml"  # what the App reaches of ml/ (ml/drift, ml.schema, ml.dataset)
NOT_AZURE = (ROOT / "functions" / "cli", ROOT / "functions" / "adapters" / "local")
LIBRARY_DIRS = tuple({Path(p).resolve() for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                                   sysconfig.get_paths()["platlib"])})


def _kind(filename: str) -> str:
    """'app', 'ml', 'not-azure', 'library' or 'other' (tests, …) for a frame's file."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return "library"
    path = Path(filename)
    if any(path.is_relative_to(d) for d in NOT_AZURE):
        return "not-azure"
    if path in APP_FILES or path.is_relative_to(APP_DIR):
        return "app"
    if path.is_relative_to(ML_DIR):
        return "ml"
    if any(path.is_relative_to(d) for d in LIBRARY_DIRS):
        return "library"
    return "other"


class Tracer:
    def __init__(self) -> None:
        self.modules: set[str] = set()  # modules the App's paths imported (absolute dotted names)
        self.direct: set[str] = set()  # … of which the App's own files imported directly
        self.importer: dict[str, str] = {}  # module → the first App (or ml/) file that imported it
        self._kinds: dict[str, str] = {}
        self._busy = threading.local()  # the tracer's own imports are not traced

    def kind(self, filename: str) -> str:
        found = self._kinds.get(filename)
        if found is None:
            found = self._kinds[filename] = _kind(filename)
        return found

    def attribute(self, frame) -> tuple[bool, bool]:
        """(counts for the App, imported directly by the App's code) for an import made by `frame`.

        Library and ml/ frames are passed over: the first other frame outward decides (ml/ code
        counts only when the App called it, not when a test did)."""
        innermost = None
        while frame is not None:
            k = self.kind(frame.f_code.co_filename)
            if k != "library" and innermost is None:
                innermost = k
            if k not in ("library", "ml"):
                return k == "app", k == "app" and innermost in ("app", "ml")
            frame = frame.f_back
        return False, False

    def record(self, name: str, frame) -> None:
        counts, _ = self.attribute(frame)
        if not counts:
            return
        self.modules.add(name)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen"):  # importlib's own frames
            frame = frame.f_back
        # direct: the import statement (or import_module call) is in the App's own code, not in a
        # library the App called (pyarrow, for one, imports pandas whenever it is installed)
        if frame is not None and self.kind(frame.f_code.co_filename) in ("app", "ml"):
            self.direct.add(name)
            self.importer.setdefault(name, str(Path(frame.f_code.co_filename).relative_to(ROOT)))

    def install(self) -> None:
        original = builtins.__import__
        tracer = self

        def traced_import(name, globals=None, locals=None, fromlist=(), level=0):
            module = original(name, globals, locals, fromlist, level)
            if getattr(tracer._busy, "on", False):
                return module
            tracer._busy.on = True
            try:
                absolute = name
                if level and globals:
                    package = globals.get("__package__") or ""
                    base = package.rsplit(".", level - 1)[0] if level > 1 else package
                    absolute = f"{base}.{name}" if name else base
                caller = sys._getframe(1)
                tracer.record(absolute, caller)
                for item in fromlist or ():
                    if isinstance(item, str) and f"{absolute}.{item}" in sys.modules:
                        tracer.record(f"{absolute}.{item}", caller)
            finally:
                tracer._busy.on = False
            return module

        def audit(event, args):
            if event != "import" or getattr(tracer._busy, "on", False):
                return
            tracer._busy.on = True
            try:
                tracer.record(str(args[0]), sys._getframe(1))
            finally:
                tracer._busy.on = False

        builtins.__import__ = traced_import
        sys.addaudithook(audit)


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    """distribution name → the traced modules it installed (modules of the standard library and of
    this repository are left out)."""
    owner: dict[Path, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        for file in dist.files or ():
            if file.suffix in (".py", ".so", ".pyc") or file.name == "__init__.py":
                owner[Path(dist.locate_file(file)).resolve()] = name
    out: dict[str, set[str]] = {}
    for module_name in modules:
        module = sys.modules.get(module_name)
        file = getattr(module, "__file__", None)
        if not file:
            continue
        dist = owner.get(Path(file).resolve())
        if dist:
            out.setdefault(dist, set()).add(module_name)
    return out


class Plugin:
    """pytest plugin: starts the tracer before the test files are collected."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def pytest_sessionstart(self, session) -> None:  # noqa: ARG002 - pytest's hook signature
        self.tracer.install()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the result here")
    args, pytest_args = parser.parse_known_args()
    import pytest

    tracer = Tracer()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *(pytest_args or DEFAULT_TESTS)], plugins=[Plugin(tracer)])
    everything = distributions_of(tracer.modules)
    direct = distributions_of(tracer.direct)
    rows = {name: {"direct": name in direct, "modules": len(mods), "top": sorted({m.split(".")[0] for m in mods}),
                   "first_imported_by": sorted({tracer.importer[m] for m in direct.get(name, ()) if m in tracer.importer})}
            for name, mods in everything.items()}
    print("\nDistributions the Function App imported at run time (Azure mode), by the tests above:")
    print(f"{'distribution':32} {'imported by':10} modules  App files importing it")
    for name in sorted(rows, key=lambda n: (not rows[n]["direct"], n.lower())):
        row = rows[name]
        files = row["first_imported_by"]
        print(f"{name:32} {'the App' if row['direct'] else 'a library':10} {row['modules']:7}  "
              f"{', '.join(files[:3])}{' …' if len(files) > 3 else ''}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pytest_exit": int(code), "distributions": rows}, indent=1) + "\n")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
