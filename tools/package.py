"""`make package`: the Function App's deployment zip, as `func azure functionapp publish` (no remote
build) and `azd deploy` upload it.

    .venv/bin/python tools/package.py [--out dist/modelops-functionapp.zip] [--cache DIR]

- the app's files: the repository folder minus what .funcignore leaves out (gitignore syntax, read
  with pathspec as Core Tools reads it), symlinks never followed;
- its packages: requirements.lock installed with `pip install --require-hashes --target
  .python_packages/lib/site-packages` (where the Python worker looks for them when the package is
  not built remotely), as wheels for the Functions host — Linux x86-64, CPython 3.11 — whatever
  machine builds it, so a lock that lacks a dependency, or a file whose hash differs, fails here;
- its requirements.txt is requirements.lock (hashes and all): a remote build (Oryx) installs the
  locked versions too;
- the zip is deterministic (sorted entries, fixed timestamps): the same inputs, the same bytes.

`--cache DIR` keeps the installed packages under DIR/site-packages-<sha256 of the lock>/ and
reuses them while the lock is unchanged (CI and the tests pay the install once).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
SITE_PACKAGES = Path(".python_packages/lib/site-packages")
DEFAULT_OUT = ROOT / "dist" / "modelops-functionapp.zip"
# The Functions host the package runs on (infra: Flex Consumption, Linux, Python 3.11).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
PYTHON_VERSION = "3.11"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def lock_digest(lock: Path = LOCK) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def ignored(root: Path = ROOT):
    """A predicate over repository-relative POSIX paths: True for what .funcignore leaves out."""
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines((root / ".funcignore").read_text().splitlines())
    return spec.match_file


def app_files(root: Path = ROOT) -> list[Path]:
    """The app's files (relative paths, sorted) that .funcignore keeps. A folder it leaves out is
    not walked; symlinks (the .venv links of a worktree) are never followed or packed; a
    .python_packages folder in the tree is not the lock's and is left out."""
    leave_out = ignored(root)
    out: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        keep = []
        for name in sorted(dirs):
            rel = here / name
            if (Path(folder) / name).is_symlink() or rel.as_posix() in (".git", SITE_PACKAGES.parts[0]):
                continue
            if not leave_out(rel.as_posix() + "/"):
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            rel = here / name
            if (Path(folder) / name).is_symlink() or leave_out(rel.as_posix()):
                continue
            out.append(rel)
    return sorted(out)


def pip_install_command(lock: Path, target: Path) -> list[str]:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
            "--require-hashes", "--only-binary=:all:", *platforms, "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "--target", str(target), "-r", str(lock)]


def install_lock(lock: Path, target: Path, cache: Path | None = None) -> Path:
    """requirements.lock installed into `target` (from the cache when it holds this lock's)."""
    if cache is not None:
        cached = cache / f"site-packages-{lock_digest(lock)[:16]}"
        if not (cached / ".complete").exists():
            shutil.rmtree(cached, ignore_errors=True)
            _pip_install(lock, cached)
            (cached / ".complete").write_text(lock_digest(lock) + "\n")
        shutil.copytree(cached, target, symlinks=True, ignore=shutil.ignore_patterns(".complete"))
        return target
    _pip_install(lock, target)
    return target


def _pip_install(lock: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(pip_install_command(lock, target), capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: Location")]
        raise SystemExit(f"pip install --require-hashes -r {lock.name} failed:\n" + "\n".join(errors[-20:]))


def write_zip(files: list[tuple[Path, str]], out: Path) -> None:
    """(source file, name in the zip) pairs, sorted by name, with fixed timestamps and the source's
    executable bit (so the same inputs give the same bytes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for source, name in sorted(files, key=lambda pair: pair[1]):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            mode = source.stat().st_mode
            info.external_attr = ((0o755 if mode & stat.S_IXUSR else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with source.open("rb") as handle, archive.open(info, "w") as entry:
                shutil.copyfileobj(handle, entry, 1 << 20)
    tmp.replace(out)


def build(out: Path = DEFAULT_OUT, *, root: Path = ROOT, lock: Path | None = None, cache: Path | None = None) -> dict:
    """Build the zip; answers what went in (files, bytes, the lock's digest)."""
    lock = lock or root / "requirements.lock"
    with tempfile.TemporaryDirectory(prefix="modelops-package-") as tmp:
        packages = install_lock(lock, Path(tmp) / "site-packages", cache)
        # The zip's requirements.txt is the lock: a host that builds remotely (Oryx, azd's default
        # for Python) then installs exactly the locked, hash-checked versions too, not the ranges.
        entries = [(lock if rel.as_posix() == "requirements.txt" else root / rel, rel.as_posix())
                   for rel in app_files(root) if rel.as_posix() != "requirements.lock"]
        for folder, _dirs, files in os.walk(packages):
            for name in files:
                source = Path(folder) / name
                rel = source.relative_to(packages)
                entries.append((source, (SITE_PACKAGES / rel).as_posix()))
        write_zip(entries, out)
    return {"zip": str(out), "entries": len(entries), "bytes": out.stat().st_size, "lock_sha256": lock_digest(lock),
            "app_files": sum(1 for _s, name in entries if not name.startswith(SITE_PACKAGES.parts[0]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=None, help="reuse installed packages per lock digest here")
    args = parser.parse_args()
    if not LOCK.exists():
        raise SystemExit(f"{LOCK.name} is missing: run `make lock`")
    done = build(args.out, cache=args.cache)
    print(f"{done['zip']}: {done['bytes'] / 1e6:.1f} MB, {done['app_files']} app files + "
          f"{done['entries'] - done['app_files']} package files (requirements.lock {done['lock_sha256'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
