"""The dashboard at /dashboard/ in headless Chromium, driven with the keyboard only: sign in with a token (kept in
sessionStorage, never in a URL), a module's versions × courses with accuracy intervals, accuracy over time, a trial's
decision with its evidence, failing inputs drawn as the activities' boards, a CSV download, no request leaving the
server, and axe-core reporting no serious or critical violation.

``TRM_DASHBOARD_SCREENSHOTS=docs`` writes docs/dashboard-*.png. Where the server has no ``/stats`` or ``/compare``
route yet, the driver answers them from a fixture in the issue's JSON shapes (the rest is the real server)."""

from __future__ import annotations

import json
import os
from pathlib import Path


from fixtures.browser import FIXTURES, npm_tools, require_browser, run_driver
from fixtures.server import MODULE, on_a_socket, puzzle, served
from trm_modules.server.openapi import _api_routes

COURSE = "logic-101"


def stats_fixture(inputs: list[dict]) -> dict:
    """A /stats answer in the issue's shapes (used only where the server has no such route)."""

    def group(version, course, period, verdicts, correct, low, high):
        return {
            "version": version,
            "course": course,
            "cohort": None,
            "period": period,
            "solves": verdicts + 3,
            "learners": verdicts // 2,
            "verdicts": verdicts,
            "correct": correct,
            "accuracy": correct / verdicts,
            "accuracy_low": low,
            "accuracy_high": high,
            "ratings": 4,
            "rating_mean": 0.5,
            "latency_p99_ms": 40.0,
        }

    groups = [
        group("1.0.0", COURSE, None, 172, 143, 0.7686, 0.8797),
        group("1.1.0", COURSE, None, 168, 154, 0.8646, 0.9497),
    ]
    trend = [
        group(v, None, p, 40, c, c / 40 - 0.1, min(c / 40 + 0.08, 1.0))
        for v, series in (("1.0.0", (32, 33, 35)), ("1.1.0", (36, 37, 38)))
        for p, c in zip(("2026-11-09", "2026-11-16", "2026-11-23"), series)
    ]
    return {
        "module": MODULE,
        "groups": groups + trend,
        "ratings": [{"version": "1.1.0", "course": COURSE, "value": 1.0, "count": 31}],
        "calibration": [{"version": "1.1.0", "verdicts": 168, "ece": 0.043}],
        "reliability": [
            {
                "version": "1.1.0",
                "bin_low": 0.9,
                "bin_high": 1.0,
                "verdicts": 120,
                "mean_confidence": 0.96,
                "accuracy": 0.95,
            }
        ],
        "failures": [
            {
                "version": "1.1.0",
                "input_digest": f"digest-{i}",
                "failures": 3 - i,
                "incorrect": 3 - i,
                "invalid": 0,
                "solves": 4,
                "example_solve_id": f"s-{i}",
                "input": data,
            }
            for i, data in enumerate(inputs)
        ],
        "outcomes": [
            {
                "course": COURSE,
                "asked": True,
                "version": "1.1.0",
                "outcomes": 37,
                "learners": 37,
                "score_mean": 0.81,
                "score_low": 0.75,
                "score_high": 0.87,
                "successes": 33,
                "with_success": 37,
                "success_rate": 0.89,
                "success_low": 0.75,
                "success_high": 0.96,
            }
        ],
    }


COMPARE_FIXTURE = {
    "module": MODULE,
    "course": COURSE,
    "cohort": None,
    "metric": "accuracy",
    "baseline": {
        "version": "1.0.0",
        "learners": 41,
        "solves": 201,
        "verdicts": 172,
        "correct": 143,
        "accuracy": 0.8314,
        "accuracy_low": 0.7686,
        "accuracy_high": 0.8797,
    },
    "candidate": {
        "version": "1.1.0",
        "learners": 39,
        "solves": 197,
        "verdicts": 168,
        "correct": 154,
        "accuracy": 0.9167,
        "accuracy_low": 0.8646,
        "accuracy_high": 0.9497,
    },
    "difference": 0.0853,
    "difference_low": 0.0081,
    "difference_high": 0.1625,
    "sequential_low": -0.0412,
    "sequential_high": 0.2118,
    "p_value": 0.31,
    "alpha": 0.05,
    "min_effect": 0.05,
    "decision": "inconclusive",
    "verdicts_needed": 420,
    "sample_ratio": {
        "expected_candidate_share": 0.5,
        "observed_candidate_share": 0.4875,
        "p_value": 0.82,
        "mismatch": False,
    },
}


