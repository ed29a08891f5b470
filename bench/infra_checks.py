"""What checking infra/ costs without the Bicep compiler (tests/test_infra.py): tree-sitter-bicep's
syntax parse and pycep-parser's structure parse of every .bicep file, checkov's Bicep policies from
.venv-tools, and the size of .venv-tools. Target: the whole check (parses + checkov) ≤ 60 s, so it
keeps its place in `make test`.

    .venv/bin/python bench/infra_checks.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import bicep_templates as bt  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> int:
    files = bt.bicep_files()
    start = time.perf_counter()
    errors = {str(f.relative_to(REPO)): bt.syntax_errors(f.read_bytes()) for f in files}
    ts_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for f in files:
        bt.parsed(f)
    pycep_seconds = time.perf_counter() - start
    lines = sum(len(f.read_text().splitlines()) for f in files)
    print(f"{len(files)} .bicep files, {lines} lines")
    print(f"  tree-sitter-bicep syntax parse: {ts_seconds * 1000:.1f} ms, "
          f"{sum(map(len, errors.values()))} errors")
    print(f"  pycep-parser structure parse (grammar load included): {pycep_seconds:.2f} s")

    checkov = REPO / ".venv-tools" / "bin" / "checkov"
    if not checkov.exists():
        print("FAIL: .venv-tools/bin/checkov is missing (make tools-env)")
        return 1
    start = time.perf_counter()
    out = subprocess.run([str(checkov), "--directory", str(bt.INFRA), "--framework", "bicep", "--output", "json",
                          "--compact", "--skip-download"], capture_output=True, text=True, cwd=REPO)
    checkov_seconds = time.perf_counter() - start
    summary = json.loads(out.stdout)["summary"]
    print(f"  checkov {summary['checkov_version']} --framework bicep: {checkov_seconds:.1f} s, "
          f"{summary['resource_count']} resources, passed {summary['passed']}, failed {summary['failed']}, "
          f"skipped {summary['skipped']}, parsing errors {summary['parsing_errors']}")
    venv = REPO / ".venv-tools"
    packages = len(list((venv / "lib").glob("python3*/site-packages/*.dist-info")))
    print(f"  .venv-tools: {tree_size(venv) / 2**20:.0f} MiB, {packages} distributions")

    total = ts_seconds + pycep_seconds + checkov_seconds
    clean = not any(errors.values()) and summary["parsing_errors"] == 0 and summary["failed"] == 0
    verdict = "PASS" if clean and total <= TARGET_SECONDS else "FAIL"
    print(f"{verdict}: {total:.1f} s in all (target ≤ {TARGET_SECONDS:.0f} s), "
          f"{'no' if clean else 'SOME'} syntax errors, parsing errors or failed checks")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
