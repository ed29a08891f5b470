"""Drift job entry point: reference (training sample) vs current (exported inference window).

    python -m ml.steps.drift --reference <file> --current <file|folder> --output <folder>
        [--model-name NAME] [--config JSON] [--contract FILE] [--no-report]

The same computation the drift timer runs in the Function App (ml.drift.compute_drift); the job
is submitted instead when the window is too large for a function. Writes result.json (the two
drift records, status, per-feature details) and report.html (Evidently) to --output.

--contract: the model's contract as a JSON file (ModelContract.to_dict(); its features, target and
task decide which columns are compared and as what). Without it: the credit-card schema.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ml.steps._io import fail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--current", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--model-name", default="credit-card-default")
    parser.add_argument("--config", default="", help="JSON drift settings (ml.drift.DriftConfig fields)")
    parser.add_argument("--contract", type=Path, default=None,
                        help="the model's contract as a JSON file (default: the credit-card schema)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    args = parser.parse_args(argv)

    from ml.dataset import DataError
    from ml.drift import compute_drift

    try:
        config = json.loads(args.config) if args.config else None
    except ValueError as exc:
        fail(f"--config is not valid JSON: {exc}")
    contract = None
    if args.contract is not None:
        try:
            contract = json.loads(args.contract.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(f"--contract {args.contract}: not a readable JSON file ({exc})")
    args.output.mkdir(parents=True, exist_ok=True)
    try:
        compute_drift(args.reference, args.current, args.output, config=config, contract=contract,
                      model_name=args.model_name, report=not args.no_report)
    except DataError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
