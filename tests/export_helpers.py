"""What the inference-log export's tests share (tests/test_export_*.py, tests/test_inference_logs_*.py):
the fake Log Analytics service and a client on it, the stores, the console rows that traffic
leaves and the export rows they become, and a source, a store and an evaluator that misbehave.

Fixtures, each defined as `<name>_fixture` and registered as `<name>` (a test module imports
`<name>_fixture`, `# noqa: F401 (fixture)`, and its tests' arguments do not shadow the import):
- `fake`: the module's fake Log Analytics query service (tests/fake_log_analytics, a real HTTP
  server on 127.0.0.1) answering with the export's evaluator (tests/fake_inference_logs.py),
  emptied before each test and checked for evaluator crashes after it (`fake_server` is the
  module's server itself); `client` (the real azure-monitor-query LogsQueryClient on it) and
  `source` (LogAnalyticsInferenceLogs on that client) come with it. A test that uses any of them
  starts a real local component: mark it `integration`.
- `store`: DirectoryStore, and BlobStore on a real Azurite (tests/azurite.py: in-memory, loopback)
  through azure-storage-blob; the blob param is marked `integration` here, and the test module
  declares `pytest_plugins = ["tests.azurite"]`. It holds the credit-card contract as the model's
  current one (`with_contract`): the export fails closed without a stored contract.

The contract: `CREDIT` is the credit-card-default contract (ml.schema's features, as the model card
gives them), `CREDIT_LAYOUT` its export layout.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from functions.adapters.azure.inference_logs import LogAnalyticsInferenceLogs, inference_logs_client
from functions.adapters.local.store import DirectoryStore
from functions.ports import PlatformError, Store
from functions.services.contracts import store_contract
from functions.shared.contract import ModelContract
from functions.shared.export_table import ExportLayout
from ml.schema import FEATURES, NUMERIC
from tests.model_contracts import credit_contract
from tests.fake_credentials import FakeCredential
from tests.fake_inference_logs import InferenceLogEvaluator, input_line
from tests.fake_log_analytics import BYTE_LIMIT, ROW_LIMIT, FakeLogAnalytics, Result

WORKSPACE = "6f1c1c6e-0000-4000-8000-00000000beef"
MODEL = "credit-card-default"
T0 = datetime(2026, 5, 9, 7, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=3, minutes=15)  # horizon 10:05: slices 07, 08, 09 are whole and past the lag


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module", name="fake_server")
def fake_server_fixture():
    with FakeLogAnalytics(workspace_ids={WORKSPACE}) as server:
        # The adapter streams answers (stream=True); azure-core's retry policy leaves the body of a
        # response it retries (503) unread and drops that keep-alive connection, which the stdlib
        # server reports as a reset on stderr. Harmless: keep the test output clean.
        server._server.handle_error = lambda request, client_address: None
        yield server


@pytest.fixture(name="fake")
def fake_fixture(fake_server):
    fake_server.clear_rows()
    fake_server.clear_faults()
    fake_server.clear_requests()
    fake_server.evaluator = InferenceLogEvaluator(fake_server)
    fake_server.row_limit, fake_server.byte_limit = ROW_LIMIT, BYTE_LIMIT
    yield fake_server
    assert fake_server.errors == [], f"the fake evaluator crashed: {fake_server.errors}"


def make_client(fake: FakeLogAnalytics) -> Any:
    return inference_logs_client(endpoint=fake.url, credential=FakeCredential(token="fake-token"), retry_total=2,
                                 retry_backoff_factor=0.01, retry_backoff_max=0.05)


@pytest.fixture(scope="module", name="client")
def client_fixture(fake_server):
    return make_client(fake_server)


@pytest.fixture(name="source")
def source_fixture(client, fake) -> LogAnalyticsInferenceLogs:
    return LogAnalyticsInferenceLogs(client, WORKSPACE, enforce_https=False)


def blob_store(conn: str) -> Store:
    from functions.adapters.azure.blob_store import blob_store_from_settings

    return blob_store_from_settings(connection_string=conn, container=f"t-{uuid.uuid4().hex}")


@pytest.fixture(name="store", params=["directory", pytest.param("blob", marks=pytest.mark.integration)])
def store_fixture(request, tmp_path) -> Store:
    if request.param == "directory":
        return with_contract(DirectoryStore(tmp_path / "store"))
    return with_contract(blob_store(request.getfixturevalue("azurite")))


# --- the contract ---------------------------------------------------------------------------------

CREDIT = credit_contract()  # tests/model_contracts.py
CREDIT_LAYOUT = ExportLayout.for_contract(CREDIT)


def with_contract(store: Store, contract: ModelContract = CREDIT, model: str = MODEL, version: str = "3") -> Store:
    """`store` with `contract` stored as `version`'s and the model's current one (as the rollout does)."""
    store_contract(store, model, version, contract, current=True)
    return store


# --- data -----------------------------------------------------------------------------------------

def record(i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, f in enumerate(FEATURES):
        if f.kind == "categorical":
            out[f.name] = f.domain[(i + k) % len(f.domain)]
        else:
            out[f.name] = i * 100 + k if k % 2 else i * 100.5 + k  # ints and floats, as requests send them
    return out


def console(at: datetime, request_id: str, records: list[dict], *, version: str = "3", deployment: str = "blue",
            model: str = MODEL) -> dict[str, Any]:
    return {"TimeGenerated": at, "DeploymentName": deployment, "ContainerName": "inference-server",
            "Message": input_line(model, version, request_id, records, at=at)}


def traffic(hours: int = 3, per_hour: int = 6) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Console rows (two versions on two deployments, 1–3 records per request) and the export rows
    they should become, in the exporter's order."""
    rows, expected = [], []
    n = 0
    for h in range(hours):
        for j in range(per_hour):
            at = T0 + timedelta(hours=h, minutes=j * (60 // per_hour), seconds=7, microseconds=123456)
            version, deployment = ("4", "green") if j % 3 == 2 else ("3", "blue")
            records = [record(n + r) for r in range(1 + j % 3)]
            request_id = f"req-{h}-{j}"
            rows.append(console(at, request_id, records, version=version, deployment=deployment))
            for index, rec in enumerate(records):
                expected.append({"TimeGenerated": at, "request_id": request_id, "model_version": version,
                                 "deployment": deployment, "record_index": index,
                                 **{k: (float(v) if k in NUMERIC else v) for k, v in rec.items()}})
            n += len(records)
    return rows, expected


def noise(at: datetime) -> list[dict[str, Any]]:
    """Console lines that are not InputData of this model: never rows, never malformed."""
    return [
        {"TimeGenerated": at, "DeploymentName": "blue", "Message": "2026-05-09 07:00:01,000 I [7] gunicorn.access - "
                                                                  '"POST /score HTTP/1.1" 200 38'},
        {"TimeGenerated": at, "DeploymentName": "blue",
         "Message": json.dumps({"service_name": f"online/{MODEL}/3", "type": "OutputData", "request_id": "x",
                                "data": [0.5]})},
        {"TimeGenerated": at, "DeploymentName": "blue",  # another model whose name extends ours
         "Message": input_line(MODEL + "-v2", "1", "other", [record(0)], at=at)},
        {"TimeGenerated": at, "DeploymentName": "blue",  # another model, ours mentioned in a value
         "Message": input_line("fraud", "1", "other", [{**record(0), "sex": f"online/{MODEL}/3 InputData"}], at=at)},
    ]


def read_rows(store: Store, keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        data, _ = store.get(key)
        out.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return out


def sort_key(row: dict[str, Any]) -> tuple:
    return (row["TimeGenerated"], row["request_id"], row["record_index"])


def parquet_keys(store: Store, model: str = MODEL) -> list[str]:
    return [k for k in store.list(f"exports/{model}/") if k.endswith(".parquet")]


# --- console logs as the local endpoints write them -----------------------------------------------

def write_log(home: Path, endpoint: str, deployment: str, lines: list[str], *, tail: str = "",
              written: datetime | None = T0 + timedelta(days=1)) -> Path:
    """Append console lines; the file's mtime is set to `written` (the source skips logs last
    written before a window), so the tests do not depend on today's date."""
    path = home / "endpoints" / endpoint / "deployments" / deployment / "console.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write("".join(line + "\n" for line in lines) + tail)
    if written is not None:
        os.utime(path, (written.timestamp(), written.timestamp()))
    return path


def local_home_from(rows: list[dict[str, Any]], home: Path) -> None:
    """The same console rows as local console logs (one file per deployment)."""
    by_deployment: dict[str, list[str]] = {}
    for row in rows:
        by_deployment.setdefault(row["DeploymentName"], []).append(row["Message"])
    for deployment, lines in by_deployment.items():
        write_log(home, "credit", deployment, ["2026-05-09 07:00:00,000 I [1] gunicorn.error - Booting worker"] + lines)


# --- a source, a store and an evaluator that misbehave --------------------------------------------

class ListSource:
    """A source yielding what it is given: lists of dicts, tables, Malformed markers."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def count(self, model: str, start: datetime, end: datetime) -> int:
        return 0

    def fetch(self, model: str, start: datetime, end: datetime, layout: Any = None):
        yield from self.batches


class FailingStore:
    """A Store that fails (once, or always) on matching writes: a crash between two writes."""

    def __init__(self, inner: Store, fail_on: str, times: int | None = 1) -> None:
        self.inner, self.fail_on, self.times = inner, fail_on, times

    def get(self, key: str):
        return self.inner.get(key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        if self.fail_on in key and (self.times is None or self.times > 0):
            if self.times is not None:
                self.times -= 1
            raise PlatformError(f"injected crash writing {key}", transient=True)
        return self.inner.put(key, data, **kwargs)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class RewriteFetches:
    """Evaluator wrapper: the fetch answer's rows of request `request_id` get `cells`, then the fake
    encodes the answer as the service does (non-finite reals as "NaN"/"Infinity"/"-Infinity")."""

    def __init__(self, inner: Any, request_id: str, cells: dict[str, Any]) -> None:
        self.inner, self.request_id, self.cells = inner, request_id, cells

    def __call__(self, query: str, timespan: Any) -> Any:
        result = self.inner(query, timespan)
        if "mv-expand" not in query:
            return result
        names = [name for name, _ in result.columns]
        rows = []
        for text in result.encoded_rows:
            row = dict(zip(names, json.loads(text)))
            if row["request_id"] == self.request_id:
                row.update(self.cells)
            rows.append([row[n] for n in names])
        return Result(result.columns, rows=rows)
