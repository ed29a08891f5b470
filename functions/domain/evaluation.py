"""A model's labelled evaluation data (CSV in the store), read by its contract.

The file has a header with every feature of the contract and its target (other columns are
ignored). Numeric features are parsed as finite floats, categoricals kept as text (an empty cell is
a missing value: None). Labels follow the task: a regression target is a number; a classification
target is matched to the contract's classes (1, 1.0 and "1" are the same class; a binary target
also reads true/false and yes/no), so metrics compare like with like.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from functions.shared.contract import ModelContract

_TRUE = {"1", "true", "yes", "1.0"}
_FALSE = {"0", "false", "no", "0.0"}


class EvaluationError(ValueError):
    """The evaluation data cannot be used; the message names the row or column."""


def read_evaluation_csv(data: bytes, contract: ModelContract, limit: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Up to `limit` labelled rows as scoring records (typed per the contract) + their labels."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"evaluation data is not UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    wanted = contract.feature_names + (contract.target,)
    missing = [c for c in wanted if c not in (reader.fieldnames or [])]
    if missing:
        raise EvaluationError(f"evaluation data lacks column(s) {', '.join(missing)}")
    numeric = set(contract.numeric)
    rows, labels = [], []
    for number, line in enumerate(reader, start=1):
        if len(rows) >= limit:
            break
        record: dict[str, Any] = {}
        try:
            for name in contract.feature_names:
                cell = line[name]
                if cell in ("", None):
                    record[name] = None
                elif name in numeric:
                    value = float(cell)
                    if not math.isfinite(value):
                        raise ValueError(f"{name} is not a finite number")
                    record[name] = value
                else:
                    record[name] = cell
            label = parse_label(line[contract.target], contract)
        except (ValueError, TypeError) as exc:  # a row of the wrong shape or a value of the wrong type
            raise EvaluationError(f"evaluation data row {number}: {exc}") from None
        rows.append(record)
        labels.append(label)
    if not rows:
        raise EvaluationError("evaluation data has no rows")
    return rows, labels


def parse_label(cell: Any, contract: ModelContract) -> Any:
    target = contract.target
    if cell in ("", None):
        raise ValueError(f"target {target!r} is empty")
    if contract.task == "regression":
        value = float(cell)
        if not math.isfinite(value):
            raise ValueError(f"target {target!r} is not a finite number")
        return value
    text = str(cell).strip()
    for c in contract.classes:
        if text == str(c) or _numeric_equal(text, c):
            return c
    if contract.task == "binary_classification":
        classes = list(contract.classes) or [0, 1]
        positive = contract.positive_class if contract.positive_class is not None else classes[-1]
        negative = next((c for c in classes if c != positive), 0)
        if text.lower() in _TRUE:
            return positive
        if text.lower() in _FALSE:
            return negative
        raise ValueError(f"target {target!r} must be one of {classes} (or true/false), got {cell!r}")
    if contract.classes:
        raise ValueError(f"target {target!r} {cell!r} is not one of the classes {list(contract.classes)}")
    return _as_number_if_integral(text)


def _numeric_equal(text: str, c: Any) -> bool:
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        return False
    try:
        return float(text) == float(c)
    except ValueError:
        return False


def _as_number_if_integral(text: str) -> Any:
    """A class label without a class list: "2" and "2.0" are the integer 2 (as a model's predict
    answers it in JSON), other text stays text."""
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value
