"""The fake Log Analytics service's default evaluator: `SubsetEvaluator`, over the fake's tables.

It does NOT implement KQL. It holds in-memory tables (`TRAFFIC_TABLE`, `CONSOLE_TABLE`, or any
table registered with `create_table`) and hands each query to `fake.evaluator(query, timespan)`,
which returns the result (`Result`, or a `(columns, rows)` tuple). Tests may plug in their own.
The default, `SubsetEvaluator`, understands a small, explicit subset — enough for the adapters'
own queries — and answers 400 (SemanticError, naming the construct) for anything else, so an
adapter whose query drifts outside the subset fails loudly instead of being misread:

    <Table>
    | where <pred> [and <pred> ...]          pred: Col OP literal | fn(Col) OP literal | isempty(Col) …
                                              OP: == != =~ !~ < <= > >= contains !contains has
                                                  startswith in !in ; fn: toint tolong todouble
                                                  toreal tostring ; literals: "…", '…', @"…",
                                                  numbers, true/false, datetime(…)
    | summarize [Name =] agg(...), ... [by Col, ...]   agg: count() countif(pred) sum avg min max
                                                            percentile(Col, p) dcount(Col)
    | project Col, Alias = Col, ...   | order by Col [asc|desc], ...   | take N / limit N   | count

Known departures from the service (on purpose, documented here rather than hidden):
- the request `timespan` is applied to TimeGenerated with both ends INCLUSIVE: the service's
  exact boundary handling is not documented, so an adapter that needs a half-open window must
  say so in its KQL (and a test can catch one that does not);
- `percentile` is exact nearest-rank; Kusto estimates it (T-Digest, rank error ≤ ~1 %);
- `has` is a case-insensitive substring test, not Kusto's term index match;
- `or`, parentheses, `extend`, joins, `let`, functions other than those above: unsupported (400).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fake_log_analytics.results import QueryError, Result
from tests.fake_log_analytics.tables import LogTable, _time_slice
from tests.fake_log_analytics.values import Timespan, _encode, _number, kusto_time, parse_time

# --- the KQL subset ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<op>==|!=|=~|!~|<=|>=|\.\.|[|(),=<>\[\]])
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|!(?:contains|has|in|startswith)\b)
""", re.VERBOSE)

_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class Tok:
    kind: str  # ident | op | number | string | datetime
    value: Any
    pos: int


def tokenize(query: str) -> list[Tok]:
    """KQL tokens for the subset: string literals are decoded (so escaped quotes and
    backslashes round-trip), datetime(...) is one token, // comments are dropped."""
    tokens: list[Tok] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        prefix_verbatim = ch == "@" and i + 1 < n and query[i + 1] in "\"'"
        prefix_hidden = ch in "hH" and i + 1 < n and query[i + 1] in "\"'"  # h"…": obfuscated literal
        if ch in "\"'" or prefix_verbatim or prefix_hidden:
            start = i
            if prefix_verbatim or prefix_hidden:
                i += 1
            quote = query[i]
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise QueryError(f"Unterminated string literal at position {start}", code="SyntaxError")
                c = query[i]
                if c == quote:
                    if prefix_verbatim and i + 1 < n and query[i + 1] == quote:
                        out.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                if c == "\\" and not prefix_verbatim:
                    if i + 1 >= n or query[i + 1] not in _ESCAPES:
                        raise QueryError(f"Unknown escape in string literal at position {i}", code="SyntaxError")
                    out.append(_ESCAPES[query[i + 1]])
                    i += 2
                    continue
                if c == "\n" and not prefix_verbatim:
                    raise QueryError(f"Newline inside string literal at position {i}", code="SyntaxError")
                out.append(c)
                i += 1
            tokens.append(Tok("string", "".join(out), start))
            continue
        match = _TOKEN.match(query, i)
        if not match:
            raise QueryError(f"Query could not be parsed at {query[i:i + 20]!r} (position {i})", code="SyntaxError")
        kind = match.lastgroup
        text = match.group()
        if kind == "ident" and text in ("datetime", "todatetime") and query[match.end():].lstrip().startswith("("):
            open_at = query.index("(", match.end())
            close_at = query.find(")", open_at)
            if close_at < 0:
                raise QueryError("Unterminated datetime(...) literal", code="SyntaxError")
            inner = query[open_at + 1:close_at].strip()
            if inner.startswith(("'", '"')):
                inner = inner[1:-1]
            try:
                tokens.append(Tok("datetime", kusto_time(parse_time(inner)), match.start()))
            except ValueError as exc:
                raise QueryError(f"Invalid datetime literal {inner!r}: {exc}", code="SyntaxError") from None
            i = close_at + 1
            continue
        if kind == "number":
            tokens.append(Tok("number", float(text) if any(c in text for c in ".eE") else int(text), match.start()))
        elif kind in ("op", "ident"):
            tokens.append(Tok(kind, text, match.start()))
        i = match.end()
    return tokens


