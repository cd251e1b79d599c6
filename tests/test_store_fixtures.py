"""Shared fixtures of the store tests (imported by test_store*.py): one database per test, on every backend.

SQLite always runs (a file in the test's tmp dir). PostgreSQL runs when ``TRM_TEST_POSTGRES_URL``
is set, each test in a fresh schema (named in the URL's ``search_path``) dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from trm_modules.records import FeedbackEvent, SolveContext, SolveRecord

POSTGRES_ENV = "TRM_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def postgres_schema_url(base_url: str, schema: str) -> str:
    return make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def database_url(backend: str, tmp_path, name: str = "store"):
    """A context manager yielding a fresh database URL of ``backend`` (skips PostgreSQL when not configured)."""
    import contextlib

    @contextlib.contextmanager
    def _fresh():
        if backend == "sqlite":
            yield f"sqlite:///{tmp_path / (name + '.sqlite3')}"
            return
        base = os.environ.get(POSTGRES_ENV)
        if not base:
            pytest.skip(f"{POSTGRES_ENV} is not set")
        schema = f"trm_test_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield postgres_schema_url(base, schema)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

    return _fresh()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_url(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url):
    from trm_modules.store import Store

    opened = Store(store_url)
    yield opened
    opened.close()


def closed_port_postgres_url() -> str:
    """A PostgreSQL URL nobody listens on (a port just bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere?connect_timeout=2"


def solve(n: int = 0, *, module: str = "parity", version: str = "1.0.0", course: str | None = "algebra-1",
          minutes: float = 0, **overrides) -> SolveRecord:
    fields = dict(id=f"solve-{module}-{version}-{n}", module=module, version=version,
                  digest=f"sha256:{version.replace('.', '') * 8}",
                  context=SolveContext(platform="moodle", course=course, activity="quiz-3", learner=f"learner-{n % 3}"),
                  input={"bits": [n % 2, (n // 2) % 2, 1]}, output={"parity": (n + 1) % 2}, steps=1 + n % 4,
                  confidence=0.9, valid=True, latency_ms=10.0 + n, device="cpu",
                  created_at=T0 + timedelta(minutes=minutes or n))
    fields.update(overrides)
    return SolveRecord(**fields)


def feedback(solve_id: str, kind: str, n: int = 0, *, minutes: float = 100, **overrides) -> FeedbackEvent:
    fields = dict(id=f"fb-{solve_id}-{kind}-{n}", solve_id=solve_id, kind=kind,
                  created_at=T0 + timedelta(minutes=minutes + n))
    fields.update(overrides)
    return FeedbackEvent(**fields)