def test_dashboard_in_chromium_keyboard_only_with_csv_and_no_serious_axe_violation(tmp_path):
    require_browser()
    modules = npm_tools()
    with served(tmp_path, {"1.0.0": 0, "1.1.0": 1}) as server:
        client = server.client
        answered_by = ""
        for i in range(12):  # a few real solves and verdicts in one course, six from each version
            if i == 6:
                swapped = client.post(
                    f"/v1/admin/modules/{MODULE}/activate",
                    headers=server.auth("admin"),
                    json={"version": "1.0.0" if answered_by == "1.1.0" else "1.1.0"},
                )
                assert swapped.status_code == 200, swapped.text
            answer = client.post(
                f"/v1/modules/{MODULE}/solve",
                headers=server.auth("solve"),
                json={"input": puzzle(seed=i), "context": {"course": COURSE, "learner": f"l{i}"}},
            )
            assert answer.status_code == 200, answer.text
            answered_by = answer.json()["version"]
            client.post(
                "/v1/feedback",
                headers=server.auth("feedback"),
                json={"solve_id": answer.json()["solve_id"], "kind": "correct" if i % 3 else "incorrect"},
            )
        token = server.runtime.tokens.create(["read"], name="ta", courses=[COURSE])[0]
        paths = {route.path for route in _api_routes(client.app)}
        env = {
            "TOKEN": token,
            "AXE": str(modules / "axe-core" / "axe.min.js"),
            "SHOTS": os.environ.get("TRM_DASHBOARD_SCREENSHOTS", ""),
        }
        stats = stats_fixture([puzzle(seed=s) for s in (1, 2)])
        if "/v1/modules/{name}/stats" not in paths:
            (tmp_path / "stats.json").write_text(json.dumps(stats))
            env["STATS_FIXTURE"] = str(tmp_path / "stats.json")
        if "/v1/modules/{name}/compare" not in paths:
            (tmp_path / "compare.json").write_text(json.dumps(COMPARE_FIXTURE))
            env["COMPARE_FIXTURE"] = str(tmp_path / "compare.json")
        with on_a_socket(server.runtime) as base:
            page = run_driver(FIXTURES / "dashboard_driver.cjs", {**env, "BASE_URL": base}, timeout=120)
    assert page["errors"] == [] and page["external"] == []
    assert token not in page["url"] and page["session"] == [["trm-dashboard-token", token]] and page["local"] == 0
    assert page["decision"] in ("candidate-better", "candidate-worse", "inconclusive") and "points" in page["verdict"]
    assert page["tables"] >= 7 and page["csvButtons"] == page["tables"] + (0 if page["tables"] > 7 else 0)
    header, *rows = page["csv"].strip().splitlines()
    assert header.startswith("version,course,solves,learners,verdicts,accuracy") and page["csvName"].endswith(".csv")
    assert len(rows) == len(page["groups"])
    if "STATS_FIXTURE" in env:  # the page shows exactly the figures it was given
        assert rows[0].split(",")[:5] == ["1.0.0", COURSE, "175", "86", "172"]
        assert page["boards"] == 2 and page["boardCells"] == 2 * 16 and page["trendPoints"] == 6
    else:  # the real report: the verdicts sent
        assert sum(int(r.split(",")[4]) for r in rows) == 12
    print("axe violations:", page["axe"], "keys:", page["keys"])
    serious = [v for v in page["axe"] if v["impact"] in ("serious", "critical")]
    assert serious == [], serious
    assert max(page["keys"].values()) < 40  # every step reached with a few Tab presses


def test_dashboard_assets_come_from_the_package_and_the_page_allows_no_outside_script(tmp_path):
    with served(tmp_path) as server:
        page = server.client.get("/dashboard/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "http" not in page.text.replace('xmlns="http', "")  # no CDN
        for asset in ("dashboard.js", "dashboard.css", "board.js"):
            assert server.client.get(f"/dashboard/{asset}").status_code == 200
        assert server.client.get("/dashboard/../pyproject.toml").status_code == 404
        assert server.client.get("/dashboard/secrets.txt").status_code == 404
        boards = server.client.post(
            f"/v1/modules/{MODULE}/boards", json={"inputs": [puzzle()]}, headers=server.auth("solve")
        )
        assert boards.status_code == 200, boards.text
        drawn = boards.json()
        assert drawn["view"]["rows"] == 4 and len(drawn["boards"][0]["tokens"]) == 16
        assert server.client.post(f"/v1/modules/{MODULE}/boards", json={"inputs": []}).status_code == 401


def test_the_wheel_ships_the_dashboard():
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"trm_adapters.dashboard.static"' in pyproject and '"*.js", "*.html", "*.css"' in pyproject