class _Stream:
    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> Tok | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("Unexpected end of query", code="SyntaxError")
        self.i += 1
        return tok

    def accept(self, kind: str, value: Any = None) -> Tok | None:
        tok = self.peek()
        if tok is not None and tok.kind == kind and (value is None or str(tok.value).lower() == value):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, value: Any = None) -> Tok:
        tok = self.accept(kind, value)
        if tok is None:
            got = self.peek()
            raise QueryError(f"Expected {value or kind}, got {got.value if got else 'end of query'!r}",
                             code="SyntaxError")
        return tok

    def done(self) -> bool:
        return self.i >= len(self.tokens)


_CASTS = {"toint": "int", "tolong": "long", "todouble": "real", "toreal": "real", "tostring": "string"}
_COMPARE = {"==", "!=", "=~", "!~", "<", "<=", ">", ">=", "contains", "!contains", "has", "!has",
            "startswith", "!startswith", "in", "!in"}


@dataclass
class _Expr:
    """A column reference, optionally cast: evaluates against a row list."""

    column: str
    index: int
    kind: str
    cast: str | None = None

    def value(self, row: Sequence[Any]) -> Any:
        v = row[self.index]
        if self.cast is None or v is None:
            return v
        try:
            if self.cast in ("int", "long"):
                return int(float(v)) if isinstance(v, str) else int(v)
            if self.cast == "real":
                return float(v)
            return v if isinstance(v, str) else _encode(v) if isinstance(v, (dict, list)) else str(v)
        except (TypeError, ValueError):
            return None

    @property
    def out_kind(self) -> str:
        return self.cast or self.kind


