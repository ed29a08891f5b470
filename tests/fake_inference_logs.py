"""An evaluator for tests/fake_log_analytics.py that answers the inference-log export's two query
shapes (functions/adapters/azure/inference_logs.py) over the fake's AmlOnlineEndpointConsoleLog
rows, the way Log Analytics would:

    AmlOnlineEndpointConsoleLog
    | where TimeGenerated >= datetime(..) and TimeGenerated < datetime(..)
    | where Message has "InputData" and Message contains "<prefix>"
    | extend m = parse_json(Message)
    | extend mine = tostring(m['type']) == "InputData" and tostring(m['service_name']) startswith_cs "<prefix>"
    | extend d = parse_json(tostring(m['data']))
    then either
    | summarize Messages = countif(mine), Records = sumif(array_length(d), mine),
        Malformed = countif(gettype(m) != "dictionary" or (mine and gettype(d) != "array")),
        Bytes = sumif(strlen(Message), mine)
    or
    | where mine and gettype(d) == "array"
    | mv-expand with_itemindex=record_index rec = d
    | where gettype(rec) == "dictionary"
    [| extend _misfit = iff(array_length(bag_keys(rec)) == N
                            and array_length(set_difference(bag_keys(rec), dynamic(["<key>", ...]))) == 0,
                            "", tostring(rec))]
    | project <name> = <expr>, ...     expr: TimeGenerated | DeploymentName | record_index | _misfit
                                           | tostring(m[<key>]) | substring(tostring(m[<key>]), N)
                                           | tostring(rec[<key>]) | todouble(rec[<key>])
                                           | tostring(todouble(rec[<key>]))
    <key>: a string literal, '…' or "…" with \\ \" \' escapes — any text, as the service's
    bracket accessor takes (https://learn.microsoft.com/kusto/query/scalar-data-types/dynamic:
    dict["key"], a string constant).
    <name>: a column name as the service takes it (checked against the Kusto entity-name rules,
    https://learn.microsoft.com/kusto/query/schema-entities/entity-names): bare, letters, digits
    and '_'; quoted, ['…'] or ["…"], also spaces, '.' and '-'; no other character, even quoted
    (a name with parentheses is refused, as the service refuses it); never beginning or ending
    with "__" (reserved); each name once. ASCII letters only: the docs do not say which others.

Anything else is answered 400 (SemanticError), like the subset evaluator: a query that drifts from
what this evaluator implements fails loudly. Message JSON is parsed here in Python; what goes over
the wire is the rows those operators produce. Departures from the service, on purpose:
- `has` is a case-insensitive whole-term match (Kusto's term index is more subtle for punctuation);
- a real cell is a JSON number as Python writes it (20000.0, 1e+20); tostring(real) is written
  the way .NET prints a double ("20000", "0.1", "1E+20"). The service's exact number and
  tostring formats are not documented: the adapter parses any decimal form;
- the request timespan is applied inclusively at both ends (as the fake does), the KQL bounds
  half-open.
Non-finite reals are NOT a departure: todouble("NaN") / todouble("Infinity") are a real NaN / ±∞ in
Kusto, and the answer carries them as the service writes them, the strings "NaN", "Infinity",
"-Infinity" (cells are encoded by the fake's own encoder, tests/fake_log_analytics/values.py).

Speed: every console row is evaluated once per (query shape, prefix, table state) and its output
rows are kept JSON-encoded, so the benchmark's 1,000,000 rows are served from pre-encoded text
(`precompute(query)` does it ahead of time).
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.fake_log_analytics import CONSOLE_TABLE, FakeLogAnalytics, QueryError, Result, Timespan, kusto_time, \
    parse_time, tokenize
from tests.fake_log_analytics.values import _encode

_STRING = r'"(?:[^"\\]|\\.)*"'
_HEAD = [
    re.compile(re.escape(CONSOLE_TABLE)),
    re.compile(r"\| where TimeGenerated >= datetime\((?P<start>[^)]+)\) "
               r"and TimeGenerated < datetime\((?P<end>[^)]+)\)"),
    re.compile(rf'\| where Message has "InputData" and Message contains (?P<prefix>{_STRING})'),
    re.compile(r"\| extend m = parse_json\(Message\)"),
    re.compile(rf"\| extend mine = tostring\(m\['type'\]\) == \"InputData\" and tostring\(m\['service_name'\]\) "
               rf"startswith_cs (?P<prefix>{_STRING})"),
    re.compile(r"\| extend d = parse_json\(tostring\(m\['data'\]\)\)"),
]
_SUMMARY = ('| summarize Messages = countif(mine), Records = sumif(array_length(d), mine), '
            'Malformed = countif(gettype(m) != "dictionary" or (mine and gettype(d) != "array")), '
            'Bytes = sumif(strlen(Message), mine)')
_FETCH = ['| where mine and gettype(d) == "array"', "| mv-expand with_itemindex=record_index rec = d",
          '| where gettype(rec) == "dictionary"']
_TERM = re.compile(r"(?<![A-Za-z0-9_])inputdata(?![A-Za-z0-9_])", re.IGNORECASE)
_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_LITERAL = r"'(?:[^'\\]|\\.)*'" + "|" + r'"(?:[^"\\]|\\.)*"'
_PROP = rf"\[(?P<key>{_LITERAL})\]"  # m["key"] / rec['key']: any string literal
_QUOTED_NAME = re.compile(r"""\[(?:'(?P<single>[^'\\]*)'|"(?P<double>[^"\\]*)")\]""")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_ .\-]{1,1024}")  # entity names, quoted (bare: no space, '.', '-')
_MISFIT = re.compile(
    r'\| extend _misfit = iff\(array_length\(bag_keys\(rec\)\) == (?P<n>\d+) and '
    r'array_length\(set_difference\(bag_keys\(rec\), dynamic\(\[(?P<keys>.*)\]\)\)\) == 0, "", tostring\(rec\)\)')
