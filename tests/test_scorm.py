"""SCORM 2004 4th Edition export: the manifest validates against ADL's schemas (shipped in the zip), and the
activity runs the trained sudoku-4x4 module in headless Chromium under scorm-again (a SCORM 2004 runtime),
reporting a score that credits the learner only with the learner's own work.

The browser tests need Chromium, node and npm (see tests/fixtures/browser.py); ``TRM_SCORM_SCREENSHOTS=folder``
saves screenshots of the activity there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from fixtures.browser import FIXTURES, npm_tools, require_browser, require_xmllint, run_driver, serve_folder
from fixtures.packages import build_tiny_package
from trm_adapters.scorm import ScormExportError, export_scorm, scorm_manifest
from trm_adapters.scorm.export import activity_document, xml_id
from trm_modules.package import open_package
from trm_modules.views import DEFAULT_VIEWS, views_of

REPO = Path(__file__).resolve().parents[1]
#: Puzzles in the exported activity; the page answers each, and the server must answer alike.
ANSWERED_PUZZLES = 12
TRAINED_SUDOKU = REPO / "registry" / "packages" / "sudoku-4x4" / "sudoku-4x4-1.0.0.trm"
SCHEMAS = REPO / "adapters" / "scorm" / "schemas"
NS = {"cp": "http://www.imsglobal.org/xsd/imscp_v1p1", "adlcp": "http://www.adlnet.org/xsd/adlcp_v1p3"}
#: One schema importing every namespace of the manifest from the copies in the zip, so that xmllint
#: checks each element against its own schema (lax wildcards would otherwise skip them).
ALL_NAMESPACES_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:trm-tests:scorm-namespaces">
  <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="xml.xsd"/>
  <xs:import namespace="http://www.imsglobal.org/xsd/imscp_v1p1" schemaLocation="imscp_v1p1.xsd"/>
  <xs:import namespace="http://www.adlnet.org/xsd/adlcp_v1p3" schemaLocation="adlcp_v1p3.xsd"/>
  <xs:import namespace="http://www.adlnet.org/xsd/adlseq_v1p3" schemaLocation="adlseq_v1p3.xsd"/>
  <xs:import namespace="http://www.adlnet.org/xsd/adlnav_v1p3" schemaLocation="adlnav_v1p3.xsd"/>
  <xs:import namespace="http://www.imsglobal.org/xsd/imsss" schemaLocation="imsss_v1p0.xsd"/>
  <xs:import namespace="http://ltsc.ieee.org/xsd/LOM" schemaLocation="lom.xsd"/>
</xs:schema>
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return open_package(build_tiny_package(tmp_path_factory.mktemp("scorm") / "m.trm", name="sudoku-4x4"))


@pytest.fixture(scope="module")
def trained_activity(tmp_path_factory) -> Path:
    """The trained sudoku-4x4 module exported as a SCORM zip (onnxruntime-web from npm)."""
    if not shutil.which("npm"):
        require_browser()
    return export_scorm(
        open_package(TRAINED_SUDOKU), tmp_path_factory.mktemp("scorm-zip") / "activity.zip", puzzles=ANSWERED_PUZZLES
    ).path


def xmllint_validate(folder: Path, document: str) -> subprocess.CompletedProcess:
    (folder / "all-namespaces.xsd").write_text(ALL_NAMESPACES_XSD)
    return subprocess.run(
        [require_xmllint(), "--noout", "--nonet", "--schema", "all-namespaces.xsd", document],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ------------------------------------------------------------------------------- the package
def test_manifest_is_scorm_2004_4th_edition_with_one_sco_listing_every_file():
    root = ET.fromstring(scorm_manifest("urn:x", "Title", "About", "1.0.0", ["index.html", "model.onnx"]))
    assert root.find("cp:metadata/cp:schemaversion", NS).text == "2004 4th Edition"
    assert root.find("cp:organizations", NS).get("default") == root.find("cp:organizations/cp:organization", NS).get(
        "identifier"
    )
    resource = root.find("cp:resources/cp:resource", NS)
    assert resource.get(f"{{{NS['adlcp']}}}scormType") == "sco" and resource.get("href") == "index.html"
    assert [f.get("href") for f in resource.findall("cp:file", NS)] == ["index.html", "model.onnx"]


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("urn:trm-modules:module:sudoku-4x4#scorm", "urn-trm-modules-module-sudoku-4x4-scorm"),
        ("4x4 grid", "id-4x4-grid"),
        ("a.b_c-d", "a.b_c-d"),
    ],
)
def test_manifest_identifier_is_an_xml_id_derived_from_the_module_uri(uri, expected):
    assert xml_id(uri) == expected


def test_shipped_schema_files_are_adls_unmodified():
    sums = [line.split() for line in (SCHEMAS / "SHA256SUMS").read_text().splitlines()]
    assert len(sums) == 36
    for digest, name in sums:
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, name


def test_exported_manifest_validates_with_xmllint_against_the_schemas_in_the_zip(trained_activity, tmp_path):
    with zipfile.ZipFile(trained_activity) as zf:
        names = set(zf.namelist())
        assert {
            "imsmanifest.xml",
            "imscp_v1p1.xsd",
            "adlcp_v1p3.xsd",
            "adlseq_v1p3.xsd",
            "adlnav_v1p3.xsd",
            "imsss_v1p0.xsd",
            "lom.xsd",
            "xml.xsd",
            "common/dataTypes.xsd",
            "vocab/strict.xsd",
            "schemas-NOTICE.md",
        } <= names
        zf.extractall(tmp_path)
    run = xmllint_validate(tmp_path, "imsmanifest.xml")
    assert run.returncode == 0, run.stderr
    assert "imsmanifest.xml validates" in run.stderr


def test_xmllint_rejects_a_manifest_whose_identifier_is_not_an_xml_id(tmp_path):
    for name, _ in (line.split()[::-1] for line in (SCHEMAS / "SHA256SUMS").read_text().splitlines()):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SCHEMAS / name, tmp_path / name)
    manifest = scorm_manifest("urn:x", "T", "D", "1.0.0", ["index.html"])
    (tmp_path / "imsmanifest.xml").write_text(manifest.replace('identifier="urn-x"', 'identifier="urn:x#scorm"'))
    run = xmllint_validate(tmp_path, "imsmanifest.xml")
    assert run.returncode != 0 and "xs:ID" in run.stderr


def test_activity_puzzles_carry_their_encodings_and_solutions(package):
    document = activity_document(package, puzzles=3, seed=1, max_steps=4)
    codec = package.codec()
    assert len(document["puzzles"]) == 3 and document["view"]["entry"] == "type"
    assert document["view"]["blank_token"] == 1 and document["view"]["rules"][0]["kind"] == "all-different"
    for item in document["puzzles"]:
        assert item["tokens"] == codec.encode_input(item["input"]).tolist()
        solution = codec.decode_output(__import__("numpy").array(item["solution_tokens"]), item["input"])
        assert codec.check(item["input"], solution)


def test_activity_carries_the_servers_test_time_views(package):
    document = activity_document(package, puzzles=1, seed=1, max_steps=4)
    expected = views_of(package.codec(), DEFAULT_VIEWS)
    assert [v["source"] for v in document["views"]] == [v.source.tolist() for v in expected]
    assert [v["lookup"] for v in document["views"]] == [v.lookup.tolist() for v in expected]
    assert len(document["views"]) == DEFAULT_VIEWS


def test_task_without_a_browser_board_is_refused_with_a_typed_error_naming_the_hook(package):
    from trm_adapters.scorm.export import grid_view
    from trm_modules.plugins import build_plugin_manager

    without_boards = build_plugin_manager(entry_points=False, paths="")  # no plugin describes a board
    with pytest.raises(ScormExportError, match=r"'sudoku' has no browser board: .*trm_board_view\(codec\) hook"):
        grid_view(package.codec(), without_boards)


# ------------------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser_run(trained_activity, tmp_path_factory):
    """One Chromium, three scenarios (tests/fixtures/scorm_driver.cjs): the learner asks the module and
    submits its answer; the learner solves alone; the activity opened outside any platform."""
    require_browser()
    site = tmp_path_factory.mktemp("scorm-site")
    with zipfile.ZipFile(trained_activity) as zf:
        zf.extractall(site / "activity")
    (site / "runtime").mkdir()
    shutil.copy(npm_tools() / "scorm-again" / "dist" / "scorm2004.min.js", site / "runtime")
    shutil.copy(FIXTURES / "scorm_lms.html", site / "lms.html")
    shots = os.environ.get("TRM_SCORM_SCREENSHOTS", "")
    env = {
        "SCREENSHOT_HELPED": str(Path(shots) / "scorm-helped.png") if shots else "",
        "SCREENSHOT_ALONE": str(Path(shots) / "scorm-alone.png") if shots else "",
    }
    with serve_folder(site) as base:
        return run_driver(FIXTURES / "scorm_driver.cjs", {**env, "BASE_URL": base})


def set_values(calls: list) -> dict[str, str]:
    return {c[1]: c[2] for c in calls if c[0] == "SetValue"}


def test_the_module_answers_in_the_browser_with_the_trained_model(browser_run):
    helped = browser_run["helped"]
    assert helped["afterAsk"] == "module-answered", helped["consoleLines"]
    assert helped["moduleCells"] > 0 and helped["rightCells"] == helped["moduleCells"]  # the module was right


def test_the_modules_help_is_recorded_as_an_interaction(browser_run):
    values = set_values(browser_run["helped"]["calls"])
    assert values["cmi.interactions.0.type"] == "other" and values["cmi.interactions.0.result"] == "neutral"
    assert "module-help" in values["cmi.interactions.0.id"]
    assert values["cmi.interactions.1.type"] == "fill-in"


def test_submitting_the_modules_answer_earns_the_learner_nothing(browser_run):
    values = set_values(browser_run["helped"]["calls"])
    assert values["cmi.score.raw"] == "0" and float(values["cmi.score.scaled"]) == 0.0
    assert values["cmi.success_status"] == "failed" and values["cmi.interactions.1.result"] == "incorrect"
    assert values["cmi.completion_status"] == "completed"


def test_the_learners_own_solution_passes_with_full_score(browser_run):
    values = set_values(browser_run["alone"]["calls"])
    assert values["cmi.success_status"] == "passed" and float(values["cmi.score.scaled"]) == 1.0
    assert values["cmi.score.raw"] == values["cmi.score.max"]
    assert "Solved by you" in browser_run["alone"]["submitStatus"]


def test_finishing_sets_session_time_and_exit_then_terminates(browser_run):
    for scenario in ("helped", "alone"):
        calls = browser_run[scenario]["calls"]
        values = set_values(calls)
        assert values["cmi.exit"] == "normal"
        assert values["cmi.session_time"].startswith("PT") and values["cmi.session_time"].endswith("S")
        names = [c[0] for c in calls]
        assert names[0] == "Initialize" and names[-1] == "Terminate"


def test_a_closed_attempt_says_so_and_records_nothing_more(browser_run):
    helped = browser_run["helped"]
    assert "attempt is closed" in helped["closedStatus"] and "recorded" in helped["closedStatus"]
    assert helped["submitDisabled"]
    assert "attempt is closed" in helped["afterCloseStatus"]
    assert len(helped["calls"]) == helped["callsAtClose"]


def test_outside_a_platform_the_learner_is_told_nothing_is_recorded(browser_run):
    standalone = browser_run["standalone"]
    assert "No learning platform" in standalone["lms"]
    assert standalone["recorded"] == "false" and "not recorded" in standalone["submitStatus"]


def test_first_answer_timing_is_reported(browser_run, record_property):
    timings = browser_run["helped"]["timings"]
    first_answer_s = (timings["firstAnswer"] - timings["visible"]) / 1000
    record_property("first_answer_after_visible_s", round(first_answer_s, 2))
    print(
        f"first 'Ask the module' answer {first_answer_s:.2f} s after the page was visible "
        f"(model ready {(timings['modelReady'] - timings['visible']) / 1000:.2f} s after)"
    )
    assert timings["firstAsk"] >= timings["visible"] and first_answer_s > 0


def test_the_page_answers_every_puzzle_as_the_server_does(browser_run, trained_activity, tmp_path):
    from trm_modules.host import FolderSource, Host

    with zipfile.ZipFile(trained_activity) as zf:
        document = json.loads(zf.read("activity.json"))
    (tmp_path / "modules").mkdir()
    shutil.copy(TRAINED_SUDOKU, tmp_path / "modules" / TRAINED_SUDOKU.name)
    host = Host([FolderSource(tmp_path / "modules")], views=DEFAULT_VIEWS, cpu_threads=1)
    try:
        host.swap("sudoku-4x4", "1.0.0")
        codec = open_package(TRAINED_SUDOKU).codec()
        page_answers = browser_run["answers"]
        assert len(page_answers) == ANSWERED_PUZZLES
        for puzzle, page in zip(document["puzzles"], page_answers):
            server = host.solve("sudoku-4x4", puzzle["input"])
            assert codec.decode_output(__import__("numpy").array(page["tokens"]), puzzle["input"]) == server.output
            assert (page["views"], page["steps"], page["valid"]) == (server.views, server.steps, server.valid)
    finally:
        host.close()
