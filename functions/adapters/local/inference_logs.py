"""core.export.InferenceLogSource on the local endpoints' console logs (the local stand-in for
AmlOnlineEndpointConsoleLog).

Reads every deployment's console log under an endpoints home (the production one), whichever
endpoint serves the model and including deployments deleted since (their logs stay):

    <home>/endpoints/<endpoint>/deployments/<deployment>/console.log

keeps score.py's InputData lines whose service_name is online/<model>/<version>, and explodes each
request's data list into one row per record, in the columns of the export layout the exporter
passes (the model's contract: functions/shared/export_table.py). TimeGenerated is the record's
"time" (score.py stamps one per request, UTC); the deployment is the folder's name. A record whose
keys are not the layout's features (another version's contract) gets its raw JSON in the MISFIT
column, for the exporter to quarantine — never a row of nulls.

What is not an InputData line of this model (server logs, OutputData, other models) is skipped.
What looks like one but cannot be read (broken JSON, no time, data not a list, a record that is
not an object) is counted as malformed, never raised: a line is charged to the slice of its own
"time" when that can still be found in it, else to the slice of the line before it in the same
file (logs are appended in time order), so each line is counted once; up to `MAX_SAMPLES` of them
ride along on the Malformed marker (their text, for the slice's quarantine object). A last line
without its newline is being written and is left for the next run. Values of the wrong type
become null (as the Log Analytics query's todouble() / tostring() make them).

A record whose values Arrow cannot hold — a string with a lone surrogate, which JSON's "\\ud800"
escape makes and UTF-8 cannot encode, in a categorical, the request id, the version or a folder
name — never raises here: the window's rows are then handed over as a list of dicts, and the
exporter (functions.shared.export_table.conform_batch, the one place that decides what cannot be written)
quarantines exactly those records and exports the rest.

Logs are streamed line by line, and a log last written before a window starts is skipped (its
lines are all older: score.py stamps a request before it writes its lines). The rows of one
window are built in memory — a slice of local traffic.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from functions.ports import Malformed
from functions.shared.export_table import META_COLUMNS, MISFIT, ExportLayout, normalize
from functions.shared.names import check_model_name

_TIME = re.compile(rb'"time"\s*:\s*"([^"\\]{10,40})"')
MAX_SAMPLES = 100  # unreadable lines kept per window for the quarantine object (each counted regardless)
MAX_SAMPLE_CHARS = 4096  # of each line's text: enough to see what broke, bounded for a runaway line


class LocalInferenceLogs:
    """InferenceLogSource over the console logs of one local endpoints home."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)

    def logs(self) -> list[tuple[str, Path]]:
        """(deployment, console log) of every deployment under the home, in a stable order."""
        found = sorted((self.home / "endpoints").glob("*/deployments/*/console.log"))
        return [(path.parent.name, path) for path in found]

    def count(self, model: str, start: datetime, end: datetime) -> int:
        columns, _, _ = self._scan(model, start, end, None)
        return len(columns["TimeGenerated"])

    def fetch(self, model: str, start: datetime, end: datetime, layout: ExportLayout) -> Iterator[Any]:
        import pyarrow as pa

        columns, malformed, samples = self._scan(model, start, end, layout)
        if malformed:
            yield Malformed(malformed, "unreadable InputData lines or records in local console logs", tuple(samples))
        if not columns["TimeGenerated"]:
            return
        schema = layout.schema
        misfits = columns.pop(MISFIT)
        try:
            arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
        except (ValueError, TypeError, OverflowError, NotImplementedError):
            # Some record holds a value Arrow refuses (UnicodeEncodeError is a ValueError): the
            # rows as they are, for the exporter to tell the records it cannot write from the rest.
            columns[MISFIT] = misfits
            names = list(columns)
            yield [dict(zip(names, row)) for row in zip(*columns.values())]
            return
        table = normalize(pa.Table.from_arrays(arrays, schema=schema), layout)
        if any(m is not None for m in misfits):
            table = table.append_column(MISFIT, pa.array(misfits, pa.string()))
        yield table

    # -- scanning ---------------------------------------------------------------------------------

    def _scan(self, model: str, start: datetime, end: datetime,
              layout: ExportLayout | None) -> tuple[dict[str, list[Any]], int, list[Any]]:
        """(the window's columns — the meta columns only without a layout —, unreadable
        lines/records counted, samples of them)."""
        check_model_name(model)
        start, end = _utc(start), _utc(end)
        prefix = f"online/{model}/"
        needle = prefix.encode()
        names = layout.columns + (MISFIT,) if layout is not None else META_COLUMNS
        columns: dict[str, list[Any]] = {name: [] for name in names}
        categorical = layout.categorical if layout is not None else ()
        numeric = layout.numeric if layout is not None else ()
        features = frozenset(layout.features) if layout is not None else frozenset()
        malformed = 0
        samples: list[Any] = []
        for deployment, path in self.logs():
            try:
                if path.stat().st_mtime < start.timestamp() - 1:
                    continue  # last written before the window: every line in it is older
                handle = open(path, "rb")
            except OSError:
                continue  # a deployment folder without a log yet, or removed while listing
            previous: datetime | None = None
            with handle:
                lines = iter(handle)  # streamed: a long log is never held whole
                for raw in lines:
                    if not raw.endswith(b"\n"):
                        break  # the last line is still being written: the next run reads it
                    if b"InputData" not in raw or needle not in raw:
                        continue
                    parsed = _parse_line(raw, prefix)
                    if parsed is None:  # a well-formed line of another type or model
                        continue
                    if isinstance(parsed, _Broken):
                        when = parsed.time or previous
                        if when is not None and start <= when < end:
                            malformed += parsed.count
                            if len(samples) < MAX_SAMPLES:
                                samples.append(_sample(raw, deployment))
                        if parsed.time is not None:
                            previous = parsed.time
                        continue
                    when, request_id, version, records, bad = parsed
                    previous = when
                    if not start <= when < end:
                        continue
                    malformed += bad
                    if bad and len(samples) < MAX_SAMPLES:  # a data list with items that are not objects
                        samples.append(_sample(raw, deployment))
                    for index, record in records:
                        columns["TimeGenerated"].append(when)
                        columns["request_id"].append(request_id)
                        columns["model_version"].append(version)
                        columns["deployment"].append(deployment)
                        columns["record_index"].append(index)
                        if layout is None:
                            continue
                        if record.keys() != features:  # not this contract's record: the exporter sets it aside
                            columns[MISFIT].append(json.dumps(record, separators=(",", ":"), ensure_ascii=True))
                            for name in layout.features:
                                columns[name].append(None)
                            continue
                        columns[MISFIT].append(None)
                        for name in categorical:
                            value = record[name]
                            columns[name].append(value if isinstance(value, str) else None)
                        for name in numeric:
                            columns[name].append(_number(record[name]))
        return columns, malformed, samples