class SubsetEvaluator:
    """Evaluates the documented KQL subset over `tables` (see the module docstring)."""

    def __init__(self, tables: Mapping[str, LogTable]) -> None:
        self.tables = tables

    def __call__(self, query: str, timespan: Timespan) -> Result:
        stages = _split_pipes(tokenize(query))
        if not stages or len(stages[0]) != 1 or stages[0][0].kind != "ident":
            raise QueryError("A query must start with a table name", code="SyntaxError")
        name = stages[0][0].value
        table = self.tables.get(name)
        if table is None:  # the service names the first operator applied to it, as here
            operator = f"'{stages[1][0].value}' operator: " if len(stages) > 1 and stages[1] else ""
            raise QueryError(f"{operator}Failed to resolve table or column expression named '{name}'",
                             inner_code="SEM0100")
        rows, times = table.prepare()
        lo, hi = _time_slice(times, timespan.bounds(), len(rows))
        selection: range | list[int] = range(lo, hi)
        columns = list(table.columns)
        index = dict(table.index)
        data: list[list[Any]] | None = None  # None → still the table's own rows (selection)
        for stage in stages[1:]:
            s = _Stream(stage)
            op = s.next()
            keyword = str(op.value).lower()
            if keyword == "where":
                if data is not None:
                    pred = self._predicate(s, columns, index)
                    data = [r for r in data if pred(r)]
                else:
                    selection = self._where(s, table, rows, times, selection, columns, index)
            elif keyword == "summarize":
                base = data if data is not None else [rows[i] for i in selection]
                columns, data = self._summarize(s, columns, index, base)
                index = {c: i for i, (c, _) in enumerate(columns)}
            elif keyword == "project":
                base = data if data is not None else [rows[i] for i in selection]
                columns, data = self._project(s, columns, index, base)
                index = {c: i for i, (c, _) in enumerate(columns)}
            elif keyword in ("order", "sort"):
                s.expect("ident", "by")
                if data is None:
                    selection = self._order_selection(s, columns, index, rows, selection, table)
                else:
                    data = self._order_rows(s, columns, index, data)
            elif keyword in ("take", "limit"):
                count = s.expect("number").value
                if data is None:
                    selection = selection[:int(count)]
                else:
                    data = data[:int(count)]
            elif keyword == "count":
                total = len(data) if data is not None else len(selection)
                columns, data = [("Count", "long")], [[total]]
                index = {"Count": 0}
            else:
                raise QueryError(f"The fake evaluator does not support the '{op.value}' operator",
                                 code="SemanticError")
            if not s.done():
                raise QueryError(f"Unexpected {s.peek().value!r} in '{op.value}'", code="SyntaxError")
        if data is not None:
            return Result(columns, rows=data)
        encoded = table.encoded()
        if isinstance(selection, range) and selection.step == 1:
            return Result(columns, encoded_rows=encoded[selection.start:selection.stop])
        return Result(columns, encoded_rows=[encoded[i] for i in selection])

    # where
    def _where(self, s: _Stream, table: LogTable, rows: list, times: list[str], selection: range | list[int],
               columns: list, index: dict) -> range | list[int]:
        predicates = self._conjunction(s, columns, index)
        rest: list[Callable[[Sequence[Any]], bool]] = []
        for pred in predicates:
            bound = pred.time_bound if isinstance(selection, range) else None
            if bound is not None and table.time_index is not None:
                op, text = bound
                lo, hi = selection.start, selection.stop
                if op == ">=":
                    lo = max(lo, bisect.bisect_left(times, text, lo, hi))
                elif op == ">":
                    lo = max(lo, bisect.bisect_right(times, text, lo, hi))
                elif op == "<":
                    hi = min(hi, bisect.bisect_left(times, text, lo, hi))
                elif op == "<=":
                    hi = min(hi, bisect.bisect_right(times, text, lo, hi))
                selection = range(lo, max(lo, hi))
            else:
                rest.append(pred)
        if rest:
            selection = [i for i in selection if all(p(rows[i]) for p in rest)]
        return selection

    def _predicate(self, s: _Stream, columns: list, index: dict) -> Callable:
        predicates = self._conjunction(s, columns, index)
        return lambda row: all(p(row) for p in predicates)

    def _conjunction(self, s: _Stream, columns: list, index: dict) -> list[_Pred]:
        predicates = [self._one_predicate(s, columns, index)]
        while s.accept("ident", "and"):
            predicates.append(self._one_predicate(s, columns, index))
        tok = s.peek()
        if tok is not None and tok.kind == "ident" and str(tok.value).lower() == "or":
            raise QueryError("The fake evaluator does not support 'or'", code="SemanticError")
        return predicates

    def _expr(self, s: _Stream, columns: list, index: dict) -> _Expr:
        tok = s.expect("ident")
        cast = None
        name = tok.value
        if name in _CASTS and s.accept("op", "("):
            cast = _CASTS[name]
            name = s.expect("ident").value
            s.expect("op", ")")
        if name not in index:
            raise QueryError(f"Failed to resolve scalar expression named '{name}'", inner_code="SEM0100")
        return _Expr(name, index[name], columns[index[name]][1], cast)

    def _literal(self, s: _Stream) -> Any:
        tok = s.next()
        if tok.kind in ("string", "number", "datetime"):
            return tok.value
        if tok.kind == "ident" and tok.value in ("true", "false"):
            return tok.value == "true"
        raise QueryError(f"Expected a literal, got {tok.value!r}", code="SyntaxError")

    def _one_predicate(self, s: _Stream, columns: list, index: dict) -> _Pred:
        tok = s.peek()
        if tok is not None and tok.kind == "ident" and tok.value in ("isempty", "isnotempty", "isnull", "isnotnull"):
            s.next()
            s.expect("op", "(")
            expr = self._expr(s, columns, index)
            s.expect("op", ")")
            fn = tok.value
            if fn == "isnull":
                return _Pred(lambda r: expr.value(r) is None)
            if fn == "isnotnull":
                return _Pred(lambda r: expr.value(r) is not None)
            if fn == "isempty":
                return _Pred(lambda r: expr.value(r) in (None, ""))
            return _Pred(lambda r: expr.value(r) not in (None, ""))
        expr = self._expr(s, columns, index)
        op_tok = s.next()
        op = str(op_tok.value).lower() if op_tok.kind == "ident" else op_tok.value
        if op not in _COMPARE:
            raise QueryError(f"The fake evaluator does not support the operator {op_tok.value!r}", code="SemanticError")
        if op in ("in", "!in"):
            s.expect("op", "(")
            values = [self._literal(s)]
            while s.accept("op", ","):
                values.append(self._literal(s))
            s.expect("op", ")")
            member = set(values)
            return _Pred((lambda r: expr.value(r) in member) if op == "in" else (lambda r: expr.value(r) not in member))
        literal = self._literal(s)
        kind = expr.out_kind
        if kind == "datetime" and isinstance(literal, str) and not _is_canonical_time(literal):
            raise QueryError(f"Cannot compare datetime column {expr.column} with a string; use datetime(...)")
        if kind in ("int", "long", "real") and not isinstance(literal, (int, float)):
            raise QueryError(f"Cannot compare {kind} column {expr.column} with {type(literal).__name__}")
        if kind == "string" and op in ("<", "<=", ">", ">=") :
            raise QueryError(f"Ordering comparison on string column {expr.column} is not supported")
        pred = _Pred(_comparison(expr, op, literal))
        if expr.column == "TimeGenerated" and expr.cast is None and op in ("<", "<=", ">", ">="):
            pred.time_bound = (op, literal)
        return pred

    # summarize
    def _summarize(self, s: _Stream, columns: list, index: dict, base: list[list[Any]]) -> tuple[list, list]:
        aggregates: list[tuple[str, str, Callable[[list], Any]]] = []
        while True:
            alias = None
            if s.peek(1) is not None and s.peek(1).kind == "op" and s.peek(1).value == "=" and s.peek().kind == "ident":
                alias = s.next().value
                s.next()
            fn_tok = s.expect("ident")
            fn = fn_tok.value
            s.expect("op", "(")
            aggregates.append(self._aggregate(fn, alias, s, columns, index))
            if not s.accept("op", ","):
                break
        by: list[_Expr] = []
        if s.accept("ident", "by"):
            by.append(self._expr(s, columns, index))
            while s.accept("op", ","):
                by.append(self._expr(s, columns, index))
        out_columns = [(e.column, e.out_kind) for e in by] + [(name, kind) for name, kind, _ in aggregates]
        if not by:
            return out_columns, [[agg(base) for _, _, agg in aggregates]]
        groups: dict[tuple, list] = {}
        for row in base:
            groups.setdefault(tuple(e.value(row) for e in by), []).append(row)
        return out_columns, [list(key) + [agg(members) for _, _, agg in aggregates] for key, members in groups.items()]

    def _aggregate(self, fn: str, alias: str | None, s: _Stream, columns: list, index: dict):
        if fn == "count":
            s.expect("op", ")")
            return alias or "count_", "long", len
        if fn == "countif":
            pred = self._predicate(s, columns, index)
            s.expect("op", ")")
            return alias or "countif_", "long", lambda rows: sum(1 for r in rows if pred(r))
        expr = self._expr(s, columns, index)
        if fn == "percentile":
            s.expect("op", ",")
            q = s.expect("number").value
            s.expect("op", ")")
            kind = "real" if expr.out_kind == "real" else "long"
            return (alias or f"percentile_{expr.column}_{_number(q)}", kind,
                    lambda rows: _nearest_rank([expr.value(r) for r in rows], q))
        s.expect("op", ")")
        if fn == "dcount":
            return alias or f"dcount_{expr.column}", "long", lambda rows: len({expr.value(r) for r in rows} - {None})
        if fn in ("sum", "min", "max", "avg"):
            kind = "real" if fn == "avg" else expr.out_kind if fn in ("min", "max") else (
                "real" if expr.out_kind == "real" else "long")

            def agg(rows: list, fn: str = fn) -> Any:
                values = [v for v in (expr.value(r) for r in rows) if v is not None]
                if not values:
                    return 0 if fn == "sum" else None
                return {"sum": sum, "min": min, "max": max}[fn](values) if fn != "avg" else sum(values) / len(values)
            return alias or f"{fn}_{expr.column}", kind, agg
        raise QueryError(f"The fake evaluator does not support the aggregation '{fn}'", code="SemanticError")

    # project / order
    def _project(self, s: _Stream, columns: list, index: dict, base: list[list[Any]]) -> tuple[list, list]:
        exprs: list[tuple[str, _Expr]] = []
        while True:
            alias = None
            if s.peek(1) is not None and s.peek(1).kind == "op" and s.peek(1).value == "=":
                alias = s.expect("ident").value
                s.next()
            expr = self._expr(s, columns, index)
            exprs.append((alias or expr.column, expr))
            if not s.accept("op", ","):
                break
        out_columns = [(name, e.out_kind) for name, e in exprs]
        if all(e.cast is None for _, e in exprs):
            picks = [e.index for _, e in exprs]
            return out_columns, [[row[i] for i in picks] for row in base]
        return out_columns, [[e.value(row) for _, e in exprs] for row in base]

    def _order_keys(self, s: _Stream, columns: list, index: dict) -> list[tuple[_Expr, bool]]:
        keys = []
        while True:
            expr = self._expr(s, columns, index)
            descending = True  # Kusto's default order is descending
            if s.accept("ident", "asc"):
                descending = False
            elif s.accept("ident", "desc"):
                descending = True
            keys.append((expr, descending))
            if not s.accept("op", ","):
                break
        return keys

    def _order_selection(self, s: _Stream, columns: list, index: dict, rows: list, selection: range | list[int],
                         table: LogTable) -> range | list[int]:
        keys = self._order_keys(s, columns, index)
        if len(keys) == 1 and keys[0][0].column == "TimeGenerated" and keys[0][0].cast is None \
                and isinstance(selection, range):
            return selection if not keys[0][1] else list(reversed(selection))
        ordered = list(selection)
        for expr, descending in reversed(keys):  # stable sorts, last key first
            ordered.sort(key=lambda i: _sort_key(expr.value(rows[i])), reverse=descending)
        return ordered

    def _order_rows(self, s: _Stream, columns: list, index: dict, data: list[list[Any]]) -> list[list[Any]]:
        keys = self._order_keys(s, columns, index)
        for expr, descending in reversed(keys):
            data = sorted(data, key=lambda r: _sort_key(expr.value(r)), reverse=descending)
        return data


