"""Write a store as trm-modules wrote it at core revision 0007_routing_state (main before issue #21), with
rows in every table, through that release's own library calls. Run it WITH THAT RELEASE's code:

    git archive 8f4706d | tar -x -C /tmp/trm-0007 && ln -s adapters /tmp/trm-0007/trm_adapters
    PYTHONPATH=/tmp/trm-0007 python tests/data/write_store_at_0007.py sqlite:///tests/data/store-at-0007.sqlite3
    PYTHONPATH=/tmp/trm-0007 python tests/data/write_store_at_0007.py 'postgresql+psycopg://postgres@127.0.0.1/test?options=-csearch_path%3Dtrm_0007'
    pg_dump --inserts --no-owner --no-privileges --schema=trm_0007 test | sed 's/trm_0007/@SCHEMA@/g' \
        > tests/data/store-at-0007.postgresql.sql

tests/test_plugin_schemas.py upgrades these with today's code and checks that every row is kept.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from trm_adapters.lrs.documents import DocumentKey, DocumentStore, Preconditions
from trm_adapters.lrs.statements import StatementStore
from trm_adapters.lti.storage import LtiStore
from trm_adapters.xapi_outbox import Outbox
from trm_modules.records import FeedbackEvent, SolveContext, SolveRecord
from trm_modules.server.tokens import TokenStore
from trm_modules.store import Recorder, Store
from trm_modules.store.database import current_revision

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
STATEMENT = {"id": "0a1e2d3c-0000-4000-8000-000000000007",
             "actor": {"objectType": "Agent", "mbox": "mailto:yesterday@example.com"},
             "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
             "object": {"objectType": "Activity", "id": "https://course.example/act/1"}}


def main(url: str) -> None:
    store = Store(url)
    store.ensure_schema()
    assert current_revision(store.engine) == "0007_routing_state", current_revision(store.engine)
    with Recorder(store, journal_path="/tmp/trm-0007-journal.jsonl") as recorder:
        recorder.record_solve(SolveRecord(
            id="solve-yesterday-1", module="sudoku-4x4", version="1.0.0", digest="sha256:" + "0" * 64,
            context=SolveContext(platform="moodle", course="c-1", learner="pseudo-yesterday"),
            input={"grid": [[0]]}, output={"grid": [[1]]}, steps=3, confidence=0.9, valid=True, latency_ms=4.0,
            device="cpu", created_at=T0), durable=True)
        recorder.record_feedback(FeedbackEvent(id="fb-yesterday-1", solve_id="solve-yesterday-1", kind="correct",
                                               source="test", actor="pseudo-yesterday", created_at=T0), durable=True)
        recorder.record_xapi_statement(STATEMENT, durable=True)
    TokenStore(store).create(["admin"], name="yesterday")
    StatementStore(store.engine).store([STATEMENT], {"objectType": "Agent", "mbox": "mailto:lrs@example.com"},
                                       batch=False)
    DocumentStore(store.engine).put(
        DocumentKey("state", "https://course.example/act/1", "mbox:mailto:yesterday@example.com", "", "progress"),
        b'{"done": 3}', "application/json", Preconditions())
    Outbox(store.engine).add([STATEMENT])
    lti = LtiStore(store)
    platform = lti.add_platform(issuer="https://moodle.example", client_id="client-1",
                                auth_login_url="https://moodle.example/auth", auth_token_url="https://moodle.example/token",
                                jwks_url="https://moodle.example/jwks", deployment_ids=["d1"])
    lti.create_launch(kind="resource", platform=platform, claims={"sub": "lti-user-yesterday"}, module="sudoku-4x4",
                      version="1.0.0", activity={})
    lti.tool_keys()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
