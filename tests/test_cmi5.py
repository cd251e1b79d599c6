"""cmi5 course export: ``cmi5.xml`` validates against cmi5's CourseStructure.xsd (xmllint), and the AU, launched
in headless Chromium the way a cmi5 LMS launches it (played by the test), runs the launch sequence against
``trm serve``'s own LRS; the statements the LRS then holds are checked against the cmi5 specification's rules.

Needs Chromium, node and npm (tests/fixtures/browser.py) and the cmi5 specification's XSD (``/work/shared`` or a
``shared/`` folder beside the checkout).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from fixtures.browser import FIXTURES, QuietHandler, require_browser, require_xmllint, run_driver
from test_server_e2e import create_token, free_port
from fixtures.server import build_registry
from trm_adapters.cmi5 import MASTERY_SCORE, MOVE_ON, course_structure, export_cmi5
from trm_modules.package import open_package

REPO = Path(__file__).resolve().parents[1]
TRAINED_SUDOKU = REPO / "registry" / "packages" / "sudoku-4x4" / "sudoku-4x4-1.0.0.trm"
XSD_CANDIDATES = [
    Path("/work/shared/conformance/cmi5-spec/v1/CourseStructure.xsd"),
    REPO.parent / "shared" / "conformance" / "cmi5-spec" / "v1" / "CourseStructure.xsd",
]
CMI5 = "https://w3id.org/xapi/cmi5/"
SESSION_ID = CMI5 + "context/extensions/sessionid"
CMI5_CATEGORY = CMI5 + "context/categories/cmi5"
MOVEON_CATEGORY = CMI5 + "context/categories/moveon"
VERB = "http://adlnet.gov/expapi/verbs/"
CMI5_DEFINED = {
    VERB + v
    for v in (
        "launched",
        "initialized",
        "completed",
        "passed",
        "failed",
        "abandoned",
        "waived",
        "terminated",
        "satisfied",
    )
} | {
    "https://w3id.org/xapi/adl/verbs/abandoned",
    "https://w3id.org/xapi/adl/verbs/waived",
    "https://w3id.org/xapi/adl/verbs/satisfied",
}
ACTOR = {
    "objectType": "Agent",
    "name": "Learner 42",
    "account": {"homePage": "https://lms.example", "name": "learner-42"},
}


def course_structure_xsd() -> Path:
    for candidate in XSD_CANDIDATES:
        if candidate.is_file():
            return candidate
    if os.environ.get("CI"):
        pytest.fail(f"cmi5's CourseStructure.xsd is missing (looked in {', '.join(map(str, XSD_CANDIDATES))})")
    pytest.skip("cmi5's CourseStructure.xsd is not on this machine")


@pytest.fixture(scope="module")
def course_zip(tmp_path_factory) -> Path:
    if not shutil.which("npm"):
        require_browser()
    return export_cmi5(open_package(TRAINED_SUDOKU), tmp_path_factory.mktemp("cmi5") / "course.zip", puzzles=2).path


# ----------------------------------------------------------------------------- course structure
def test_exported_cmi5_xml_validates_against_the_course_structure_xsd(course_zip, tmp_path):
    xsd = course_structure_xsd()
    with zipfile.ZipFile(course_zip) as zf:
        assert (
            zf.namelist()[0] == "cmi5.xml" and "index.html" in zf.namelist() and "vendor/Cmi5.umd.js" in zf.namelist()
        )
        (tmp_path / "cmi5.xml").write_bytes(zf.read("cmi5.xml"))
    run = subprocess.run(
        [require_xmllint(), "--noout", "--nonet", "--schema", str(xsd), str(tmp_path / "cmi5.xml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr


def test_xmllint_rejects_a_course_structure_with_a_moveon_cmi5_does_not_define(tmp_path):
    xsd = course_structure_xsd()
    bad = course_structure(
        course_id="urn:c", au_id="urn:c:au", title="T", description="D", url="index.html", move_on="Whenever"
    )
    (tmp_path / "cmi5.xml").write_text(bad)
    run = subprocess.run(
        [require_xmllint(), "--noout", "--nonet", "--schema", str(xsd), str(tmp_path / "cmi5.xml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "moveOn" in run.stderr


def test_the_course_has_one_au_that_moves_on_when_passed_at_the_mastery_score(course_zip):
    import xml.etree.ElementTree as ET

    ns = {"c": "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd"}
    with zipfile.ZipFile(course_zip) as zf:
        root = ET.fromstring(zf.read("cmi5.xml"))
    (au,) = root.findall("c:au", ns)
    assert au.get("moveOn") == MOVE_ON == "Passed" and float(au.get("masteryScore")) == MASTERY_SCORE
    assert au.find("c:url", ns).text == "index.html" and au.get("launchMethod") == "AnyWindow"


# ------------------------------------------------------------------------ the LMS, played here
@pytest.fixture(scope="module")
def lrs(tmp_path_factory):
    """``trm serve`` as a subprocess: its /xapi LRS is the one the AU talks to."""
    root = tmp_path_factory.mktemp("cmi5-lrs")
    registry = build_registry(root, {"1.0.0": 0})
    db = str(root / "store.sqlite3")
    token = create_token(db, "feedback")
    port = free_port()
    env = {**os.environ, "TRM_HOME": str(root / "home"), "OMP_NUM_THREADS": "1", "XDG_DATA_HOME": str(root / "data")}
    env.pop("TRM_XAPI_LRS_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trm_modules.cli",
            "serve",
            "--port",
            str(port),
            "--registry",
            str(registry.root),
            "--db",
            db,
            "--cpu-threads",
            "1",
            "--no-bootstrap-token",
            "--public-url",
            f"http://127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    yield url, token
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


class LmsHandler(QuietHandler):
    """Serves the AU's files and the launch's one-time fetch URL (POST /fetch/<id> → {"auth-token": …})."""

    fetch_tokens: dict[str, str]

    def do_POST(self) -> None:
        key = self.path.rsplit("/", 1)[-1]
        token = self.fetch_tokens.pop(key, None) if self.path.startswith("/fetch/") else None
        body = json.dumps(
            {"auth-token": token} if token else {"error-code": "1", "error-text": "this fetch URL was already used"}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class PlayedLms:
    """The cmi5 LMS side of a launch: LMS.LaunchData in the State resource, learner preferences, the
    "launched" statement, a one-time fetch URL and the launch URL (cmi5 sections 8 and 10)."""

    def __init__(self, lrs_url: str, token: str, content_url: str, fetch_tokens: dict[str, str], au_id: str) -> None:
        self.xapi = httpx.Client(
            base_url=f"{lrs_url}/xapi", timeout=30, auth=("lms", token), headers={"X-Experience-API-Version": "1.0.3"}
        )
        self.lrs_url, self.token, self.content_url, self.fetch_tokens, self.au_id = (
            lrs_url,
            token,
            content_url,
            fetch_tokens,
            au_id,
        )

    def launch(self, mode: str = "Normal") -> dict:
        registration, session = str(uuid.uuid4()), str(uuid.uuid4())
        template = {
            "contextActivities": {"grouping": [{"objectType": "Activity", "id": self.au_id}]},
            "extensions": {SESSION_ID: session},
        }
        launch_data = {
            "contextTemplate": template,
            "launchMode": mode,
            "moveOn": MOVE_ON,
            "masteryScore": MASTERY_SCORE,
            "returnURL": f"{self.content_url}/returned",
        }
        state = {
            "activityId": self.au_id,
            "agent": json.dumps(ACTOR),
            "registration": registration,
            "stateId": "LMS.LaunchData",
        }
        response = self.xapi.put("/activities/state", params=state, json=launch_data)
        assert response.status_code == 204, response.text
        preferences = {"agent": json.dumps(ACTOR), "profileId": "cmi5LearnerPreferences"}
        response = self.xapi.put(
            "/agents/profile",
            params=preferences,
            headers={"If-None-Match": "*"},
            json={"languagePreference": "en-US", "audioPreference": "on"},
        )
        assert response.status_code in (204, 412), response.text  # 412: set by an earlier launch
        launched = {
            "actor": ACTOR,
            "verb": {"id": VERB + "launched", "display": {"en-US": "Launched"}},
            "object": {"objectType": "Activity", "id": self.au_id},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "context": {
                "registration": registration,
                "contextActivities": {**template["contextActivities"], "category": [{"id": CMI5_CATEGORY}]},
                "extensions": {
                    **template["extensions"],
                    CMI5 + "context/extensions/launchmode": mode,
                    CMI5 + "context/extensions/moveon": MOVE_ON,
                    CMI5 + "context/extensions/launchurl": f"{self.content_url}/au/index.html",
                },
            },
        }
        response = self.xapi.post("/statements", json=launched)
        assert response.status_code == 200, response.text
        fetch_id = secrets.token_urlsafe(16)
        self.fetch_tokens[fetch_id] = base64.b64encode(f"lms:{self.token}".encode()).decode()
        query = urlencode(
            {
                "endpoint": f"{self.lrs_url}/xapi/",
                "fetch": f"{self.content_url}/fetch/{fetch_id}",
                "registration": registration,
                "activityId": self.au_id,
                "actor": json.dumps(ACTOR),
            }
        )
        return {"registration": registration, "session": session, "url": f"{self.content_url}/au/index.html?{query}"}

    def statements(self, registration: str) -> list[dict]:
        response = self.xapi.get(
            "/statements", params={"registration": registration, "ascending": "true", "limit": "100"}
        )
        assert response.status_code == 200, response.text
        return response.json()["statements"]


@pytest.fixture(scope="module")
def sessions(course_zip, lrs, tmp_path_factory):
    """Three launches in one Chromium: the learner solves alone (Normal), asks the module and submits its
    answer (Normal), solves alone in Browse mode. Returns what each page showed and the statements stored."""
    require_browser()
    site = tmp_path_factory.mktemp("cmi5-site")
    with zipfile.ZipFile(course_zip) as zf:
        zf.extractall(site / "au")
        au_id = (
            __import__("xml.etree.ElementTree", fromlist=["x"])
            .fromstring(zf.read("cmi5.xml"))
            .find("{https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd}au")
            .get("id")
        )
    fetch_tokens: dict[str, str] = {}
    handler = type("Handler", (LmsHandler,), {"fetch_tokens": fetch_tokens})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lms = PlayedLms(*lrs, f"http://127.0.0.1:{server.server_address[1]}", fetch_tokens, au_id)
        launches = {"alone": lms.launch(), "helped": lms.launch(), "browse": lms.launch("Browse")}
        shots = os.environ.get("TRM_SCORM_SCREENSHOTS", "")
        plan = [
            {
                "name": name,
                "url": launch["url"],
                "mode": "helped" if name == "helped" else "alone",
                "screenshot": str(Path(shots) / f"cmi5-{name}.png") if shots else "",
            }
            for name, launch in launches.items()
        ]
        pages = run_driver(FIXTURES / "cmi5_driver.cjs", {"LAUNCHES": json.dumps(plan)})
        return {
            name: {**launch, "page": pages[name], "statements": lms.statements(launch["registration"]), "au_id": au_id}
            for name, launch in launches.items()
        }
    finally:
        server.shutdown()
        server.server_close()


def verbs(statements: list[dict], defined_only: bool = True) -> list[str]:
    return [
        s["verb"]["id"].rsplit("/", 1)[-1] for s in statements if not defined_only or s["verb"]["id"] in CMI5_DEFINED
    ]


def by_verb(statements: list[dict], verb: str) -> dict:
    (statement,) = [s for s in statements if s["verb"]["id"] == VERB + verb]
    return statement


# ----------------------------------------------------------------------------- the rules
def test_the_au_follows_the_launch_sequence_to_terminated(sessions):
    alone = sessions["alone"]
    assert "cmi5, Normal mode" in alone["page"]["lms"], alone["page"]
    assert verbs(alone["statements"]) == ["launched", "initialized", "passed", "completed", "terminated"]
    assert "closed" in alone["page"]["closedStatus"] and "recorded" in alone["page"]["closedStatus"]


def test_every_au_statement_carries_the_registration_session_actor_and_context_template(sessions):
    for name in ("alone", "helped", "browse"):
        session = sessions[name]
        for statement in session["statements"]:
            context = statement["context"]
            assert context["registration"] == session["registration"]
            assert context["extensions"][SESSION_ID] == session["session"]
            assert {"objectType": "Activity", "id": session["au_id"]} in [
                {"objectType": a.get("objectType", "Activity"), "id": a["id"]}
                for a in context["contextActivities"]["grouping"]
            ]
            assert statement["actor"]["account"] == ACTOR["account"]


def test_cmi5_defined_statements_are_about_the_au_and_carry_the_cmi5_category(sessions):
    for statement in sessions["alone"]["statements"] + sessions["helped"]["statements"]:
        categories = [c["id"] for c in statement["context"]["contextActivities"].get("category", [])]
        if statement["verb"]["id"] in CMI5_DEFINED:
            assert statement["object"]["id"] == sessions["alone"]["au_id"] and CMI5_CATEGORY in categories
        else:  # "cmi5 allowed": the answer and the module's help, never with the cmi5 category
            assert CMI5_CATEGORY not in categories


def test_passed_completed_and_terminated_carry_their_results(sessions):
    statements = sessions["alone"]["statements"]
    passed, completed, terminated = (by_verb(statements, v) for v in ("passed", "completed", "terminated"))
    assert passed["result"]["success"] is True and passed["result"]["score"]["scaled"] >= MASTERY_SCORE
    assert completed["result"]["completion"] is True
    for statement in (passed, completed):
        assert MOVEON_CATEGORY in [c["id"] for c in statement["context"]["contextActivities"]["category"]]
    for statement in (passed, completed, terminated):
        assert statement["result"]["duration"].startswith("PT")
    timestamps = [s["timestamp"] for s in statements]
    assert timestamps == sorted(timestamps)


def test_submitting_the_modules_answer_fails_with_score_zero_and_the_help_is_recorded(sessions):
    statements = sessions["helped"]["statements"]
    assert verbs(statements) == ["launched", "initialized", "failed", "completed", "terminated"]
    failed = by_verb(statements, "failed")
    assert failed["result"]["success"] is False and failed["result"]["score"]["scaled"] == 0
    assert "interacted" in verbs(statements, defined_only=False), sessions["helped"]["page"]["consoleLines"]
    help_statement = by_verb(statements, "interacted")
    assert "module-help" in help_statement["object"]["id"]


def test_browse_mode_records_no_completion_or_score(sessions):
    browse = sessions["browse"]
    assert verbs(browse["statements"]) == ["launched", "initialized", "terminated"]
    assert "not recorded in this mode" in browse["page"]["lms"]
