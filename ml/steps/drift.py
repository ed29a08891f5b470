"""Drift job entry point: reference (training sample) vs current (exported inference window).

    python -m ml.steps.drift --reference <file> --current <file|folder> --output <folder>

The computation lives in ml.drift.compute_drift(reference, current, output) (a later change);
until it exists this exits with a clear message.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ml.steps._io import fail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--current", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)

    try:
        from ml.drift import compute_drift
    except ModuleNotFoundError as exc:
        if exc.name != "ml.drift":
            raise
        fail("drift computation is not available yet: the module ml.drift (compute_drift) does not exist")
    args.output.mkdir(parents=True, exist_ok=True)
    compute_drift(args.reference, args.current, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
