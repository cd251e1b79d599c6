"""What the LRS acknowledged survives ``kill -9`` of ``trm serve`` (a real process, a real SQLite file)."""

from __future__ import annotations

import json
import os
import signal
import uuid

import httpx
import pytest

from fixtures.lrs_conformance import serve


@pytest.mark.slow
def test_statements_and_state_acknowledged_before_kill_9_are_there_after_a_restart(tmp_path):
    statement = {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": "mailto:ada@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": "https://course.example/durable"},
    }
    state = {
        "activityId": "https://course.example/durable",
        "agent": json.dumps({"mbox": "mailto:ada@example.com"}),
        "stateId": "progress",
    }
    process, url, token = serve(tmp_path)
    auth = ("lms", token)
    headers = {"X-Experience-API-Version": "1.0.3"}
    try:
        assert httpx.post(f"{url}/xapi/statements", json=statement, auth=auth, headers=headers).status_code == 200
        assert (
            httpx.put(
                f"{url}/xapi/activities/state", params=state, json={"page": 9}, auth=auth, headers=headers
            ).status_code
            == 204
        )
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    process, url, token = serve(tmp_path)
    auth = ("lms", token)
    try:
        read = httpx.get(f"{url}/xapi/statements", params={"statementId": statement["id"]}, auth=auth, headers=headers)
        assert read.status_code == 200 and read.json()["id"] == statement["id"]
        document = httpx.get(f"{url}/xapi/activities/state", params=state, auth=auth, headers=headers)
        assert document.json() == {"page": 9}
    finally:
        process.terminate()
        process.wait(10)
