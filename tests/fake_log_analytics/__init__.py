"""A fake Azure Monitor Log Analytics query service: a real HTTP server on 127.0.0.1.

It speaks the query REST API the way azure-monitor-query 2.x calls it, so adapters are tested
through the real `LogsQueryClient` (its pipeline, auth policy, retries and deserialisation).
The parts, each documenting what it was checked against:

    server.py   the HTTP server: the REST API, result limits, injected faults, recorded requests
    tables.py   the in-memory tables (TRAFFIC_TABLE, CONSOLE_TABLE, or any `create_table`)
    kql.py      the default evaluator, `SubsetEvaluator`: the KQL subset and its known departures
    results.py  what an evaluator returns (`Result`) or raises (`QueryError`), error bodies
    values.py   values as the service writes them: datetimes, timespans, JSON (NaN, ±infinity)

Point the client at it with `LogsQueryClient(cred, endpoint=fake.url)` and pass
`enforce_https=False` per call (the bearer policy refuses plain http otherwise).

Speed (the inference-log export reads ~1,000,000 rows through it): table rows are kept sorted by
TimeGenerated, so time predicates on TimeGenerated (and the timespan) cut a contiguous slice by
bisection; each stored row is JSON-encoded once (lazily, on the first query that needs it; rows
appended in time order keep the earlier encodings) and whole-row results are written by joining
those pre-encoded rows; other results are encoded in batches by
the C encoder. The body is streamed with chunked transfer encoding, so a large result is never
held in memory twice.

Test controls:
    fake = FakeLogAnalytics(workspace_ids={"ws"})     # None → any workspace id; others answer 404
    with fake: ...                                    # or fake.start() / fake.stop(); fake.url
    fake.add_rows(TRAFFIC_TABLE, [{"TimeGenerated": dt, "EndpointName": "credit", ...}, ...])
    fake.create_table("MyTable_CL", [("TimeGenerated", "datetime"), ("Props", "dynamic")])
    fake.clear_rows()                                 # all tables (or one by name)
    fake.evaluator = my_fn                            # (query, Timespan) -> Result | (columns, rows)
    fake.evaluator = fake.subset_evaluator            # back to the built-in one
    fake.table(TRAFFIC_TABLE).records(timespan)       # rows as dicts, for a custom evaluator
    fake.row_limit, fake.byte_limit = 1000, None      # service limits (None lifts them)
    fake.fail_next(503, times=3, retry_after=0)       # HTTP failures (LA error body by default;
    fake.fail_next(400, body={"error": {...}})        #   times=None: until clear_faults())
    fake.partial_next(keep_rows=10)                   # 200 + rows + PartialError
    fake.delay_next(2.0)                              # answer late (client read timeouts)
    fake.query_timeout_rows = 1000                    # 504 GatewayTimeout for a query reading more rows
                                                      #   (× wait/180 with Prefer: wait); clear_faults() lifts it
    fake.requests / fake.queries / fake.last          # RecordedRequest: .query .timespan .workspace_id
                                                      #   .headers .header(name) .body .status
    fake.errors                                       # evaluator crashes (answered 500): assert empty
    fake.table(CONSOLE_TABLE).encoded()               # pre-encode rows now (else on first query)
"""

from tests.fake_log_analytics.kql import SubsetEvaluator, Tok, tokenize
from tests.fake_log_analytics.results import QueryError, Result, error_body, gateway_timeout_body, limit_error
from tests.fake_log_analytics.server import (
    BYTE_LIMIT,
    DEFAULT_STATUS_BODIES,
    ROW_LIMIT,
    Evaluator,
    FakeLogAnalytics,
    Fault,
    RecordedRequest,
)
from tests.fake_log_analytics.tables import (
    COLUMN_TYPES,
    CONSOLE_COLUMNS,
    CONSOLE_TABLE,
    TRAFFIC_COLUMNS,
    TRAFFIC_TABLE,
    LogTable,
)
from tests.fake_log_analytics.values import Timespan, kusto_time, parse_duration, parse_time

__all__ = [
    "BYTE_LIMIT",
    "COLUMN_TYPES",
    "CONSOLE_COLUMNS",
    "CONSOLE_TABLE",
    "DEFAULT_STATUS_BODIES",
    "Evaluator",
    "FakeLogAnalytics",
    "Fault",
    "LogTable",
    "QueryError",
    "ROW_LIMIT",
    "RecordedRequest",
    "Result",
    "SubsetEvaluator",
    "TRAFFIC_COLUMNS",
    "TRAFFIC_TABLE",
    "Timespan",
    "Tok",
    "error_body",
    "gateway_timeout_body",
    "kusto_time",
    "limit_error",
    "parse_duration",
    "parse_time",
    "tokenize",
]
