"""`trm db backup` / `trm db restore`: a store in use (solves, feedback, tokens, xAPI statements, an LTI
platform, routing state) backed up, changed, restored — every row of every table, core and plugins, comes
back as it was. SQLite through its online backup API; PostgreSQL through pg_dump / pg_restore."""

from __future__ import annotations

import shutil
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select, text
from typer.testing import CliRunner

from fixtures.server import build_registry, puzzle
from fixtures.store import BACKENDS, database_url
from trm_adapters.lti import LtiStore
from trm_modules.cli import app
from trm_modules.server import ServerRuntime, ServerSettings, create_app

runner = CliRunner()


def every_row(url: str) -> dict[str, list[tuple]]:
    """Every table of the store and its rows, in a stable order (values as text: JSON, times, bytes)."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted(tuple(str(value) for value in row) for row in connection.execute(select(table)))
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


def use_the_store(tmp_path, url: str) -> None:
    """What a server leaves in its store after some use, in core and plugin tables."""
    registry = build_registry(tmp_path, {"1.0.0": 0, "1.1.0": 1})
    runtime = ServerRuntime.start(
        ServerSettings(
            registry=registry.root,
            db=url,
            journal_path=tmp_path / "j.jsonl",
            cpu_threads=1,
            public_url="http://testserver",
            allow_unsigned=True,
        )
    )
    token = runtime.tokens.create(["solve", "feedback", "admin"], name="all")[0]
    auth = {"Authorization": f"Bearer {token}"}
    LtiStore(runtime.store).add_platform(
        issuer="https://lms.example",
        client_id="c-1",
        deployment_ids=["d-1"],
        auth_login_url="https://lms.example/auth",
        name="LMS",
        auth_token_url="https://lms.example/token",
        jwks_url="https://lms.example/jwks",
    )
    with TestClient(create_app(runtime)) as client:
        for n in range(3):
            answer = client.post(
                "/v1/modules/sudoku-4x4/solve",
                headers=auth,
                json={"input": puzzle(n), "context": {"course": "c-1", "learner": f"p-{n}"}},
            )
            assert answer.status_code == 200, answer.text
            accepted = client.post(
                "/v1/feedback", headers=auth, json={"solve_id": answer.json()["solve_id"], "kind": "correct"}
            )
            assert accepted.status_code == 202, accepted.text
        statement = {
            "id": str(uuid.uuid4()),
            "actor": {"mbox": "mailto:a@example.org"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
            "object": {"id": "http://example.org/activity"},
        }
        stored = client.post("/xapi/statements", json=statement, headers={**auth, "X-Experience-API-Version": "1.0.3"})
        assert stored.status_code == 200, stored.text
        pinned = client.put("/v1/admin/modules/sudoku-4x4/pins/c-9", headers=auth, json={"version": "1.0.0"})
        assert pinned.status_code == 200, pinned.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_backup_then_restore_brings_back_every_row_of_every_table(backend, tmp_path):
    if backend == "postgresql" and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    with database_url(backend, tmp_path) as url:
        use_the_store(tmp_path, url)
        before = every_row(url)
        assert {"solves", "feedback", "api_tokens", "lti_platforms", "routing_state"} <= set(before)
        assert len(before["solves"]) == 3 and len(before["lti_platforms"]) == 1

        backup = tmp_path / "store.backup"
        made = runner.invoke(app, ["db", "backup", "--db", url, "-o", str(backup)])
        assert made.exit_code == 0, made.output
        assert "solves 3" in made.output and "lti_platforms 1" in made.output
        assert backup.stat().st_mode & 0o077 == 0  # learner data: owner only

        engine = create_engine(url)  # what happens after the backup, which the restore must undo
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM feedback"))
            connection.execute(text("DELETE FROM lti_platforms"))
            connection.execute(text("UPDATE api_tokens SET name = 'changed'"))
        engine.dispose()
        assert every_row(url) != before

        restored = runner.invoke(app, ["db", "restore", str(backup), "--db", url])
        assert restored.exit_code == 0, restored.output
        assert every_row(url) == before


def test_a_sqlite_backup_restores_into_a_new_file_and_is_refused_by_postgresql(tmp_path):
    with database_url("sqlite", tmp_path) as url:
        use_the_store(tmp_path, url)
        backup = tmp_path / "store.backup"
        assert runner.invoke(app, ["db", "backup", "--db", url, "-o", str(backup)]).exit_code == 0
        fresh = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
        assert runner.invoke(app, ["db", "restore", str(backup), "--db", fresh]).exit_code == 0
        assert every_row(fresh) == every_row(url)
    refused = runner.invoke(
        app, ["db", "restore", str(backup), "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none"]
    )
    assert refused.exit_code == 1 and "sqlite backup and cannot be restored into a postgresql" in refused.output


def test_a_file_that_is_not_a_backup_is_refused(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a backup at all")
    refused = runner.invoke(app, ["db", "restore", str(junk), "--db", str(tmp_path / "s.sqlite3")])
    assert refused.exit_code == 1 and "is not a trm store backup" in refused.output
