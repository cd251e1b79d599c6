"""xAPI clients nobody here wrote, against ``trm serve``'s LRS over a real socket.

Python ``tincan``, npm ``@xapi/xapi`` and TinCanJS each write a statement and read it back, write
and read a state document, and void the statement; Learning Locker's ``xapi-validation`` checks
every kind of statement the server sends out. The npm packages come from ``$TRM_XAPI_NODE_CLIENTS``
(``.ci/run`` installs them there), else they are installed once into the user cache; the node tests
skip only where node/npm are absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from fixtures.server import on_a_socket, served
from trm_adapters.xapi_statements import StatementNaming, statement_for_feedback, statement_for_solve
from trm_modules.records import FeedbackEvent, SolveRecord

CLIENTS_ENV = "TRM_XAPI_NODE_CLIENTS"
NPM_PACKAGES = ("@xapi/xapi@3.0.3", "tincanjs@0.50.0", "xapi-validation@2.1.4")
SCRIPT = Path(__file__).parent / "fixtures" / "xapi_clients.js"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The folder holding the npm clients (installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    import platformdirs

    prefix = Path(
        os.environ.get(CLIENTS_ENV)
        or Path(platformdirs.user_cache_dir("trm-modules", appauthor=False)) / "xapi-clients"
    )
    modules = prefix / "node_modules"
    if not all((modules / name.rsplit("@", 1)[0]).is_dir() for name in NPM_PACKAGES):
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(prefix), *NPM_PACKAGES],
            check=True,
            timeout=300,
        )
    return modules


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """``trm serve``'s app behind a real socket; yields (served, xAPI endpoint)."""
    with served(tmp_path_factory.mktemp("clients")) as s, on_a_socket(s.runtime) as url:
        yield s, url + "/xapi"


def node(node_modules: Path, *args: str, stdin: str | None = None) -> dict | list:
    run = subprocess.run(
        ["node", str(SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(node_modules)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


@pytest.mark.parametrize("client", ["xapi", "tincanjs"])
def test_an_npm_client_writes_and_reads_statements_state_and_voids(node_modules, live, client):
    server, endpoint = live
    result = node(node_modules, client, endpoint, server.tokens["feedback"])
    assert result["ids"] == [result["sent"]] and result["read"] == result["sent"]
    assert result["state"] == {"page": 4}
    assert result["voided"] == result["sent"]
    if "readAfterVoid" in result:
        assert result["readAfterVoid"] == 404


def test_the_python_tincan_client_writes_and_reads_statements_state_and_voids(live):
    from tincan import Activity, Agent, RemoteLRS, Statement, StatementRef, Verb

    server, endpoint = live
    lrs = RemoteLRS(endpoint=endpoint + "/", version="1.0.3", username="lms", password=server.tokens["feedback"])
    learner = Agent(mbox=f"mailto:py-{uuid.uuid4()}@example.com", name="Py Learner")
    activity = Activity(id="https://course.example/activities/tincan-python")
    sent = Statement(
        id=uuid.uuid4(), actor=learner, verb=Verb(id="http://adlnet.gov/expapi/verbs/experienced"), object=activity
    )
    assert lrs.save_statement(sent).success
    read = lrs.retrieve_statement(str(sent.id))
    assert read.success and str(read.content.id) == str(sent.id)
    assert lrs.save_state(_state(activity, learner)).success
    state = lrs.retrieve_state(activity=activity, agent=learner, state_id="bookmark")
    assert state.success and json.loads(state.content.content) == {"page": 4}
    void = Statement(
        actor=learner, verb=Verb(id="http://adlnet.gov/expapi/verbs/voided"), object=StatementRef(id=sent.id)
    )
    assert lrs.save_statement(void).success
    voided = lrs.retrieve_voided_statement(str(sent.id))
    assert voided.success and str(voided.content.id) == str(sent.id)
    assert not lrs.retrieve_statement(str(sent.id)).success


def _state(activity, agent):
    from tincan import StateDocument

    return StateDocument(
        id="bookmark", activity=activity, agent=agent, content_type="application/json", content=json.dumps({"page": 4})
    )


def outbound_statements() -> list[dict]:
    """Every kind of statement the forwarder sends: solves in each context, feedback of each kind."""
    naming = StatementNaming("https://trm.example", {"lms": "https://lms.example"})
    base = dict(
        module="sudoku-4x4",
        version="1.0.0",
        digest="sha256:" + "0" * 64,
        input={"grid": [[0]]},
        output={"grid": [[1]]},
        steps=2,
        confidence=0.5,
        latency_ms=3.2,
        device="cpu",
    )
    contexts = [
        {},
        {"platform": "lms", "course": "logic-101", "activity": "week-1", "learner": "p-7"},
        {"platform": "https://other.example", "learner": "p-8"},
        {"actor": {"account": {"homePage": "https://cmi5.example", "name": "u-1"}}, "registration": str(uuid.uuid4())},
    ]
    solves = [
        SolveRecord(id=f"s-{i}-{valid}", context=context, valid=valid, **base)
        for i, context in enumerate(contexts)
        for valid in (True, False, None)
    ]
    events = [
        FeedbackEvent(solve_id="s-1", kind="correct"),
        FeedbackEvent(solve_id="s-1", kind="incorrect", actor="t"),
        FeedbackEvent(solve_id="s-1", kind="rating", value=0.5),
        FeedbackEvent(solve_id="s-1", kind="correction", corrected_output={"grid": [[2]]}),
        FeedbackEvent(solve_id="s-1", kind="comment", value="good"),
        FeedbackEvent(solve_id="s-1", kind="void", voids=str(uuid.uuid4())),
    ]
    return [statement_for_solve(r, naming) for r in solves] + [statement_for_feedback(e, naming) for e in events]


def test_every_kind_of_outbound_statement_is_valid_under_xapi_validation(node_modules):
    statements = outbound_statements()
    checked = node(node_modules, "validate", stdin=json.dumps(statements))
    assert len(checked) == len(statements) == 18
    assert [c for c in checked if c["problems"]] == []


def test_every_kind_of_outbound_statement_is_accepted_by_the_lrs(live):
    server, endpoint = live
    response = server.client.post(
        "/xapi/statements",
        json=outbound_statements(),
        headers={**server.auth("feedback"), "X-Experience-API-Version": "1.0.3"},
    )
    assert response.status_code == 200, response.text
