"""The Function App's deployment package: requirements.txt holds what the App imports, the lock
matches it, .funcignore keeps what the App needs and nothing else, and the zip `make package`
builds indexes — from its own .python_packages (installed from the lock alone), in a bare
interpreter and in a new, empty venv.

The integration tests install the lock once (≈ 500 MB, make package's install); it is cached per
lock digest under MODELOPS_PACKAGE_CACHE (default build/package-cache), so a run pays it once, and
the test says how long the install took."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from functions.settings import REPO_ROOT
from tests.test_function_app import EXPECTED

sys.path.insert(0, str(REPO_ROOT / "tools"))
import package  # noqa: E402  (tools/package.py)

LOCK = REPO_ROOT / "requirements.lock"
CACHE = Path(os.environ.get("MODELOPS_PACKAGE_CACHE", REPO_ROOT / "build" / "package-cache"))
# Imported by a file the App loads, but only on a path the Function App never takes (each checked
# below to be in that file): the CSV/JSON-lines readers and the report's frames (the App reads
# Parquet through pyarrow: ml/drift/parquet.py), the HTML report itself (rendered where Evidently
# is: the drift job, `modelops drift-report`).
# ml/dataset.py: the App uses its readable_file/table_files/DataError; pandas is for the training
# data loaders.
NOT_IN_THE_APP = {("ml/drift/data.py", "pandas"), ("ml/drift/report.py", "evidently"),
                  ("ml/dataset.py", "pandas")}
MUST_NOT_SHIP = ("pandas", "evidently", "plotly", "sklearn", "statsmodels", "faker", "nltk", "typer", "rich",
                 "litestar", "uvloop", "pygments", "mlflow", "skops", "pytest")


# --- requirements.txt and the lock ------------------------------------------------------------

def requirements(path: Path) -> list[Requirement]:
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out += requirements(path.parent / line[3:].strip())
        elif line:
            out.append(Requirement(line))
    return out


def locked() -> dict[str, dict]:
    """name → {version, hashes, via} from requirements.lock (pip-compile's layout)."""
    entries: dict[str, dict] = {}
    current = None
    in_via = False
    for line in LOCK.read_text().splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            name, version = line.split(" ")[0].split("==")
            current = entries[canonicalize_name(name)] = {"version": version, "hashes": [], "via": set()}
            in_via = False
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            current["hashes"].append(line.strip().split(":", 1)[1].rstrip(" \\"))
        elif current is not None and line.strip().startswith("# via"):
            rest = line.strip()[len("# via"):].strip()
            in_via = not rest
            if rest:
                current["via"].add(rest)
        elif current is not None and in_via and line.strip().startswith("#   "):
            current["via"].add(line.strip()[4:].strip())
    return entries


def test_every_pin_is_exact_and_hashed():
    entries = locked()
    assert len(entries) > 20
    for name, entry in entries.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", entry["version"]), name
        assert entry["hashes"] and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in entry["hashes"]), name


def test_the_lock_matches_requirements_txt():
    """Every requirement is locked at a version it allows, the lock's direct pins are exactly the
    requirements, and every other pin is what a locked package needs: a requirement added, removed
    or re-ranged without `make lock` fails here."""
    entries = locked()
    wanted = {canonicalize_name(r.name): r for r in requirements(REPO_ROOT / "requirements.txt")}
    for name, requirement in wanted.items():
        assert name in entries, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(entries[name]["version"], prereleases=True), \
            f"requirements.lock pins {name}=={entries[name]['version']}, requirements.txt wants {requirement}"
    direct = {name for name, entry in entries.items() if "-r requirements.txt" in entry["via"]}
    assert direct == set(wanted), f"locked as direct but not required: {sorted(direct - set(wanted))}; " \
                                  f"required but not direct: {sorted(set(wanted) - direct)}: run `make lock`"
    for name, entry in entries.items():
        parents = {canonicalize_name(v) for v in entry["via"] if v != "-r requirements.txt"}
        assert entry["via"], f"{name}: no `# via` in requirements.lock"
        assert parents <= set(entries), f"{name} is locked for {sorted(parents - set(entries))}, which is not"


