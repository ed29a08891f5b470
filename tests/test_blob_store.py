"""One behavioural contract for ports.Store, run against DirectoryStore, the MemoryStore fake and
BlobStore on a real Azurite (started by tests/azurite.py from node_modules).

If a store disagrees with blob storage here, the store is wrong: blob storage is what production runs.
The one documented exception is a key that is also a folder of other keys (a directory cannot be
both): see test_key_that_is_also_a_folder.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import uuid
from typing import Iterator

import pytest

from functions.adapters.local.store import DirectoryStore
from functions.ports import Conflict, PlatformError, Store
from tests.fakes import MemoryStore

pytest_plugins = ["tests.azurite"]  # the session-wide `azurite` fixture
pytestmark = pytest.mark.integration

IMPLS = ["directory", "memory", "blob"]


def _blob_store(conn: str, **client_kwargs):
    from functions.adapters.azure.blob_store import blob_store_from_settings

    return blob_store_from_settings(connection_string=conn, container=f"t-{uuid.uuid4().hex}", **client_kwargs)


@pytest.fixture(params=IMPLS)
def store(request, tmp_path) -> Store:
    if request.param == "directory":
        return DirectoryStore(tmp_path / "store")
    if request.param == "memory":
        return MemoryStore()
    return _blob_store(request.getfixturevalue("azurite"))  # a fresh container per test


def _kind(store: Store) -> str:
    return type(store).__name__


def test_implements_the_port(store):
    assert isinstance(store, Store)


def test_get_missing_is_none(store):
    assert store.get("nothing/here.json") is None


def test_put_get_roundtrip_and_overwrite(store):
    etag1 = store.put("rollouts/m/1.json", b'{"a": 1}')
    assert store.get("rollouts/m/1.json") == (b'{"a": 1}', etag1)
    etag2 = store.put("rollouts/m/1.json", b'{"a": 2}')  # plain put overwrites
    assert etag2 != etag1
    assert store.get("rollouts/m/1.json") == (b'{"a": 2}', etag2)
    binary = bytes(range(256)) * 64
    store.put("bin/blob", binary)
    assert store.get("bin/blob")[0] == binary
    store.put("empty", b"")
    assert store.get("empty")[0] == b""


def test_create_only_conflicts_on_the_second_write(store):
    store.put("claims/run-1.json", b"first", if_absent=True)
    with pytest.raises(Conflict) as info:
        store.put("claims/run-1.json", b"second", if_absent=True)
    assert info.value.transient is False
    assert store.get("claims/run-1.json")[0] == b"first"


def test_etag_compare_and_swap(store):
    store.put("counter", b"0")
    data, etag = store.get("counter")
    new_etag = store.put("counter", b"1", etag=etag)
    assert store.get("counter") == (b"1", new_etag)
    with pytest.raises(Conflict):
        store.put("counter", b"stale", etag=etag)  # written since `etag` was read
    assert store.get("counter") == (b"1", new_etag)
    store.delete("counter")
    with pytest.raises(Conflict):
        store.put("counter", b"gone", etag=new_etag)  # deleted since it was read
    assert store.get("counter") is None


def test_create_only_wins_over_an_etag(store):
    store.put("both", b"1", if_absent=True, etag="not-an-etag")  # absent: created, etag ignored
    with pytest.raises(Conflict):
        store.put("both", b"2", if_absent=True, etag=store.get("both")[1])
    assert store.get("both")[0] == b"1"


LIST_KEYS = ["a/b/1", "a/b/2.json", "a/b/x.tmp", "a/bc/1", "a/b2", "ab/1", "b/1", "top"]


@pytest.mark.parametrize(("prefix", "expected"), [
    ("", sorted(LIST_KEYS)),
    ("a/b/", ["a/b/1", "a/b/2.json", "a/b/x.tmp"]),          # a folder: trailing '/'
    ("a/b", ["a/b/1", "a/b/2.json", "a/b/x.tmp", "a/b2", "a/bc/1"]),  # a string prefix, as blob storage
    ("a/", ["a/b/1", "a/b/2.json", "a/b/x.tmp", "a/b2", "a/bc/1"]),
    ("a", ["a/b/1", "a/b/2.json", "a/b/x.tmp", "a/b2", "a/bc/1", "ab/1"]),
    ("a/b/1", ["a/b/1"]),
    ("a/b/2", ["a/b/2.json"]),
    ("to", ["top"]),
    ("top/", []),
    ("nothing/", []),
    ("c", []),
])
def test_list_is_a_sorted_string_prefix_match(store, prefix, expected):
    for key in reversed(LIST_KEYS):
        store.put(key, key.encode())
    assert store.list(prefix) == expected


def test_list_sorts_by_code_point(store):
    keys = ["d/B", "d/a", "d/_", "d/-", "d/10", "d/9", "d/é", "d/Z"]
    for key in keys:
        store.put(key, b"x")
    assert store.list("d/") == sorted(keys)


def test_delete_is_idempotent(store):
    store.delete("never/existed")
    store.put("k/v", b"1")
    store.delete("k/v")
    assert store.get("k/v") is None
    assert store.list("k/") == []
    store.delete("k/v")
    store.put("k/v", b"again", if_absent=True)  # a deleted key can be created again
    assert store.get("k/v")[0] == b"again"


INVALID_KEYS = ["", "/abs", "a/../b", "..", "../x", "a/./b", ".", "a//b", "a/", "/", ".hidden", "a/.lock",
                "a/.b.tmp", "ends.", "a./b", "back\\slash", "nul\0", "tab\tkey", "new\nline", "del\x7f",
                "x" * 1025]
VALID_ODD_KEYS = ["x.tmp", "a b/c+d%20e=f&g.json", "q?x=1#frag", "modèle/ü", "a-b_c.d/e~f", "k" * 200,
                  "/".join(["s"] * 100)]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_rejected(store, key):
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.put(key, b"x", if_absent=True)
    with pytest.raises(ValueError):
        store.delete(key)


@pytest.mark.parametrize("prefix", ["/", "/a", "../", "a/../", "a//", ".x", "a/.", "back\\"])
def test_invalid_prefixes_are_rejected(store, prefix):
    with pytest.raises(ValueError):
        store.list(prefix)


def test_unusual_valid_keys_roundtrip(store):
    for key in VALID_ODD_KEYS:
        store.put(key, key.encode(), if_absent=True)
        assert store.get(key)[0] == key.encode()
    assert store.list("") == sorted(VALID_ODD_KEYS)
    assert store.list("q?") == ["q?x=1#frag"]


def test_key_that_is_also_a_folder(store):
    """Blob storage (and the fake) hold "a/b" and "a/b/c" side by side; a directory cannot. It says
    so with a non-transient PlatformError instead of an OSError, and reads/deletes stay calm."""
    store.put("f/b", b"file")
    if isinstance(store, DirectoryStore):
        with pytest.raises(PlatformError) as info:
            store.put("f/b/c", b"child")
        assert not info.value.transient and not isinstance(info.value, Conflict)
        store.put("g/b/c", b"child")
        for kwargs in ({}, {"if_absent": True}):
            with pytest.raises(PlatformError) as info:
                store.put("g/b", b"file", **kwargs)
            assert not info.value.transient and not isinstance(info.value, Conflict)
        assert store.get("g/b") is None and store.get("f/b/c") is None
        store.delete("g/b")
        store.delete("f/b/c")
        assert store.list("") == ["f/b", "g/b/c"]
    else:
        store.put("f/b/c", b"child")
        assert store.list("f/") == ["f/b", "f/b/c"]
        assert store.get("f/b")[0] == b"file" and store.get("f/b/c")[0] == b"child"


# --- concurrency ---------------------------------------------------------------------------------

THREADS = 20


def _run_threads(target, n: int = THREADS) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return results


def test_concurrent_create_only_has_exactly_one_winner(store):
    def claim(i: int) -> str:
        try:
            store.put("claims/the-one.json", f"writer {i}".encode(), if_absent=True)
            return "won"
        except Conflict:
            return "lost"

    results = _run_threads(claim)
    assert sorted(map(str, results)) == ["lost"] * (THREADS - 1) + ["won"], results
    winner = results.index("won")
    assert store.get("claims/the-one.json")[0] == f"writer {winner}".encode()


def test_concurrent_read_modify_write_loses_no_update(store):
    store.put("counter.json", b"0", if_absent=True)
    conflicts = []

    def increment(i: int) -> int:
        for attempt in range(1000):
            data, etag = store.get("counter.json")
            try:
                store.put("counter.json", str(int(data) + 1).encode(), etag=etag)
                return attempt
            except Conflict:
                conflicts.append(i)
        raise AssertionError("no progress after 1000 attempts")

    results = _run_threads(increment)
    assert all(isinstance(r, int) for r in results), results
    assert store.get("counter.json")[0] == str(THREADS).encode()
    assert len(conflicts) == sum(results)  # every retry was a lost race, seen as a Conflict


def test_an_etag_read_while_a_create_finishes_stays_valid_while_the_object_is_unchanged(store):
    """A reader racing a create-only write gets an etag a compare-and-swap then accepts (the
    object did not change). DirectoryStore once derived etags from ctime, which moves when the
    create's temporary link is removed: 42 of 3,000 such readers got an etag the unchanged object
    no longer had, and their swaps failed."""
    trials = {"BlobStore": 200, "DirectoryStore": 500}.get(_kind(store), 100)
    stale = []
    for i in range(trials):
        key, seen, stop = f"raced/{i}.json", [], threading.Event()

        def reader() -> None:
            while not stop.is_set():
                found = store.get(key)
                if found:
                    seen.append(found[1])
                    return

        thread = threading.Thread(target=reader)
        thread.start()
        store.put(key, b'{"v": 1}', if_absent=True)
        stop.set()
        thread.join()
        if seen and seen[0] != store.get(key)[1]:
            stale.append(i)
    assert stale == []


# --- BlobStore only: failures of the service ------------------------------------------------------

FAST_FAIL = {"retry_total": 0, "connection_timeout": 2, "read_timeout": 5}


def connection_string(port: int) -> str:
    from tests.azurite import connection_string as for_port  # imported by pytest_plugins (assert rewriting)

    return for_port(port)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block exits: nothing listens there


def _blob_store_on(port: int):
    from azure.storage.blob import ContainerClient

    from functions.adapters.azure.blob_store import BlobStore

    return BlobStore(ContainerClient.from_connection_string(connection_string(port), "modelops", **FAST_FAIL))


def test_unreachable_storage_is_a_transient_platform_error():
    store = _blob_store_on(_closed_port())
    started = time.monotonic()
    calls = [lambda: store.get("k"), lambda: store.put("k", b"x"), lambda: store.put("k", b"x", if_absent=True),
             lambda: store.put("k", b"x", etag='"0x1"'), lambda: store.list("a/"), lambda: store.delete("k")]
    for call in calls:
        with pytest.raises(PlatformError) as info:
            call()
        assert info.value.transient is True and not isinstance(info.value, Conflict), info.value
    with pytest.raises(PlatformError) as info:
        _blob_store(connection_string(_closed_port()), **FAST_FAIL)  # the factory creates the container
    assert info.value.transient is True
    assert time.monotonic() - started < 10


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 503

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_DELETE = do_HEAD = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def answering_server() -> Iterator[type]:
    handler = type("Answer", (_Answer,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    handler.port = server.server_address[1]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "transient"), [(503, True), (500, True), (429, True), (403, False),
                                                   (400, False)])
def test_service_errors_map_to_platform_error(answering_server, status, transient):
    answering_server.status = status
    store = _blob_store_on(answering_server.port)
    for call in (lambda: store.get("k"), lambda: store.put("k", b"x", if_absent=True), lambda: store.list(""),
                 lambda: store.delete("k")):
        with pytest.raises(PlatformError) as info:
            call()
        assert info.value.transient is transient and not isinstance(info.value, Conflict), (status, info.value)


def test_missing_container_is_an_error_not_an_empty_store(azurite):
    from azure.storage.blob import ContainerClient

    from functions.adapters.azure.blob_store import BlobStore

    store = BlobStore(ContainerClient.from_connection_string(azurite, f"missing-{uuid.uuid4().hex[:8]}", **FAST_FAIL))
    for call in (lambda: store.get("k"), lambda: store.put("k", b"x"), lambda: store.delete("k")):
        with pytest.raises(PlatformError) as info:
            call()
        assert info.value.transient is False and "ContainerNotFound" in str(info.value), info.value


def test_factory(azurite):
    from functions.adapters.azure.blob_store import BlobStore, blob_store_from_settings

    with pytest.raises(ValueError):
        blob_store_from_settings()
    with pytest.raises(ValueError):
        blob_store_from_settings(connection_string=azurite, account_url="https://x.blob.core.windows.net")
    first = blob_store_from_settings(connection_string=azurite, container="shared-container")
    first.put("k", b"1", if_absent=True)
    again = blob_store_from_settings(connection_string=azurite, container="shared-container")  # exists: fine
    assert isinstance(again, BlobStore) and again.get("k")[0] == b"1"


def test_ports_and_core_do_not_import_the_azure_adapter():
    import subprocess
    import sys

    code = ("import sys, functions.ports, functions.services.records, functions.adapters.local.store;"
            "bad = [m for m in sys.modules if m.startswith(('azure.storage', 'azure.identity'))"
            " or m == 'functions.adapters.azure.blob_store']; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_directory_store_create_returns_the_etag_a_later_get_sees(tmp_path):
    from functions.adapters.local.store import DirectoryStore

    store = DirectoryStore(tmp_path)
    etag = store.put("a/b.json", b"1", if_absent=True)
    assert store.get("a/b.json")[1] == etag
    store.put("a/b.json", b"2", etag=etag)  # the first compare-and-swap after a create succeeds
    assert store.get("a/b.json")[0] == b"2"