def _sample(raw: bytes, deployment: str) -> dict[str, Any]:
    """An unreadable line as the quarantine object keeps it: its text (bytes that are not UTF-8
    as \\x escapes), cut at MAX_SAMPLE_CHARS, and where it was."""
    text = raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    cut = len(text) > MAX_SAMPLE_CHARS
    return {"deployment": deployment, "line": text[:MAX_SAMPLE_CHARS], "truncated": cut}


class _Broken:
    def __init__(self, time: datetime | None, count: int = 1) -> None:
        self.time = time
        self.count = count


def _parse_line(raw: bytes, prefix: str) -> Any:
    """None (not ours), _Broken, or (time, request_id, version, [(index, record)], bad records)."""
    try:
        line = json.loads(raw)
    except ValueError:
        return _Broken(_salvage_time(raw))
    if not isinstance(line, dict):
        return _Broken(_salvage_time(raw))
    service = line.get("service_name")
    if line.get("type") != "InputData" or not isinstance(service, str) or not service.startswith(prefix):
        return None
    when = _time(line.get("time"))
    if when is None:
        return _Broken(None)
    payload = line.get("data")
    try:
        items = json.loads(payload) if isinstance(payload, str) else None
    except ValueError:
        items = None
    if not isinstance(items, list):
        return _Broken(when)
    records = [(i, r) for i, r in enumerate(items) if isinstance(r, dict)]
    request_id = line.get("request_id")
    return when, request_id if isinstance(request_id, str) else "", service[len(prefix):], records, \
        len(items) - len(records)


def _salvage_time(raw: bytes) -> datetime | None:
    found = _TIME.search(raw)
    return _time(found.group(1).decode("ascii", "replace")) if found else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _utc(parsed)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
