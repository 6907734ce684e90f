"""Fixtures for driving a running Herald node (or cluster) through the official `knockapi` SDK.

Environment:
  HERALD_URL          base URL of one node, e.g. http://127.0.0.1:7000 (required unless HERALD_URLS is set)
  HERALD_URLS         comma-separated base URLs of several nodes of one cluster; writes go through one
                      node and reads come back through another
  HERALD_SECRET_KEY   an `sk_...` key of the environment under test
  HERALD_PUSH_CHANNEL_ID / HERALD_CHAT_CHANNEL_ID
                      ids of a push channel and a Slack chat channel configured in that environment
                      (default: fresh uuids, for a server that does not check channel existence)
  HERALD_BULK_TIMEOUT seconds to wait for a bulk operation to finish (default 60)

Every client is built with `_strict_response_validation=True`, so each response body is validated
against the SDK's pydantic models and a shape mismatch raises `knockapi.APIResponseValidationError`.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, List

import httpx
import knockapi
import pytest
from knockapi.types import BulkOperation

RUN_ID = uuid.uuid4().hex[:10]


def _urls() -> List[str]:
    raw = os.environ.get("HERALD_URLS") or os.environ.get("HERALD_URL") or ""
    urls = [u.strip().rstrip("/") for u in raw.split(",") if u.strip()]
    if not urls:
        raise pytest.UsageError("set HERALD_URL (or HERALD_URLS) to the base URL of a running Herald node")
    return urls


def pytest_configure(config: pytest.Config) -> None:
    _urls()  # fail fast with a clear message, also under --collect-only


def pytest_report_header(config: pytest.Config) -> List[str]:
    return [f"herald nodes: {', '.join(_urls())}; run id: {RUN_ID}"]


def _secret_key() -> str:
    key = os.environ.get("HERALD_SECRET_KEY")
    if not key:
        raise RuntimeError("set HERALD_SECRET_KEY to a secret (sk_) key of the environment under test")
    return key


def make_client(base_url: str, api_key: str | None = None) -> knockapi.Knock:
    return knockapi.Knock(
        api_key=api_key or _secret_key(),
        base_url=base_url,
        _strict_response_validation=True,
        max_retries=2,
        timeout=30.0,
    )


@dataclass
class Nodes:
    """`w` is the client writes go through; `r` is the client reads come back through.

    With one node both point at it; with several, `r` is always a different node from `w`."""

    w: knockapi.Knock
    r: knockapi.Knock
    w_url: str
    r_url: str


_rotation = itertools.count()


@pytest.fixture(scope="session")
def urls() -> List[str]:
    return _urls()


@pytest.fixture(scope="session")
def secret_key() -> str:
    return _secret_key()


@pytest.fixture(scope="session")
def clients(urls: List[str], secret_key: str) -> List[knockapi.Knock]:
    cs = [make_client(u, secret_key) for u in urls]
    yield cs
    for c in cs:
        c.close()


@pytest.fixture
def kn(urls: List[str], clients: List[knockapi.Knock]) -> Nodes:
    """A writer/reader pair; the pair rotates from test to test so every node takes both roles."""
    i = next(_rotation) % len(urls)
    j = (i + 1) % len(urls)
    return Nodes(w=clients[i], r=clients[j], w_url=urls[i], r_url=urls[j])


@pytest.fixture
def raw(kn: Nodes) -> httpx.Client:
    """A plain httpx client on the writer node, for requests the SDK cannot make."""
    with httpx.Client(base_url=kn.w_url, timeout=60.0) as c:
        yield c


def new_id(kind: str) -> str:
    return f"herald-py-{kind}-{RUN_ID}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def push_channel_id() -> str:
    return os.environ.get("HERALD_PUSH_CHANNEL_ID") or str(uuid.uuid4())


@pytest.fixture(scope="session")
def chat_channel_id() -> str:
    return os.environ.get("HERALD_CHAT_CHANNEL_ID") or str(uuid.uuid4())


@pytest.fixture
def cleanup(kn: Nodes):
    """Register best-effort teardown calls; a 404 during teardown is fine (the test deleted it)."""
    calls: List[Callable[[], Any]] = []
    yield calls.append
    for call in reversed(calls):
        try:
            call()
        except knockapi.NotFoundError:
            pass


def wait_bulk(client: knockapi.Knock, op: BulkOperation, *, expect_rows: int) -> BulkOperation:
    """Poll GET /v1/bulk_operations/{id} until the operation leaves queued/processing."""
    assert op.api_typename == "BulkOperation"
    assert op.id and op.name
    assert op.status in ("queued", "processing", "completed")
    assert op.estimated_total_rows == expect_rows, op
    timeout = float(os.environ.get("HERALD_BULK_TIMEOUT", "60"))
    deadline = time.monotonic() + timeout
    current = op
    while current.status in ("queued", "processing"):
        if time.monotonic() > deadline:
            raise AssertionError(f"bulk operation {op.id} still {current.status} after {timeout}s: {current}")
        time.sleep(0.2)
        current = client.bulk_operations.get(op.id)
        assert current.id == op.id
        assert current.api_typename == "BulkOperation"
    assert current.status == "completed", current
    assert current.completed_at is not None, current
    assert current.failed_at is None, current
    assert current.estimated_total_rows == expect_rows, current
    assert current.processed_rows == expect_rows, current
    assert current.success_count == expect_rows, current
    assert (current.error_count or 0) == 0, current
    assert not current.error_items, current
    assert current.updated_at >= current.inserted_at
    return current