@dataclass
class _Pred:
    fn: Callable[[Sequence[Any]], bool]
    time_bound: tuple[str, str] | None = None

    def __call__(self, row: Sequence[Any]) -> bool:
        return self.fn(row)


def _comparison(expr: _Expr, op: str, literal: Any) -> Callable[[Sequence[Any]], bool]:
    value = expr.value
    if op == "==":
        return lambda r: value(r) == literal
    if op == "!=":
        return lambda r: (v := value(r)) is not None and v != literal
    if op in ("=~", "!~"):
        folded = str(literal).casefold()
        if op == "=~":
            return lambda r: isinstance(v := value(r), str) and v.casefold() == folded
        return lambda r: isinstance(v := value(r), str) and v.casefold() != folded
    if op in ("contains", "!contains", "has", "!has"):
        folded = str(literal).casefold()
        if op.startswith("!"):
            return lambda r: isinstance(v := value(r), str) and folded not in v.casefold()
        return lambda r: isinstance(v := value(r), str) and folded in v.casefold()
    if op in ("startswith", "!startswith"):
        folded = str(literal).casefold()
        if op == "startswith":
            return lambda r: isinstance(v := value(r), str) and v.casefold().startswith(folded)
        return lambda r: isinstance(v := value(r), str) and not v.casefold().startswith(folded)
    compare = {"<": lambda a: a < literal, "<=": lambda a: a <= literal,
               ">": lambda a: a > literal, ">=": lambda a: a >= literal}[op]
    return lambda r: (v := value(r)) is not None and compare(v)


def _nearest_rank(values: list[Any], q: float) -> Any:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    rank = max(1, math.ceil(q / 100 * len(present)))
    return present[min(rank, len(present)) - 1]


def _sort_key(value: Any) -> tuple:
    return (value is None, value if value is not None else 0)


def _is_canonical_time(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", text))


def _split_pipes(tokens: list[Tok]) -> list[list[Tok]]:
    stages: list[list[Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.value == "(":
            depth += 1
        elif tok.kind == "op" and tok.value == ")":
            depth -= 1
        if tok.kind == "op" and tok.value == "|" and depth == 0:
            stages.append([])
        else:
            stages[-1].append(tok)
    if any(not stage for stage in stages):
        raise QueryError("Empty pipeline stage", code="SyntaxError")
    return stages