_EXPRS = [
    (re.compile(r"TimeGenerated"), "time"),
    (re.compile(r"DeploymentName"), "deployment"),
    (re.compile(r"record_index"), "index_long"),
    (re.compile(r"_misfit"), "misfit"),
    (re.compile(rf"todouble\(rec{_PROP}\)"), "rec_real"),
    (re.compile(rf"tostring\(m{_PROP}\)"), "m"),
    (re.compile(rf"substring\(tostring\(m{_PROP}\), (?P<n>\d+)\)"), "m_sub"),
    (re.compile(rf"tostring\(rec{_PROP}\)"), "rec"),
    (re.compile(rf"tostring\(todouble\(rec{_PROP}\)\)"), "rec_double"),
]


def _literal(text: str) -> str:
    [token] = tokenize(text)
    return token.value


def kusto_tostring(value: Any) -> str:
    """tostring() of a dynamic value: "" for null, JSON text for bags/arrays."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return kusto_real(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def kusto_real(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa.removesuffix('.0')}E{'+' if not exponent.startswith('-') else '-'}{exponent.lstrip('+-')}"
    return text


def kusto_todouble(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def gettype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "dictionary"
    if isinstance(value, list):
        return "array"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "real"
    return "string"


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # Kusto: a dynamic holding the original string


@dataclass
class _Row:
    """One console row, evaluated: what the summary counts and the fetch rows it expands to."""

    candidate: bool  # passes the has/contains pre-filters
    mine: bool
    is_object: bool
    data_is_array: bool
    records: int | None  # array_length(d) when mine
    message_bytes: int
    encoded: list[str]


class InferenceLogEvaluator:
    """`fake.evaluator = InferenceLogEvaluator(fake)`; other queries go to `fallback` (default:
    the fake's subset evaluator)."""

    def __init__(self, fake: FakeLogAnalytics, fallback: Any = None) -> None:
        self.fake = fake
        self.fallback = fallback if fallback is not None else fake.subset_evaluator
        self._cache: dict[tuple, tuple[list[str], list[_Row]]] = {}
        self._lock = threading.Lock()
        self.queries: list[str] = []

    def __call__(self, query: str, timespan: Timespan) -> Result:
        lines = query.split("\n")
        if not lines or lines[0] != CONSOLE_TABLE or len(lines) < len(_HEAD) + 1:
            return self.fallback(query, timespan)
        self.queries.append(query)
        shape = self._shape(lines)
        start, end, prefix = shape["start"], shape["end"], shape["prefix"]
        times, rows = self._evaluate(prefix, shape["projection"])
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_left(times, end)
        span_lo, span_hi = timespan.bounds()
        if span_lo is not None:
            lo = max(lo, bisect.bisect_left(times, span_lo))
        if span_hi is not None:
            hi = min(hi, bisect.bisect_right(times, span_hi))
        selected = rows[lo:max(lo, hi)]
        if shape["kind"] == "summary":
            candidates = [r for r in selected if r.candidate]
            mine = [r for r in candidates if r.mine]
            counts = [
                len(mine),
                sum(r.records for r in mine if r.records is not None),
                sum(1 for r in candidates if not r.is_object or (r.mine and not r.data_is_array)),
                sum(r.message_bytes for r in mine),
            ]
            return Result([("Messages", "long"), ("Records", "long"), ("Malformed", "long"), ("Bytes", "long")],
                          rows=[counts])
        types = {"time": "datetime", "index_long": "long", "rec_real": "real"}
        columns = [(name, types.get(kind, "string")) for name, kind, _ in shape["projection"]]
        encoded = [text for r in selected for text in r.encoded]
        return Result(columns, encoded_rows=encoded)

    def precompute(self, query: str) -> None:
        """Evaluate (and encode) every console row for this query's shape now, not on first use."""
        shape = self._shape(query.split("\n"))
        self._evaluate(shape["prefix"], shape["projection"])

    # parsing the query
    def _shape(self, lines: list[str]) -> dict[str, Any]:
        found: dict[str, str] = {}
        for pattern, line in zip(_HEAD, lines):
            match = pattern.fullmatch(line)
            if not match:
                raise QueryError(f"The fake inference-log evaluator does not support {line!r}", code="SemanticError")
            found.update({k: v for k, v in match.groupdict().items() if k != "prefix"})
            if "prefix" in match.groupdict():
                prefix = _literal(match.group("prefix"))
                if found.setdefault("prefix", prefix) != prefix:
                    raise QueryError("the two model prefixes differ", code="SemanticError")
        rest = lines[len(_HEAD):]
        shape: dict[str, Any] = {
            "start": kusto_time(parse_time(found["start"])), "end": kusto_time(parse_time(found["end"])),
            "prefix": found["prefix"],
        }
        if rest == [_SUMMARY]:
            shape.update(kind="summary", projection=())
            return shape
        if rest[:3] != _FETCH or len(rest) < 4:
            raise QueryError(f"The fake inference-log evaluator does not support {rest!r}", code="SemanticError")
        misfit = None
        at = 3
        if rest[3].startswith("| extend "):
            match = _MISFIT.fullmatch(rest[3])
            if not match:
                raise QueryError(f"The fake inference-log evaluator does not support {rest[3]!r}",
                                 code="SemanticError")
            keys = _literal_list(match.group("keys"))
            misfit = (("keys", json.dumps(keys)), ("n", match.group("n")))
            at = 4
        if len(rest) <= at or not rest[at].startswith("| project "):
            raise QueryError(f"The fake inference-log evaluator does not support {rest!r}", code="SemanticError")
        text = " ".join(line.strip() for line in rest[at:])[len("| project "):]
        shape.update(kind="fetch", projection=tuple(self._projection(text, misfit)))
        return shape

    @staticmethod
    def _projection(text: str, misfit: tuple | None = None) -> list[tuple[str, str, tuple]]:
        out = []
        for item in _split_commas(text):
            item = item.strip()
            name, _, expr = item.partition(" = ")
            if not expr:
                name, expr = item, item
            name = _column_name(name, item)
            if name in {n for n, _, _ in out}:
                raise QueryError(f"A column named {name!r} is already defined", code="SemanticError")
            for pattern, kind in _EXPRS:
                match = pattern.fullmatch(expr)
                if match:
                    args = {k: _literal(v) if k == "key" else v for k, v in match.groupdict().items()}
                    if kind == "misfit":
                        if misfit is None:
                            raise QueryError("Failed to resolve scalar expression named '_misfit'",
                                             code="SemanticError")
                        args = dict(misfit)
                    out.append((name, kind, tuple(sorted(args.items()))))
                    break
            else:
                raise QueryError(f"The fake inference-log evaluator does not support {expr!r}", code="SemanticError")
        return out

    # evaluating the rows
    def _evaluate(self, prefix: str, projection: tuple) -> tuple[list[str], list[_Row]]:
        table = self.fake.table(CONSOLE_TABLE)
        rows, times = table.prepare()
        key = (prefix, projection, id(rows), len(rows))
        with self._lock:
            cached = self._cache.get(key)
            if cached is None and not projection:  # a summary: any evaluation of this prefix will do
                cached = next((v for k, v in self._cache.items() if k[0] == prefix and k[2:] == key[2:]), None)
            if cached is not None:
                return cached
            index = table.index
            time_i, message_i, deployment_i = index["TimeGenerated"], index["Message"], index["DeploymentName"]
            folded = prefix.casefold()
            evaluated = []
            for row in rows:
                message = row[message_i] or ""
                candidate = bool(_TERM.search(message)) and folded in message.casefold()
                if not candidate:
                    evaluated.append(_Row(False, False, True, False, None, 0, []))
                    continue
                m = parse_json(message)
                is_object = isinstance(m, dict)
                mine = is_object and kusto_tostring(m.get("type")) == "InputData" and \
                    kusto_tostring(m.get("service_name")).startswith(prefix)
                d = parse_json(kusto_tostring(m.get("data"))) if is_object else None
                data_is_array = isinstance(d, list)
                encoded = []
                if mine and data_is_array and projection:
                    for i, rec in enumerate(d):
                        if isinstance(rec, dict):
                            cells = [self._cell(kind, dict(args), row, time_i, deployment_i, m, i, rec)
                                     for _, kind, args in projection]
                            encoded.append(_encode(cells))  # non-finite reals as the service writes them
                evaluated.append(_Row(True, mine, is_object, data_is_array, len(d) if mine and data_is_array else None,
                                      len(message), encoded))
            result = (list(times), evaluated)
            self._cache = {k: v for k, v in self._cache.items() if k[2:] == key[2:]}  # drop stale table states
            self._cache[key] = result
            return result

    @staticmethod
    def _cell(kind: str, args: dict[str, str], row: list, time_i: int, deployment_i: int, m: dict, index: int,
              rec: dict) -> Any:
        if kind == "time":
            return row[time_i]
        if kind == "deployment":
            return row[deployment_i] or ""
        if kind == "index":
            return str(index)
        if kind == "m":
            return kusto_tostring(m.get(args["key"]))
        if kind == "m_sub":
            return kusto_tostring(m.get(args["key"]))[int(args["n"]):]
        if kind == "rec":
            return kusto_tostring(rec.get(args["key"]))
        if kind == "index_long":
            return index
        if kind == "misfit":
            keys = json.loads(args["keys"])
            fits = len(rec) == int(args["n"]) and not set(rec) - set(keys)
            return "" if fits else kusto_tostring(rec)
        number = kusto_todouble(rec.get(args["key"]))
        if kind == "rec_real":
            return number  # NaN and ±∞ stay what they are: a real, sent as "NaN" / "Infinity" / "-Infinity"
        return "" if number is None else kusto_real(number)


def _column_name(name: str, item: str) -> str:
    """A projected column's name as the service takes it (see the module docstring), unquoted."""
    quoted = _QUOTED_NAME.fullmatch(name)
    if quoted:
        name = quoted.group("single") if quoted.group("single") is not None else quoted.group("double")
        valid = bool(_NAME_CHARS.fullmatch(name))
    else:
        valid = bool(re.fullmatch(_KEY, name))
    if not valid or name.startswith("__") or name.endswith("__"):
        raise QueryError(f"Invalid column name in projection {item!r}", code="SyntaxError")
    return name


def _literal_list(text: str) -> list[str]:
    """The string literals of a dynamic([...]) array, in order (only strings, comma-separated)."""
    tokens = tokenize(text)
    if not tokens:
        return []
    out = []
    for i, token in enumerate(tokens):
        if i % 2 == 0:
            if token.kind != "string":
                raise QueryError(f"The fake inference-log evaluator supports string arrays only, got {token.value!r}",
                                 code="SemanticError")
            out.append(token.value)
        elif (token.kind, token.value) != ("op", ","):
            raise QueryError(f"Unexpected {token.value!r} in a dynamic array", code="SyntaxError")
    if len(tokens) % 2 == 0:
        raise QueryError("A dynamic array ends with ','", code="SyntaxError")
    return out


def _split_commas(text: str) -> list[str]:
    """Split on top-level commas (not inside parentheses, brackets or string literals)."""
    parts, depth, current, quote, escaped = [], 0, [], None, False
    for ch in text:
        if quote:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def input_line(model: str, version: str, request_id: str, records: list[dict[str, Any]],
               at: datetime | None = None) -> str:
    """A console line exactly as ml/score.py writes it for an InputData record."""
    line = {"service_name": f"online/{model}/{version}", "type": "InputData", "request_id": request_id,
            "data": json.dumps(records, separators=(",", ":"))}
    if at is not None:
        line["time"] = at.isoformat()
    return json.dumps(line, separators=(",", ":"))
