"""Values as the fake Log Analytics service reads and writes them: datetimes, the request's
timespan, and the JSON encoding of cells and answers.

Value encoding follows the service: datetimes as ISO 8601 UTC with 7 fractional digits and "Z";
missing strings as "" (Kusto strings are never null); missing numbers/datetimes as null; NaN and
±infinity reals as the strings "NaN", "Infinity", "-Infinity" (see `_make_encoder`); dynamic
values as JSON text, which is how we understand the v1 API to return dynamic cells (not verified
against a live workspace; `dynamic_as_text=False` sends native JSON instead).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from json.encoder import c_make_encoder, encode_basestring
from typing import Any


def kusto_time(value: datetime | str) -> str:
    """Canonical datetime text: UTC, 7 fractional digits, "Z" (fixed width, so it sorts in time
    order as a string — the tables compare and bisect these strings directly)."""
    if isinstance(value, str):
        value = parse_time(value)
    if value.tzinfo is timezone.utc:
        value = value.replace(tzinfo=None)
    elif value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "0Z"


def parse_time(text: str) -> datetime:
    """ISO 8601 (any fraction length, "Z" or offset, or none = UTC) → aware UTC datetime."""
    text = text.strip()
    match = re.fullmatch(r"(.*?\.\d{6})\d+(Z|[+-]\d\d:?\d\d)?", text)
    if match:  # more than microseconds: fromisoformat wants at most 6 digits on some versions
        text = match.group(1) + (match.group(2) or "")
    value = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text and " " in text else text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_duration(text: str) -> timedelta:
    """ISO 8601 duration as the SDK sends it ("PT3600.0S") and the usual P…DT…H…M…S forms."""
    match = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                         text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Timespan:
    """The request's `timespan`, resolved: `start`/`end` are aware UTC datetimes or None."""

    raw: str | None
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(cls, raw: str | None, now: datetime | None = None) -> Timespan:
        if raw is None or raw == "":
            return cls(raw=None)
        now = now or datetime.now(timezone.utc)
        if "/" in raw:
            left, right = raw.split("/", 1)
            if left.startswith("P"):
                end = parse_time(right)
                return cls(raw, end - parse_duration(left), end)
            start = parse_time(left)
            end = start + parse_duration(right) if right.startswith("P") else parse_time(right)
            return cls(raw, start, end)
        return cls(raw, now - parse_duration(raw), now)

    def bounds(self) -> tuple[str | None, str | None]:
        return (kusto_time(self.start) if self.start else None, kusto_time(self.end) if self.end else None)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return kusto_time(value)
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a Log Analytics result")


def _make_encoder() -> Callable[[Any], str]:
    """The C JSON encoder with compact separators, called directly: ~2x faster per row than
    json.dumps(..., separators=...) which rebuilds an encoder each call.

    Non-finite reals are written as the service writes them: the JSON strings "NaN", "Infinity"
    and "-Infinity" (JSON has no such numbers; Python's NaN/Infinity tokens are not JSON at all).
    Checked against Microsoft's own client, azure-kusto-data (azure/kusto/data/helpers.py,
    parse_float used by dataframe_from_result_table), which maps exactly these three strings
    back to floats in real columns; Kusto's real type has NaN and ±inf values (real(nan),
    real(+inf), real(-inf) in the Kusto docs). The encoder refuses them (allow_nan=False) and the
    value is encoded again with them as text: the usual row pays nothing."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C accelerator
        strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default,
                                  allow_nan=False).encode
    else:
        c_encode = c_make_encoder(None, _json_default, encode_basestring, None, ":", ",", False, False, False)

        def strict(value: Any) -> str:
            return "".join(c_encode(value, 0))

    def encode(value: Any) -> str:
        try:
            return strict(value)
        except ValueError:  # "Out of range float values are not JSON compliant"
            return strict(_non_finite_as_text(value))

    return encode


def _non_finite_as_text(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [_non_finite_as_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _non_finite_as_text(v) for k, v in value.items()}
    return value


_encode = _make_encoder()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