def test_the_lock_was_made_by_the_makefiles_command():
    makefile = (REPO_ROOT / "Makefile").read_text()
    command = re.search(r"^LOCK_COMMAND := (.+)$", makefile, re.M).group(1)
    header = re.search(r"^#\s+(pip-compile .+)$", LOCK.read_text(), re.M).group(1)
    flags = lambda text: sorted(w for w in text.split() if w not in ("pip-compile", "--quiet"))  # noqa: E731
    assert flags(header) == flags(command)


def app_sources() -> list[Path]:
    """function_app.py, functions/ but the CLI and the embedded platform, and the ml/ modules those
    import (followed through ml/): the files whose imports the Function App runs in Azure."""
    files = [REPO_ROOT / "function_app.py"]
    for path in sorted((REPO_ROOT / "functions").rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        if not rel.startswith(("functions/cli/", "functions/adapters/local/")):
            files.append(path)
    seen = set(files)
    queue = list(files)
    while queue:
        for module in imported_modules(queue.pop()):
            if module.split(".")[0] != "ml":
                continue
            for candidate in (REPO_ROOT / (module.replace(".", "/") + ".py"),
                              REPO_ROOT / module.replace(".", "/") / "__init__.py"):
                if candidate.exists() and candidate not in seen:
                    seen.add(candidate)
                    queue.append(candidate)
    # ml.drift's lazy attributes (ml/drift/__init__.py _LAZY) load these by name
    for name in ("job", "scores", "data", "parquet", "stats", "config"):
        candidate = REPO_ROOT / "ml" / "drift" / f"{name}.py"
        if candidate not in seen:
            seen.add(candidate)
    return sorted(seen)


def imported_modules(path: Path) -> set[str]:
    """What `path` imports at run time, anywhere in it (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_everything_the_apps_files_import_is_installed_by_requirements_txt():
    """Statically, the other way round from bench/runtime_imports.py (which traces the tests): every
    third-party module a file of the App imports, anywhere in it, belongs to a distribution in the
    lock — but the listed imports on paths the Function App never takes."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    entries = locked()
    stdlib = sys.stdlib_module_names
    missing = []
    for path in app_sources():
        rel = path.relative_to(REPO_ROOT).as_posix()
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in stdlib or top in ("functions", "ml", "function_app", "__future__"):
                continue
            if (rel, top) in NOT_IN_THE_APP:
                continue
            dists = {canonicalize_name(d) for d in owners.get(top, [])}
            if top == "azure":  # a namespace: the distribution is the module's own
                dists = {canonicalize_name(d) for d in owners_of(module)}
            if not dists & set(entries):
                missing.append(f"{rel}: {module}")
    assert missing == []
    for rel, top in NOT_IN_THE_APP:  # each exception still names a real import
        assert top in {m.split(".")[0] for m in imported_modules(REPO_ROOT / rel)}, (rel, top)


_NAMESPACE_OWNERS: dict[str, str] = {}


def owners_of(module: str) -> set[str]:
    """The distribution installing `module` of the `azure` namespace (its longest package prefix)."""
    from importlib.metadata import distributions

    if not _NAMESPACE_OWNERS:
        for dist in distributions():
            for file in dist.files or ():
                parts = file.parts
                if parts and parts[0] == "azure" and file.name == "__init__.py":
                    _NAMESPACE_OWNERS.setdefault(".".join(parts[:-1]), dist.metadata["Name"])
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        found = _NAMESPACE_OWNERS.get(".".join(parts[:n]))
        if found:
            return {found}
    return set()


def test_requirements_txt_holds_no_tooling():
    names = {canonicalize_name(r.name) for r in requirements(REPO_ROOT / "requirements.txt")}
    assert not names & {"evidently", "typer", "rich", "pandas", "scikit-learn", "pytest", "mlflow-skinny", "skops"}
    cli = {canonicalize_name(r.name) for r in requirements(REPO_ROOT / "requirements-cli.txt")}
    assert {"evidently", "typer", "scikit-learn", "pandas"} <= cli and names <= cli


# --- .funcignore --------------------------------------------------------------------------------

def test_funcignore_keeps_the_app_and_leaves_out_tests_tools_and_environments():
    files = {p.as_posix() for p in package.app_files(REPO_ROOT)}
    for needed in ("function_app.py", "host.json", "requirements.txt", "requirements.lock",
                   "functions/triggers/timers_monitoring.py", "functions/adapters/azure/aml_jobs.py",
                   "ml/drift/parquet.py", "ml/pipelines/train.yml", "ml/jobs/drift.yml", "ml/score.py",
                   "ml/environments/serving.yml", "ml/endpoints/deployment.yml"):
        assert needed in files, needed
    for name in files:
        assert not name.startswith(("tests/", "bench/", "tools/", ".venv", "node_modules/", ".modelops/",
                                    ".git/", "functions/cli/", "build/", "dist/", ".python_packages/")), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert name not in ("local.settings.json", "requirements-dev.txt", "requirements-cli.txt", "Makefile"), name
    # every file of the App's (the ones it imports) is packed
    for path in app_sources():
        assert path.relative_to(REPO_ROOT).as_posix() in files, path


# --- the zip, unpacked: it indexes ---------------------------------------------------------------

INDEX = ("import json, sys, function_app\n"
         "names = sorted(f.get_function_name() for f in function_app.app.get_functions())\n"
         "import functions.adapters.azure.clients, functions.adapters.azure.blob_store\n"
         "import functions.adapters.azure.log_analytics, functions.adapters.azure.entra, ml.drift.parquet\n"
         "import scipy.stats, pyarrow.parquet\n"
         "print(json.dumps({'functions': names, 'loaded': sorted(m for m in %r if m in sys.modules),"
         " 'paths': sorted({m.__file__.split('/site-packages/')[0] for m in (function_app, scipy) })}))\n"
         % (MUST_NOT_SHIP,))


def timed(request, what: str, seconds: float, cached: bool) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"{what}: {'cached (built in ' if cached else 'built in '}{seconds:.0f} s{')' if cached else ''}"
    if reporter is not None:
        reporter.write_line(f"\n[package] {line}")


@pytest.fixture(scope="module", name="built")
def built_fixture(tmp_path_factory, request):
    """make package's zip (the installed lock cached per digest), unpacked."""
    out = tmp_path_factory.mktemp("package") / "modelops-functionapp.zip"
    started = time.perf_counter()
    cached = (CACHE / f"site-packages-{package.lock_digest(LOCK)[:16]}" / ".complete").exists()
    done = package.build(out, cache=CACHE)
    timed(request, "the lock installed into .python_packages", time.perf_counter() - started, cached)
    unpacked = out.parent / "unpacked"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(unpacked)
        names = archive.namelist()
    return done, names, unpacked


@pytest.fixture(scope="module", name="clean_venv")
def clean_venv_fixture(tmp_path_factory):
    """A new venv with nothing installed in it (no pip either): what the Python worker runs the
    package with. Everything the App imports must then come from the package's own
    .python_packages — which make package installed from requirements.lock alone (pip
    --require-hashes --target): one install of the lock serves the zip and this test."""
    venv = tmp_path_factory.mktemp("clean") / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    empty = run_in(python, "import json, sysconfig; from pathlib import Path; "
                           "print(json.dumps(sorted(p.name for p in Path(sysconfig.get_paths()['purelib']).iterdir())))",
                   venv, {})
    assert all(name.startswith("_distutils") or name == "README.txt" for name in empty), empty  # truly clean
    return python


@pytest.mark.integration
def test_the_zip_holds_the_app_and_the_locked_packages_and_nothing_else(built):
    done, names, unpacked = built
    app = {n for n in names if not n.startswith(".python_packages/")}
    assert app == {p.as_posix() for p in package.app_files(REPO_ROOT)} - {"requirements.lock"}
    # a remote build of this zip installs the lock, hash-checked
    assert (unpacked / "requirements.txt").read_bytes() == LOCK.read_bytes()
    site = ".python_packages/lib/site-packages/"
    tops = {n[len(site):].split("/")[0] for n in names if n.startswith(site)}
    for needed in ("azure", "numpy", "scipy", "pyarrow", "pydantic", "jwt", "yaml", "requests"):
        assert needed in tops, needed
    assert not {t for t in tops if t.split("-")[0].split(".")[0] in MUST_NOT_SHIP}
    versions = dict((canonicalize_name(name), version) for name, version in
                    (t.removesuffix(".dist-info").rsplit("-", 1) for t in tops if t.endswith(".dist-info")))
    assert versions == {name: entry["version"] for name, entry in locked().items()}  # the lock, all of it


def run_in(python: str | Path, code: str, cwd: Path, env: dict[str, str], *flags: str) -> dict:
    out = subprocess.run([str(python), *flags, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_the_unpacked_zip_indexes_on_its_own_packages(built):
    """As the Python worker loads it: the app folder and .python_packages/lib/site-packages on the
    path, no other site-packages (python -S)."""
    _, _, unpacked = built
    site = unpacked / ".python_packages" / "lib" / "site-packages"
    answer = run_in(sys._base_executable, INDEX, unpacked, {"PYTHONPATH": f"{unpacked}:{site}"}, "-S")
    assert answer["functions"] == sorted(EXPECTED)
    assert answer["loaded"] == []
    assert answer["paths"] == sorted({str(unpacked / "function_app.py").split("/site-packages/")[0], str(unpacked)
                                      + "/.python_packages/lib"})


@pytest.mark.integration
def test_the_unpacked_app_indexes_in_a_clean_venv_from_the_lock(built, clean_venv):
    _, _, unpacked = built
    app_only = unpacked.parent / "app-only"
    if not app_only.exists():
        app_only.mkdir()
        for rel in package.app_files(REPO_ROOT):
            if rel.as_posix() == "requirements.lock":
                continue
            target = app_only / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((unpacked / rel).read_bytes())
    site = unpacked / ".python_packages" / "lib" / "site-packages"
    answer = run_in(clean_venv, INDEX, app_only, {"PYTHONPATH": f"{app_only}:{site}"})
    assert answer["functions"] == sorted(EXPECTED)
    assert answer["loaded"] == []


@pytest.mark.integration
def test_the_drift_check_runs_from_the_package_without_evidently_or_pandas(built, tmp_path):
    """The in-function drift check (pyarrow → numpy/scipy) from the unpacked zip's own packages."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, unpacked = built
    rng = np.random.default_rng(1)
    for name, shift in (("reference.parquet", 0.0), ("current/part-1.parquet", 1.5)):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        pq.write_table(pa.table({"colour": rng.choice(["red", "blue"], 3000), "size": rng.normal(shift, 1, 3000)}),
                       path)
    code = f"""
import json, sys
from ml.drift.job import compute_drift
result = compute_drift({str(tmp_path / 'reference.parquet')!r}, {str(tmp_path / 'current')!r}, {str(tmp_path / 'out')!r},
                       contract={{"features": [{{"name": "colour", "type": "categorical"}}, {{"name": "size", "type": "numeric"}}]}},
                       report=False)
print(json.dumps({{"status": result.status, "drift": result.dataset_drift,
                  "loaded": sorted(m for m in {MUST_NOT_SHIP!r} if m in sys.modules)}}))
"""
    site = unpacked / ".python_packages" / "lib" / "site-packages"
    answer = run_in(sys._base_executable, code, unpacked, {"PYTHONPATH": f"{unpacked}:{site}"}, "-S")
    assert answer == {"status": "ok", "drift": True, "loaded": []}
