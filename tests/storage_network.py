"""Storage requests to https://devstoreaccount1.blob.core.windows.net go to Azurite (over http, with
the URL's path, query and Host header unchanged); every other non-loopback request is refused.

What a hosts entry plus a TLS-terminating proxy would do, for the SDK code paths that build the
storage URL themselves from cloud metadata (azure-ai-ml's `models.download` of a workspace model:
see tests/test_azure_model_files.py's docstring). Azurite reads the account from the
production-style Host and checks the Shared Key signature as the SDK built it for that URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests.adapters

ACCOUNT = "devstoreaccount1"  # Azurite's one account (tests/azurite.py)
STORAGE_HOST = f"{ACCOUNT}.blob.core.windows.net"


class EscapedNetworkCall(RuntimeError):
    """Not a requests/azure-core error, so azure-core neither wraps nor retries it."""


class Network:
    def __init__(self, port: int) -> None:
        self.port = port
        self.storage: list[str] = []  # "METHOD url" of storage requests, as the SDK built the URL
        self.escaped: list[str] = []
        self.recording = False


def redirect_storage(monkeypatch, azurite_connection_string: str) -> Network:
    """Install the redirect on `requests` (undone with `monkeypatch`) and return its record."""
    net = Network(int(azurite_connection_string.rsplit(":", 1)[1].split("/", 1)[0]))
    original = requests.adapters.HTTPAdapter.send

    def send(self, request, *args, **kwargs):
        parts = urlsplit(request.url)
        if parts.hostname == STORAGE_HOST:
            if net.recording:
                net.storage.append(f"{request.method} {request.url}")
            request.headers["Host"] = parts.netloc  # Azurite takes the account from a production-style Host
            request.url = urlunsplit(("http", f"127.0.0.1:{net.port}", parts.path, parts.query, ""))
            return original(self, request, *args, **kwargs)
        if parts.hostname in ("127.0.0.1", "localhost"):
            if net.recording and parts.port == net.port:
                net.storage.append(f"{request.method} {request.url}")
            return original(self, request, *args, **kwargs)
        net.escaped.append(f"{request.method} {request.url}")
        raise EscapedNetworkCall(f"test refused a real network call: {request.method} {request.url}")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return net
