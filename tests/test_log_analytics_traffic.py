"""LogAnalyticsTrafficLog through the real azure-monitor-query LogsQueryClient, against the fake
Log Analytics query service (a real HTTP server on 127.0.0.1, tests/fake_log_analytics.py).

The SDK does everything it does against Azure — bearer policy, retry policy, JSON (de)serialisation,
LogsQueryResult / LogsQueryPartialResult — except TLS: the client points at http://127.0.0.1:N and
the adapter passes enforce_https=False per call.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from functions.adapters.azure.log_analytics import kql_string, logs_client
from functions.adapters.azure.traffic_log import LogAnalyticsTrafficLog, stats_query
from functions.adapters.local.traffic_log import percentile
from functions.ports import PlatformError, TrafficLog
from functions.shared.names import InvalidName
from tests.fake_credentials import FakeCredential
from tests.fake_log_analytics import (
    BYTE_LIMIT,
    CONSOLE_TABLE,
    ROW_LIMIT,
    TRAFFIC_TABLE,
    FakeLogAnalytics,
    Result,
    Timespan,
    tokenize,
)

pytestmark = pytest.mark.integration

WORKSPACE = "6f1c1c6e-0000-4000-8000-00000000beef"
T0 = datetime(2026, 5, 9, 7, 0, tzinfo=timezone.utc)
WINDOW = (T0, T0 + timedelta(minutes=10))


@pytest.fixture(scope="module")
def fake():
    with FakeLogAnalytics(workspace_ids={WORKSPACE}) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(fake):
    fake.clear_rows()
    fake.clear_faults()
    fake.clear_requests()
    fake.evaluator = fake.subset_evaluator
    fake.row_limit, fake.byte_limit = ROW_LIMIT, BYTE_LIMIT
    yield


@pytest.fixture(scope="module")
def credential() -> FakeCredential:
    return FakeCredential(token="fake-token")


@pytest.fixture(scope="module")
def client(fake, credential):
    # Small retry budget and backoff: a 503 test waits milliseconds, not the SDK's default ~1 min.
    return logs_client(endpoint=fake.url, credential=credential, retry_total=2, retry_backoff_factor=0.01,
                       retry_backoff_max=0.05)


@pytest.fixture
def traffic(client) -> LogAnalyticsTrafficLog:
    return LogAnalyticsTrafficLog(client, WORKSPACE, enforce_https=False)


def row(seconds: float, status: int, duration: int, *, endpoint: str = "credit", deployment: str = "blue",
        **extra) -> dict:
    return {"TimeGenerated": T0 + timedelta(seconds=seconds), "EndpointName": endpoint,
            "DeploymentName": deployment, "ResponseCode": status, "ModelStatusCode": status,
            "TotalDurationMs": duration, "RequestDurationMs": 1, "Method": "POST", "Path": "/score",
            "OperationName": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score",
            "XRequestId": f"req-{seconds}", **extra}


def test_implements_the_port(traffic):
    assert isinstance(traffic, TrafficLog)


def test_stats_count_requests_5xx_and_p90(fake, traffic):
    inside = [row(10 + i, 200, 20 + i) for i in range(40)]
    inside += [row(60, 500, 900), row(61, 503, 950), row(62, 504, 30)]  # 5xx: errors
    inside += [row(63, 400, 5), row(64, 404, 6), row(65, 429, 7)]  # 4xx: the caller's fault, not errors
    inside += [row(0, 200, 11)]  # exactly at start: in the half-open window
    others = [
        row(-1, 500, 999),  # just before the window
        row(600, 500, 999),  # exactly at the end: out (the fake's timespan includes it; the KQL must not)
        row(30, 500, 999, deployment="green"),  # another deployment
        row(31, 500, 999, endpoint="fraud"),  # another endpoint, same deployment name
        row(32, 500, 999, deployment=""),  # reached no deployment
    ]
    fake.add_rows(TRAFFIC_TABLE, others + inside)

    stats = traffic.stats("credit", "blue", *WINDOW)

    assert stats.deployment == "blue"
    assert stats.requests == len(inside) == 47
    assert stats.errors == 3
    assert stats.client_errors == 3  # counted apart: reported, never held against the deployment
    assert stats.p90_ms == percentile([float(r["TotalDurationMs"]) for r in inside], 90)
    assert stats.error_rate == pytest.approx(3 / 47)
    assert (stats.start, stats.end) == WINDOW


def test_request_on_the_wire(fake, traffic, credential):
    traffic.stats("credit", "blue", *WINDOW)

    [sent] = fake.requests
    assert sent.method == "POST"
    assert sent.path == f"/v1/workspaces/{WORKSPACE}/query"
    assert sent.header("Authorization") == "Bearer fake-token"
    assert sent.header("Content-Type") == "application/json"
    assert sent.header("Accept") == "application/json"
    assert sent.header("User-Agent").startswith("azsdk-python-monitor-query/")
    # the SDK serialises (start, end) with millisecond precision and "Z"
    assert sent.timespan == "2026-05-09T07:00:00.000Z/2026-05-09T07:10:00.000Z"
    assert set(sent.body) == {"query", "timespan", "workspaces"} and sent.workspaces is None
    assert "TimeGenerated >= datetime(2026-05-09T07:00:00.000000Z)" in sent.query
    assert "TimeGenerated < datetime(2026-05-09T07:10:00.000000Z)" in sent.query
    # token audience follows the endpoint
    assert credential.scopes[-1] == (f"{fake.url}/.default",)


def test_timespan_matches_odd_windows_and_naive_times_are_utc(fake, traffic):
    start = datetime(2026, 5, 9, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=2)))  # 07:30:15.25Z
    traffic.stats("credit", "blue", start, start + timedelta(seconds=90))
    assert fake.last.timespan == "2026-05-09T07:30:15.250Z/2026-05-09T07:31:45.250Z"

    traffic.stats("credit", "blue", datetime(2026, 5, 9, 7, 0), datetime(2026, 5, 9, 7, 5))
    assert fake.last.timespan == "2026-05-09T07:00:00.000Z/2026-05-09T07:05:00.000Z"
    assert Timespan.parse(fake.last.timespan).start == T0


def test_empty_window_has_no_requests_and_no_p90(fake, traffic):
    fake.add_rows(TRAFFIC_TABLE, [row(-30, 200, 10), row(900, 500, 10)])
    stats = traffic.stats("credit", "blue", *WINDOW)
    assert (stats.requests, stats.errors, stats.p90_ms, stats.error_rate) == (0, 0, None, 0.0)
    assert len(fake.requests) == 1


def test_zero_length_window_sends_nothing_and_backwards_window_is_refused(fake, traffic):
    stats = traffic.stats("credit", "blue", T0, T0)
    assert (stats.requests, stats.p90_ms) == (0, None)
    with pytest.raises(ValueError, match="before it starts"):
        traffic.stats("credit", "blue", T0, T0 - timedelta(seconds=1))
    assert fake.requests == []


def test_ingestion_lag_shifts_the_queried_window(fake, client):
    lagged = LogAnalyticsTrafficLog(client, WORKSPACE, enforce_https=False, ingestion_lag=timedelta(minutes=5))
    fake.add_rows(TRAFFIC_TABLE, [row(-200, 500, 10), row(100, 200, 10), row(400, 200, 10)])

    stats = lagged.stats("credit", "blue", *WINDOW)  # asks for 07:00–07:10, measures 06:55–07:05

    assert fake.last.timespan == "2026-05-09T06:55:00.000Z/2026-05-09T07:05:00.000Z"
    assert (stats.start, stats.end) == (T0 - timedelta(minutes=5), T0 + timedelta(minutes=5))
    assert (stats.requests, stats.errors) == (2, 1)
    with pytest.raises(ValueError):
        LogAnalyticsTrafficLog(client, WORKSPACE, ingestion_lag=timedelta(seconds=-1))


HOSTILE = [
    'credit" or 1 == 1 or "',
    'credit"\n| take 100000 //',
    "credit\\",
    "cr'edit",
    "credit | project Message",
    "ab",  # too short
    "a" * 33,  # too long
    "-credit",
    "credit-",
    "1credit",
    "cred it",
    "cred_it",
    "crédit",
    "credit\x00",
    "credit\u2028x",
    "",
    None,
    42,
]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("which", ["endpoint", "deployment"])
def test_hostile_names_are_rejected_before_any_request(fake, traffic, name, which):
    args = {"endpoint": "credit", "deployment": "blue", which: name}
    with pytest.raises(InvalidName):
        traffic.stats(args["endpoint"], args["deployment"], *WINDOW)
    assert fake.requests == []


@pytest.mark.parametrize("name", ["abc", "credit-card-default", "A1-b2-C3", "x" * 32, "blue-v12-3f9a2c"])
def test_valid_names_pass(fake, traffic, name):
    traffic.stats(name, name, *WINDOW)
    assert len(fake.requests) == 1


def test_names_enter_the_kql_only_as_escaped_literals(fake, traffic):
    traffic.stats("credit-card", "blue-v2", *WINDOW)
    query = fake.last.query
    assert 'EndpointName == "credit-card"' in query
    assert 'DeploymentName == "blue-v2"' in query
    literals = [t.value for t in tokenize(query) if t.kind == "string"]
    assert literals == ["credit-card", "blue-v2"]
    # the names appear nowhere but inside those literals
    assert query.count("credit-card") == 1 and query.count("blue-v2") == 1


@pytest.mark.parametrize("value", ['a"b', "a\\b", 'a\\"b', "\\", '"', "it's", "x\\\" | take 1 //", "ünïcode ☃", ""])
def test_kql_string_escapes_and_round_trips(value):
    literal = kql_string(value)
    assert literal.startswith('"') and literal.endswith('"')
    inner = literal[1:-1]
    # every quote inside is escaped: none can end the literal early
    assert all(inner[i - 1] == "\\" for i, ch in enumerate(inner) if ch == '"')
    [token] = tokenize(literal)
    assert (token.kind, token.value) == ("string", value)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\tb", "a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\u2028b",
                                   "a\u2029b"])
def test_kql_string_refuses_control_characters(value):
    with pytest.raises(ValueError, match="control character"):
        kql_string(value)


def test_stats_query_shape():
    query = stats_query("credit", "blue", *WINDOW)
    assert query.splitlines()[0] == "AmlOnlineEndpointTrafficLog"
    assert "countif(toint(ResponseCode) >= 500)" in query
    assert "countif(toint(ResponseCode) >= 400 and toint(ResponseCode) < 500)" in query
    assert "percentile(TotalDurationMs, 90)" in query


def test_partial_result_is_an_error_not_an_answer(fake, traffic):
    fake.add_rows(TRAFFIC_TABLE, [row(10, 200, 10)])
    fake.partial_next()
    with pytest.raises(PlatformError, match="partial result") as caught:
        traffic.stats("credit", "blue", *WINDOW)
    assert "E_QUERY_RESULT_SET_TOO_LARGE" in str(caught.value)
    assert caught.value.transient is False


def test_503_is_transient_after_the_sdk_retries(fake, traffic):
    fake.fail_next(503, times=None)
    with pytest.raises(PlatformError) as caught:
        traffic.stats("credit", "blue", *WINDOW)
    assert caught.value.transient is True
    assert "HTTP 503" in str(caught.value) and "ServiceUnavailableError" in str(caught.value)
    assert len(fake.requests) == 3  # first try + retry_total=2


def test_503_then_success_is_retried_transparently(fake, traffic):
    fake.add_rows(TRAFFIC_TABLE, [row(10, 200, 10)])
    fake.fail_next(503, times=1)
    assert traffic.stats("credit", "blue", *WINDOW).requests == 1
    assert [r.status for r in fake.requests] == [503, 200]


def test_429_with_retry_after_is_retried_then_transient(fake, traffic):
    fake.fail_next(429, times=None, retry_after=0.01)
    with pytest.raises(PlatformError) as caught:
        traffic.stats("credit", "blue", *WINDOW)
    assert caught.value.transient is True
    assert len(fake.requests) == 3  # the SDK retries a POST on 429 only because Retry-After is there


def test_400_is_a_permanent_error_with_the_inner_message(fake, traffic):
    body = {"error": {"message": "The request had some invalid properties", "code": "BadArgumentError",
                      "correlationId": "c0ffee", "innererror": {
                          "code": "SyntaxError", "message": "A recognition error occurred in the query.",
                          "innererror": {"code": "SYN0002", "message": "Query could not be parsed at 'x' on line [1,0]",
                                         "line": 1, "pos": 0, "token": "x"}}}}
    fake.fail_next(400, body=body)
    with pytest.raises(PlatformError) as caught:
        traffic.stats("credit", "blue", *WINDOW)
    assert caught.value.transient is False
    assert "HTTP 400" in str(caught.value) and "Query could not be parsed" in str(caught.value)
    assert len(fake.requests) == 1  # not retried


def test_unknown_workspace_is_a_permanent_error(fake, client):
    other = LogAnalyticsTrafficLog(client, "00000000-0000-0000-0000-000000000000", enforce_https=False)
    with pytest.raises(PlatformError, match="HTTP 404") as caught:
        other.stats("credit", "blue", *WINDOW)
    assert caught.value.transient is False


def test_read_timeout_is_transient(fake, credential):
    slow_client = logs_client(endpoint=fake.url, credential=credential, retry_total=0, read_timeout=0.2)
    fake.delay_next(1.0)
    with pytest.raises(PlatformError, match="no answer") as caught:
        LogAnalyticsTrafficLog(slow_client, WORKSPACE, enforce_https=False).stats("credit", "blue", *WINDOW)
    assert caught.value.transient is True


def test_connection_refused_is_transient(credential):
    gone = FakeLogAnalytics().start()
    url = gone.url
    gone.stop()  # nothing listens on that port any more
    dead = LogAnalyticsTrafficLog(logs_client(endpoint=url, credential=credential, retry_total=0), WORKSPACE,
                                  enforce_https=False)
    with pytest.raises(PlatformError, match="no answer") as caught:
        dead.stats("credit", "blue", *WINDOW)
    assert caught.value.transient is True


def test_https_is_enforced_by_default(fake, client):
    strict = LogAnalyticsTrafficLog(client, WORKSPACE)  # enforce_https=True: http endpoint refused
    with pytest.raises(PlatformError) as caught:
        strict.stats("credit", "blue", *WINDOW)
    assert "non-TLS" in str(caught.value)
    assert caught.value.transient is False  # a configuration error: retrying cannot help
    assert fake.requests == []


def test_unexpected_result_shapes_are_errors(fake, traffic):
    fake.evaluator = lambda query, timespan: ([("Requests", "long"), ("Errors", "long"), ("ClientErrors", "long"),
                                               ("P90Ms", "real")],
                                              [[3, 1, 0, 12.5], [4, 0, 0, 9.0]])
    with pytest.raises(PlatformError, match="one summary row"):
        traffic.stats("credit", "blue", *WINDOW)
    fake.evaluator = lambda query, timespan: ([("Requests", "long")], [[3]])
    with pytest.raises(PlatformError, match="lacks column"):
        traffic.stats("credit", "blue", *WINDOW)
    fake.evaluator = lambda query, timespan: ([("Requests", "long"), ("Errors", "long"), ("ClientErrors", "long"),
                                               ("P90Ms", "real")],
                                              [[3, 5, 0, 12.5]])
    with pytest.raises(PlatformError, match="inconsistent"):
        traffic.stats("credit", "blue", *WINDOW)
    fake.evaluator = lambda query, timespan: ([("Requests", "long"), ("Errors", "long"), ("ClientErrors", "long"),
                                               ("P90Ms", "real")],
                                              [[3, 1, 3, 12.5]])
    with pytest.raises(PlatformError, match="inconsistent"):  # 1 server + 3 client errors > 3 requests
        traffic.stats("credit", "blue", *WINDOW)
    fake.evaluator = lambda query, timespan: ([("Requests", "long"), ("Errors", "long"), ("ClientErrors", "long"),
                                               ("P90Ms", "real")],
                                              [[3, 1, 1, 12.5]])
    stats = traffic.stats("credit", "blue", *WINDOW)
    assert (stats.requests, stats.errors, stats.client_errors, stats.p90_ms) == (3, 1, 1, 12.5)


# --- the fake service itself (other adapters rely on it) ----------------------------------------

def _post(fake, body: dict | bytes, *, token: str | None = "t", workspace: str = WORKSPACE):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{fake.url}/v1/workspaces/{workspace}/query", data=data, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fake_requires_a_bearer_token(fake):
    for token in (None, ""):
        status, body = _post(fake, {"query": TRAFFIC_TABLE}, token=token)
        assert status == 401 and body["error"]["code"] == "AuthorizationRequiredError"


def test_fake_types_missing_values_and_dynamic_text(fake, client):
    fake.add_rows(CONSOLE_TABLE, [{"TimeGenerated": T0, "DeploymentName": "blue", "Message": "hello"}])
    fake.create_table("Custom_CL", [("TimeGenerated", "datetime"), ("Props", "dynamic"), ("Score", "real"),
                                    ("Flag", "bool"), ("Name", "string")])
    fake.add_rows("Custom_CL", [{"TimeGenerated": "2026-05-09T07:00:01.1234567Z", "Props": {"a": [1, 2]},
                                 "Score": 0.25}])

    status, body = _post(fake, {"query": "Custom_CL", "timespan": None})
    assert status == 200
    [table] = body["tables"]
    assert table["name"] == "PrimaryResult"
    assert table["columns"] == [{"name": "TimeGenerated", "type": "datetime"}, {"name": "Props", "type": "dynamic"},
                                {"name": "Score", "type": "real"}, {"name": "Flag", "type": "bool"},
                                {"name": "Name", "type": "string"}]
    assert table["rows"] == [["2026-05-09T07:00:01.1234560Z", '{"a":[1,2]}', 0.25, None, ""]]

    result = client.query_workspace(WORKSPACE, f"{CONSOLE_TABLE} | where DeploymentName == 'blue'",
                                    timespan=WINDOW, enforce_https=False)
    [only] = result.tables[0].rows
    assert only["TimeGenerated"] == T0 and only["Message"] == "hello" and only["Type"] == CONSOLE_TABLE
    assert only["TenantId"] == WORKSPACE


def test_fake_cuts_results_at_the_limits_with_a_partial_error(fake, client):
    from azure.monitor.query import LogsQueryStatus

    fake.add_rows(TRAFFIC_TABLE, [row(i * 0.01, 200, i) for i in range(1500)])
    fake.row_limit = 1000
    result = client.query_workspace(WORKSPACE, f"{TRAFFIC_TABLE} | project TimeGenerated, TotalDurationMs",
                                    timespan=None, enforce_https=False)
    assert result.status == LogsQueryStatus.PARTIAL
    assert len(result.partial_data[0].rows) == 1000
    assert result.partial_error.code == "PartialError"
    assert "record count limit 1000" in result.partial_error.details[0]["innererror"]["message"]

    fake.row_limit, fake.byte_limit = None, 10_000
    result = client.query_workspace(WORKSPACE, TRAFFIC_TABLE, timespan=None, enforce_https=False)
    assert result.status == LogsQueryStatus.PARTIAL
    kept = len(result.partial_data[0].rows)
    assert 0 < kept < 1500
    assert "data size limit" in result.partial_error.details[0]["innererror"]["message"]

    fake.byte_limit = None
    result = client.query_workspace(WORKSPACE, f"{TRAFFIC_TABLE} | count", timespan=None, enforce_https=False)
    assert result.status == LogsQueryStatus.SUCCESS and result.tables[0].rows[0]["Count"] == 1500


def test_fake_subset_evaluator_half_open_order_and_take(fake, client):
    fake.add_rows(TRAFFIC_TABLE, [row(i, 500 if i % 3 == 0 else 200, i) for i in range(10, 0, -1)])  # unsorted input
    query = (f"{TRAFFIC_TABLE} | where TimeGenerated >= datetime(2026-05-09T07:00:02Z) "
             "and TimeGenerated < datetime(2026-05-09 07:00:08) | where ResponseCode in (200) "
             "| order by TimeGenerated desc | take 3 | project XRequestId, D = TotalDurationMs")
    result = client.query_workspace(WORKSPACE, query, timespan=None, enforce_https=False)
    assert [list(r) for r in result.tables[0].rows] == [["req-7", 7], ["req-5", 5], ["req-4", 4]]

    grouped = client.query_workspace(
        WORKSPACE, f"{TRAFFIC_TABLE} | summarize n = count(), slow = countif(TotalDurationMs > 5) by ResponseCode "
                   "| order by ResponseCode asc", timespan=None, enforce_https=False)
    assert [list(r) for r in grouped.tables[0].rows] == [[200, 7, 3], [500, 3, 2]]


def test_fake_keeps_time_order_across_appends(fake):
    fake.add_rows(CONSOLE_TABLE, [{"TimeGenerated": T0 + timedelta(seconds=s), "Message": str(s)} for s in (1, 2)])
    assert _messages(fake) == ["1", "2"]
    fake.add_rows(CONSOLE_TABLE, [{"TimeGenerated": T0 + timedelta(seconds=3), "Message": "3"}])  # in order
    assert _messages(fake) == ["1", "2", "3"]
    fake.add_rows(CONSOLE_TABLE, [{"TimeGenerated": T0, "Message": "0"}])  # late arrival
    assert _messages(fake) == ["0", "1", "2", "3"]


def _messages(fake) -> list[str]:
    status, body = _post(fake, {"query": CONSOLE_TABLE, "timespan": None})
    assert status == 200
    column = [c["name"] for c in body["tables"][0]["columns"]].index("Message")
    return [r[column] for r in body["tables"][0]["rows"]]


def test_fake_rejects_what_it_cannot_evaluate(fake, client):
    from azure.core.exceptions import HttpResponseError

    for query in (f"{TRAFFIC_TABLE} | extend x = 1", f"{TRAFFIC_TABLE} | where A == 1 or B == 2",
                  "NoSuchTable", f'{TRAFFIC_TABLE} | where EndpointName == "unterminated'):
        with pytest.raises(HttpResponseError) as caught:
            client.query_workspace(WORKSPACE, query, timespan=None, enforce_https=False)
        assert caught.value.status_code == 400


def test_fake_accepts_every_timespan_form_the_sdk_sends(fake, client):
    fake.add_rows(TRAFFIC_TABLE, [row(0, 200, 1)])
    for timespan in (timedelta(days=36500), (T0, timedelta(minutes=1)), (T0, T0 + timedelta(minutes=1)), None):
        result = client.query_workspace(WORKSPACE, f"{TRAFFIC_TABLE} | count", timespan=timespan, enforce_https=False)
        assert result.tables[0].rows[0]["Count"] == 1, timespan
    assert [r.timespan for r in fake.requests][:3] == ["PT3153600000.0S", "2026-05-09T07:00:00.000Z/PT60.0S",
                                                     "2026-05-09T07:00:00.000Z/2026-05-09T07:01:00.000Z"]
    assert fake.requests[3].timespan is None


def test_fake_streams_a_large_result_intact(fake):
    n = 100_000
    start = T0
    fake.add_rows(CONSOLE_TABLE, ({"TimeGenerated": start + timedelta(milliseconds=i), "DeploymentName": "blue",
                                   "Message": f'{{"i":{i},"x":"\\"quoted\\""}}'} for i in range(n)))
    status, body = _post(fake, {"query": f"{CONSOLE_TABLE} | where TimeGenerated >= datetime(2026-05-09T07:00:00Z)",
                                "timespan": None})
    assert status == 200
    rows = body["tables"][0]["rows"]
    assert len(rows) == n
    message = body["tables"][0]["columns"].index({"name": "Message", "type": "string"})
    assert json.loads(rows[0][message]) == {"i": 0, "x": '"quoted"'}
    assert json.loads(rows[-1][message])["i"] == n - 1


def test_fake_custom_evaluator_sees_query_and_timespan(fake, client):
    seen = []

    def evaluator(query, timespan):
        seen.append((query, timespan))
        rows = fake.table(TRAFFIC_TABLE).records(timespan)
        return Result([("n", "long"), ("when", "datetime")], rows=[[len(rows), T0]])

    fake.evaluator = evaluator
    fake.add_rows(TRAFFIC_TABLE, [row(5, 200, 1), row(5000, 200, 1)])
    result = client.query_workspace(WORKSPACE, "anything at all", timespan=WINDOW, enforce_https=False)
    assert list(result.tables[0].rows[0]) == [1, T0]
    assert seen[0][0] == "anything at all" and (seen[0][1].start, seen[0][1].end) == WINDOW
