"""A learner's personal data across the core and every plugin: declared, exported, erased, expired
(``trm_modules.store.privacy``; ``trm privacy ...``; ``/v1/admin/privacy/...``)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from fixtures.store import BACKENDS, T0, database_url
from trm_modules.records import FeedbackEvent, OutcomeRecord, SolveContext, SolveRecord
from trm_modules.store import Recorder, Store
from trm_modules.store.items import encode_item
from trm_modules.store.journal import Journal
from trm_modules.store.privacy import PrivacyService, Subject, parse_duration

ISSUER = "https://moodle.example"
# The platform's user id is the learner's pseudonym in solves (LTI launches solve under it); content in the
# course sends xAPI statements under the learner's mailbox, which the launch's e-mail claim links.
ANN = {"lti": "ann-lti-4711", "email": "ann.example@school.example", "name": "Annabel Quixote"}
BOB = {"lti": "bob-lti-0815", "email": "bob.example@school.example", "name": "Robert Zephyr"}


def identifiers(who: dict[str, str]) -> list[str]:
    sha1 = "sha1:" + hashlib.sha1(f"mailto:{who['email']}".encode()).hexdigest()
    return [who["lti"], who["email"], who["name"], sha1]


def use_every_surface(store: Store, journal: Path, who: dict[str, str], n: int) -> None:
    """What one learner leaves: an LTI launch, solves (through LTI and under the platform's pseudonym), feedback
    (their own, and via the LRS bridge under a hashed mailbox), LRS statements and a state document, forwarded
    statements in the outbox, a dead letter and a journaled solve."""
    from trm_adapters.lrs.documents import DocumentKey, DocumentStore, Preconditions
    from trm_adapters.lrs.statements import StatementStore
    from trm_adapters.lti.storage import LtiStore
    from trm_adapters.xapi_outbox import Outbox
    from trm_adapters.xapi_statements import StatementNaming, statement_for_feedback, statement_for_solve

    store.ensure_schema()
    lti = LtiStore(store)
    platform = lti.find_platform(ISSUER, "client-1") or lti.add_platform(
        issuer=ISSUER,
        client_id="client-1",
        auth_login_url=f"{ISSUER}/auth",
        auth_token_url=f"{ISSUER}/token",
        jwks_url=f"{ISSUER}/jwks",
        deployment_ids=["d1"],
    )
    lti.create_launch(
        kind="resource-link",
        platform=platform,
        module="sudoku-4x4",
        version="1.0.0",
        activity={},
        claims={"sub": who["lti"], "email": who["email"], "name": who["name"]},
    )
    mailbox = f"mailto:{who['email']}"
    solves = [
        SolveRecord(
            id=f"solve-{who['lti']}-{k}",
            module="sudoku-4x4",
            version="1.0.0",
            digest="sha256:" + "0" * 64,
            context=SolveContext(platform=ISSUER, course="c-1", learner=learner),
            input={"grid": [[n]]},
            output={"grid": [[1]]},
            steps=3,
            confidence=0.9,
            valid=True,
            latency_ms=4.0,
            device="cpu",
            created_at=T0,
        )
        for k, learner in enumerate([who["lti"], who["lti"]])
    ]
    sha1 = "sha1:" + hashlib.sha1(mailbox.encode()).hexdigest()
    feedback = [
        FeedbackEvent(
            id=f"fb-{who['lti']}-own",
            solve_id=solves[0].id,
            kind="rating",
            value=0.5,
            source="lti",
            actor=who["lti"],
            created_at=T0,
        ),
        FeedbackEvent(
            id=f"fb-{who['lti']}-lrs", solve_id=solves[1].id, kind="correct", source="xapi", actor=sha1, created_at=T0
        ),
    ]
    with Recorder(store, journal_path=journal) as recorder:
        for record in solves:
            recorder.record_solve(record, durable=True)
        for event in feedback:
            recorder.record_feedback(event, durable=True)
    statement = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "actor": {"objectType": "Agent", "mbox": mailbox, "name": who["name"]},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"objectType": "Activity", "id": "https://course.example/act/1"},
    }
    account = {"objectType": "Agent", "account": {"homePage": ISSUER, "name": who["lti"]}}
    second = {**statement, "id": f"00000000-0000-4000-9000-{n:012d}", "actor": account}
    StatementStore(store.engine).store([statement, second], {"objectType": "Agent", "mbox": "mailto:lrs@example.com"})
    DocumentStore(store.engine).put(
        DocumentKey("state", "https://course.example/act/1", f"mbox:{mailbox}", "", "progress"),
        json.dumps({"by": who["name"]}).encode(),
        "application/json",
        Preconditions(),
    )
    naming = StatementNaming("https://trm.example")
    Outbox(store.engine).add([statement_for_solve(solves[0], naming), statement_for_feedback(feedback[0], naming)])
    refused = FeedbackEvent(
        id=f"fb-{who['lti']}-refused",
        solve_id="no-such-solve",
        kind="comment",
        value=f"{who['name']} says hi",
        source="lti",
        actor=who["lti"],
        created_at=T0,
    )
    store.add_dead_letters([("feedback", refused.id, encode_item(refused), "test: refused")])


def journal_a_solve_of(journal: Path, who: dict[str, str]) -> None:
    """A solve and an outcome of ``who`` waiting in the journal (as while the database was away)."""
    Journal(journal).append(
        [
            SolveRecord(
                id=f"journaled-{who['lti']}",
                module="sudoku-4x4",
                version="1.0.0",
                digest="sha256:" + "0" * 64,
                context=SolveContext(learner=who["lti"]),
                input={"grid": [[0]]},
                output=None,
                steps=1,
                confidence=0.5,
                valid=None,
                latency_ms=1.0,
                device="cpu",
                created_at=T0,
            ),
            OutcomeRecord(
                id=f"journaled-outcome-{who['lti']}",
                learner=who["lti"],
                course="c-1",
                activity="quiz-2",
                score=0.25,
                created_at=T0,
            ),
        ]
    )


def post_outcomes(data_dir: Path, url: str, *people: dict[str, str]) -> None:
    """Each learner's quiz result through ``POST /v1/outcomes`` of a server over the database ``url`` (journal
    in ``data_dir``), and one more the database refused (a dead letter)."""
    from fixtures.server import served

    with served(data_dir, db=url) as s:
        for who in people:
            body = {
                "id": f"quiz-1/{who['lti']}",
                "learner": who["lti"],
                "course": "c-1",
                "activity": "quiz-1",
                "score": 7,
                "max_score": 10,
                "success": True,
                "solve_ids": [f"solve-{who['lti']}-0"],
            }
            answer = s.client.post("/v1/outcomes", json=body, headers=s.auth("feedback"))
            assert answer.status_code == 202, answer.text
            refused = OutcomeRecord(
                id=f"refused-outcome-{who['lti']}", learner=who["lti"], course="c-1", score=1.0, created_at=T0
            )
            s.runtime.store.add_dead_letters([("outcome", refused.id, encode_item(refused), "test: refused")])


def full_dump(store: Store, url: str) -> str:
    if store.dialect == "sqlite":
        import sqlite3

        connection = sqlite3.connect(make_url(url).database)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()
    schema = make_url(url).query["options"].split("search_path=")[1]
    base = make_url(url).set(drivername="postgresql", query={})
    return subprocess.run(
        ["pg_dump", "--schema", schema, "--inserts", base.render_as_string(hide_password=False)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def folder_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_erased_learner_leaves_no_trace_in_a_full_dump_or_the_data_directory(backend, tmp_path):
    if backend == "postgresql" and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    journal = data_dir / "journal.jsonl"
    with database_url(backend, data_dir) as url:
        store = Store(url)
        use_every_surface(store, journal, ANN, 1)
        use_every_surface(store, journal, BOB, 2)
        post_outcomes(data_dir, url, ANN, BOB)
        journal_a_solve_of(journal, ANN)
        journal_a_solve_of(journal, BOB)
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM learner_outcomes")).scalar() == 2
        before = full_dump(store, url) + folder_bytes(data_dir).decode("utf-8", "replace")
        assert all(value in before for value in identifiers(ANN) + identifiers(BOB))

        result = CliRunner().invoke(
            _app(), ["privacy", "erase", f"lti:{ANN['lti']}", "--db", url, "--journal", str(journal)]
        )
        assert result.exit_code == 0, result.output
        removed = json.loads(result.output)["removed"]
        assert removed["core"]["solves"] == 2 and removed["core"]["feedback"] == 2
        assert removed["lrs"]["lrs_statements"] == 2 and removed["lrs"]["lrs_documents"] == 1
        assert removed["lti"]["lti_launches"] == 1 and removed["xapi_outbox"]["xapi_outbox"] == 2
        assert removed["core"]["learner_outcomes"] == 1
        assert removed["core"]["dead_letters"] == 2 and removed["core"]["journal"] == 2

        after = full_dump(store, url)
        files = folder_bytes(data_dir).decode("utf-8", "replace")
        for value in identifiers(ANN):
            assert value not in after, value
            assert value not in files, value
        for value in identifiers(BOB):
            assert value in after, value
        with store.engine.connect() as connection:
            kept = connection.execute(text("SELECT learner FROM learner_outcomes")).scalars().all()
            links = connection.execute(text("SELECT solve_id FROM learner_outcome_solves")).scalars().all()
        assert kept == [BOB["lti"]] and links == [f"solve-{BOB['lti']}-0"]
        # recorded, without the identity
        with store.engine.connect() as connection:
            audit = connection.execute(text("SELECT action, counts FROM privacy_audit")).all()
        assert [row.action for row in audit] == ["erase"]

        again = PrivacyService(store, journal_paths=[journal]).erase(f"mailto:{ANN['email']}")
        assert all(count == 0 for places in again.counts.values() for count in places.values()), again.counts
        store.close()


def _app():
    from trm_modules.cli import build_app

    return build_app()


def test_export_is_one_document_of_everything_about_the_learner_found_from_any_identifier(tmp_path):
    store = Store(str(tmp_path / "store.sqlite3"))
    journal = tmp_path / "journal.jsonl"
    use_every_surface(store, journal, ANN, 1)
    use_every_surface(store, journal, BOB, 2)
    store.write(
        [
            OutcomeRecord(
                id=f"quiz-1/{who['lti']}",
                learner=who["lti"],
                course="c-1",
                score=0.5,
                solve_ids=[f"solve-{who['lti']}-0"],
                created_at=T0,
            )
            for who in (ANN, BOB)
        ]
    )
    journal_a_solve_of(journal, ANN)
    document = PrivacyService(store, journal_paths=[journal]).export(f"mailto:{ANN['email']}").document
    assert document is not None
    assert ANN["lti"] in document["identifiers"]["lti_users"]
    assert f"mbox:mailto:{ANN['email']}" in document["identifiers"]["xapi_agents"]
    data = document["data"]
    assert len(data["core"]["solves"]) == 2 and len(data["lrs"]["lrs_statements"]) == 2
    assert len(data["lti"]["lti_launches"]) == 1 and len(data["xapi_outbox"]["xapi_outbox"]) == 2
    assert len(data["core"]["journal"]) == 2 and len(data["core"]["dead_letters"]) == 1
    assert [(row["id"], row["solve_ids"]) for row in data["core"]["learner_outcomes"]] == [
        (f"quiz-1/{ANN['lti']}", [f"solve-{ANN['lti']}-0"])
    ]
    assert BOB["lti"] not in json.dumps(document) and BOB["email"] not in json.dumps(document)
    assert set(document["declared"]) == {"core", "lrs", "lti", "xapi_outbox"}
    store.close()


def test_expire_removes_what_is_older_than_the_cut_off_everywhere(tmp_path):
    store = Store(str(tmp_path / "store.sqlite3"))
    use_every_surface(store, tmp_path / "journal.jsonl", ANN, 1)
    store.write([OutcomeRecord(id="quiz-1", learner=ANN["lti"], course="c-1", success=True, created_at=T0)])
    report = PrivacyService(store, journal_paths=[]).expire(timedelta(days=3650), now=T0 + timedelta(days=1))
    assert sum(report.counts["core"].values()) == 0  # nothing is ten years old
    report = PrivacyService(store, journal_paths=[]).expire(parse_duration("1d"), now=T0 + timedelta(days=400))
    assert report.counts["core"]["solves"] == 2 and report.counts["core"]["feedback"] == 2
    assert report.counts["core"]["learner_outcomes"] == 1
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM solves")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM learner_outcomes")).scalar() == 0
    store.close()


def test_identifiers_parse_into_the_kinds_the_providers_know():
    assert Subject.parse("mailto:Ann@Example.com").agent_keys == {"mbox:mailto:ann@example.com"}
    assert Subject.parse("account:https://lms.example|u-17").derived_pseudonyms() == {"u-17"}
    assert Subject.parse("lti:abc").lti_users == {"abc"}
    assert Subject.parse("u-17").pseudonyms == {"u-17"}
    with pytest.raises(ValueError):
        parse_duration("a year")


def test_the_admin_routes_need_the_admin_scope_and_erase_idempotently(tmp_path):
    from fixtures.server import served

    with served(tmp_path) as s:
        use_every_surface(s.runtime.store, s.runtime.recorder.journal_path, ANN, 1)
        body = {"learner": f"lti:{ANN['lti']}"}
        assert s.client.post("/v1/admin/privacy/erase", json=body).status_code == 401
        assert s.client.post("/v1/admin/privacy/erase", json=body, headers=s.auth("solve")).status_code == 403
        first = s.client.post("/v1/admin/privacy/erase", json=body, headers=s.auth("admin"))
        assert first.status_code == 200, first.text
        assert first.json()["removed"]["core"]["solves"] == 2
        second = s.client.post("/v1/admin/privacy/erase", json=body, headers=s.auth("admin")).json()
        assert all(count == 0 for places in second["removed"].values() for count in places.values())
        exported = s.client.post("/v1/admin/privacy/export", json=body, headers=s.auth("admin")).json()
        assert exported["data"]["core"]["solves"] == []
        expired = s.client.post("/v1/admin/privacy/expire", json={"older_than": "nonsense"}, headers=s.auth("admin"))
        assert expired.status_code in (400, 422)


def test_a_third_party_plugin_declares_exports_and_erases_its_own_learner_data(tmp_path):
    from plugins.notes_plugin import NotesPlugin
    from trm_modules.plugins import build_plugin_manager

    pm = build_plugin_manager(entry_points=True, paths="")
    pm.register(NotesPlugin(), name="notes-plugin")
    store = Store(str(tmp_path / "store.sqlite3"), plugins=pm)
    use_every_surface(store, tmp_path / "journal.jsonl", ANN, 1)
    with store.engine.begin() as connection:
        for who in (ANN, BOB):
            connection.execute(
                text("INSERT INTO notes_entries (solve_id, learner, text) VALUES (:s, :l, :t)"),
                {"s": f"solve-{who['lti']}-0", "l": who["lti"], "t": f"{who['name']} needs hints"},
            )
    service = PrivacyService(store, journal_paths=[])
    assert [item.where for item in service.declarations()["notes"]] == ["notes_entries"]
    exported = service.export(f"mailto:{ANN['email']}").document
    assert exported is not None and [row["text"] for row in exported["data"]["notes"]["notes_entries"]] == [
        f"{ANN['name']} needs hints"
    ]
    assert service.erase(f"lti:{ANN['lti']}").counts["notes"] == {"notes_entries": 1}
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT learner FROM notes_entries")).scalars().all() == [BOB["lti"]]
    store.close()
