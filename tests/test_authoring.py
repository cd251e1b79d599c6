"""Authoring a new task: ``trm new task`` writes a plugin distribution whose own tests pass as generated and whose
codec keeps the contract, and ``trm codec check`` says per check what passes and what is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trm_adapters.authoring import ScaffoldError, check_codec, scaffold_task
from trm_adapters.grid import GridCodec
from trm_modules.cli import app

LATIN = {"shape": [5, 5], "symbols": "12345", "rules": ["rows", "columns"]}


def statuses(results) -> dict[str, str]:
    return {r.name: r.status for r in results}


# ------------------------------------------------------------------------------- the contract checks
def test_the_built_in_codecs_keep_the_contract():
    for name, params in (("sudoku", {"size": 4}), ("maze", {"size": 7}), ("grid", LATIN)):
        results = check_codec(name, params)
        assert [r for r in results if r.status == "fail"] == [], name
        assert statuses(results)["transforms"] == "pass" and statuses(results)["board"] == "pass"


class TransposingRowsOnly(GridCodec):
    """Claims a transpose keeps answers right, though only its rows are permutations."""

    name = "broken-transforms"
    generating = False

    def generate(self, rng, n, **difficulty):  # the generator shuffles its grids with the true transforms
        self.generating = True
        try:
            return super().generate(rng, n, **difficulty)
        finally:
            self.generating = False

    def transforms(self, rng, count):
        if self.generating:
            return super().transforms(rng, count)
        sources = np.tile(np.arange(self.seq_len).reshape(self.rows, self.cols).T.reshape(-1), (count, 1))
        return sources, np.tile(np.arange(self.vocab_size), (count, 1))


class ForgetfulDecoder(GridCodec):
    name = "broken-decoder"

    def decode_output(self, tokens, data_in):
        out = super().decode_output(tokens, data_in)
        return {"grid": out["grid"][::-1]}


class Lenient(GridCodec):
    name = "lenient"

    def check(self, data_in, data_out):
        return True

    def answer_token_table(self):
        table = super().answer_token_table()
        table[1, 2] = False  # a blank may not become the first symbol
        return table


def test_a_transform_that_breaks_answers_fails_its_check():
    result = {r.name: r for r in check_codec(TransposingRowsOnly([5, 5], "abcde", rules=["rows"]))}
    assert result["transforms"].status == "fail" and "check rejects" in result["transforms"].detail
    assert result["rules"].status == "pass" and result["round-trip"].status == "pass"


def test_a_decoder_that_does_not_invert_the_encoder_fails_the_round_trip():
    result = {r.name: r for r in check_codec(ForgetfulDecoder(**LATIN))}
    assert result["round-trip"].status == "fail" and "decode_output(encode_output(out))" in result["round-trip"].detail


def test_a_check_that_judges_nothing_and_a_table_that_forbids_right_answers_fail():
    result = {r.name: r for r in check_codec(Lenient(**LATIN))}
    assert result["rules"].status == "fail" and "judges nothing" in result["rules"].detail
    assert (
        result["answer-token-table"].status == "fail"
        and "forbids the right answer" in result["answer-token-table"].detail
    )


def test_a_task_without_a_browser_board_keeps_the_contract_but_is_told_which_hook_gives_one():
    from trm_modules import hookimpl
    from trm_modules.plugins import build_plugin_manager

    class OnlyTheCodec:
        @hookimpl
        def trm_register_codecs(self):
            return [GridCodec]

    plugins = build_plugin_manager(entry_points=False, paths="")
    plugins.register(OnlyTheCodec())
    result = {r.name: r for r in check_codec("grid", LATIN, plugins=plugins)}
    assert result["board"].status == "skip" and "trm_board_view(codec) hook" in result["board"].detail
    assert all(r.status == "pass" for name, r in result.items() if name != "board")


def test_trm_codec_check_prints_each_check_and_exits_1_on_a_failure():
    runner = CliRunner()
    ok = runner.invoke(app, ["codec", "check", "grid", "--params", json.dumps(LATIN)])
    assert ok.exit_code == 0, ok.output
    assert "✓ transforms: pass" in ok.output and "keeps the contract" in ok.output
    broken = runner.invoke(app, ["codec", "check", "grid", "--params", '{"shape": [5], "symbols": "12"}'])
    assert broken.exit_code == 1 and "✗ construct: fail" in broken.output and "shape must be" in broken.output
    assert "- schemas: skip" in broken.output
    bad_json = runner.invoke(app, ["codec", "check", "grid", "--params", "{shape"])
    assert bad_json.exit_code == 2 and "JSON" in bad_json.output


# ------------------------------------------------------------------------------- the scaffold
@pytest.fixture(scope="module")
def scaffold(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("new") / "latin"
    result = CliRunner().invoke(app, ["new", "task", "latin", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_scaffold_is_a_plugin_distribution(scaffold):
    files = sorted(str(p.relative_to(scaffold)) for p in scaffold.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "recipe.toml",
        "src/trm_task_latin/__init__.py",
        "src/trm_task_latin/plugin.py",
        "tests/test_codec.py",
    ]
    pyproject = (scaffold / "pyproject.toml").read_text()
    assert '[project.entry-points.trm_modules]\nlatin = "trm_task_latin.plugin"' in pyproject
    assert 'codec = "latin"' in (scaffold / "recipe.toml").read_text()


def test_the_scaffolds_own_tests_pass_as_generated(scaffold):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=scaffold,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 passed" in run.stdout


def test_trm_codec_check_passes_on_the_scaffold_registered_by_path(scaffold):
    plugin = scaffold / "src" / "trm_task_latin" / "plugin.py"
    run = subprocess.run(
        [sys.executable, "-m", "trm_modules.cli", "codec", "check", "latin", "--params", '{"size": 4}'],
        env={**os.environ, "TRM_PLUGINS": str(plugin)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for check in (
        "construct",
        "schemas",
        "generate",
        "encode",
        "round-trip",
        "rules",
        "answer-token-table",
        "transforms",
        "board",
    ):
        assert f"✓ {check}: pass" in run.stdout, run.stdout


def test_the_scaffold_never_overwrites_and_refuses_bad_names(scaffold, tmp_path):
    with pytest.raises(ScaffoldError, match="not an empty folder"):
        scaffold_task("latin", scaffold)
    with pytest.raises(ScaffoldError, match="lower-case"):
        scaffold_task("Latin-Squares", tmp_path / "x")
    result = CliRunner().invoke(app, ["new", "task", "latin", "-o", str(scaffold)])
    assert result.exit_code == 1 and "ScaffoldError" in result.output
