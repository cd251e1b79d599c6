"""The package verbs of `trm`: verify, inspect, keygen/sign, solve, publish/install/yank/modules, export-onnx."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fixtures.packages import build_tiny_package, example_inputs
from trm_modules.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def package_path(tmp_path_factory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("cli") / "sudoku-4x4-1.0.0.trm")


def trm(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_verify_prints_every_check_and_succeeds(package_path):
    result = trm("verify", package_path)
    assert result.exit_code == 0, result.output
    # The fixture's random model recorded its own answers: they agree, and verify says they break the rules.
    assert "? examples: 2 examples agree with their recorded outputs" in result.output
    assert "OK sudoku-4x4@1.0.0" in result.output


def test_inspect_json_prints_manifest_and_digest(package_path):
    result = trm("inspect", package_path, "--json")
    data = json.loads(result.output)
    assert data["manifest"]["name"] == "sudoku-4x4" and data["digest"].startswith("sha256:")


def test_keygen_sign_then_verify_with_trusted_keys(package_path, tmp_path):
    assert trm("keygen", "-o", tmp_path / "keys").exit_code == 0
    signed = tmp_path / "signed.trm"
    assert trm("sign", package_path, "--key", tmp_path / "keys" / "trm-signing.key", "-o", signed).exit_code == 0
    result = trm("verify", signed, "--trusted-keys", tmp_path / "keys")
    assert result.exit_code == 0, result.output
    assert "verified with a trusted key" in result.output and "UNVERIFIED" not in result.output


def test_verify_without_trusted_keys_says_the_signer_is_unverified_and_shows_no_tick_for_it(package_path, tmp_path):
    assert trm("keygen", "-o", tmp_path / "keys").exit_code == 0
    signed = tmp_path / "signed.trm"
    assert trm("sign", package_path, "--key", tmp_path / "keys" / "trm-signing.key", "-o", signed).exit_code == 0
    result = trm("verify", signed, "--no-examples")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "✓ signature" not in text and "? signature: intact, but the signer is UNVERIFIED" in text
    assert "give --trusted-keys" in text and text.endswith("(signer unverified)")


def test_solve_answers_jsonl_and_reports_bad_lines_without_dropping_good_ones(package_path, tmp_path):
    good = example_inputs(2)
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps({"grid": [[7, 0, 0, 0]] + [[0, 0, 0, 0]] * 3}),
        json.dumps(good[1]),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = trm("solve", package_path, "--input", tmp_path / "in.jsonl", "--output", tmp_path / "out.jsonl")
    assert result.exit_code == 1  # some lines failed
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(out) == 4
    assert set(out[0]) == {"output", "steps", "confidence", "valid", "views"}
    assert 1 <= out[0]["steps"] <= 4 * out[0]["views"]
    assert out[1]["error"]["path"] == ""
    assert out[2]["error"]["path"] == "/grid/0/0"
    assert "output" in out[3]
    validator = jsonschema.Draft202012Validator(json.loads((REPO / "spec" / "solve-result.schema.json").read_text()))
    assert all(validator.is_valid(line) for line in out)


def test_solve_without_halting_runs_every_step(package_path, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps(example_inputs(1)[0]) + "\n")
    result = trm(
        "solve",
        package_path,
        "--input",
        tmp_path / "in.jsonl",
        "--output",
        tmp_path / "out.jsonl",
        "--no-halt",
        "--max-steps",
        "3",
    )
    assert result.exit_code == 0, result.output
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["steps"] == 3 * line["views"]  # 3 steps in every view solved


def test_publish_install_yank_and_list_modules(package_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRM_REGISTRY", str(tmp_path / "registry"))
    assert trm("publish", package_path).exit_code == 0
    again = trm("publish", package_path)
    assert again.exit_code == 1 and "VersionExists" in again.output
    assert trm("install", "sudoku-4x4@^1").exit_code == 0
    assert trm("yank", "sudoku-4x4@1.0.0", "--reason", "test").exit_code == 0
    listed = json.loads(trm("modules", "--json").output)
    assert {(m["where"], m["version"], m["yanked"]) for m in listed} == {
        ("installed", "1.0.0", False),
        ("available", "1.0.0", True),
    }
    (tmp_path / "in.jsonl").write_text(json.dumps(example_inputs(1)[0]) + "\n")
    solved = trm("solve", "sudoku-4x4@1.0.0", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "o.jsonl")
    assert solved.exit_code == 0, solved.output


def test_solve_with_a_missing_input_file_says_so_in_one_line(package_path, tmp_path):
    result = trm("solve", package_path, "--input", tmp_path / "absent.jsonl", "--output", tmp_path / "out.jsonl")
    assert result.exit_code == 2  # bad input (README: exit statuses)
    assert "cannot read --input" in result.output and "Traceback" not in result.output


def test_solve_that_cannot_write_its_output_prints_the_answers_instead(package_path, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps(example_inputs(1)[0]) + "\n")
    result = trm("solve", package_path, "--input", tmp_path / "in.jsonl", "--output", tmp_path / "no-dir" / "out.jsonl")
    assert result.exit_code == 1
    assert "cannot write --output" in result.output and '"output"' in result.output
