"""docs/authoring.md, walked end to end in a temporary folder on a tiny configuration: scaffold a task plugin,
check its contract, train a few steps, sign with a throwaway key, pack, verify, publish, serve in process,
solve over HTTP (a real socket), and export the module as a SCORM activity whose manifest validates."""

from __future__ import annotations

import inspect

import json
import shutil
import urllib.request
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.browser import require_browser, require_xmllint
from fixtures.server import on_a_socket
from trm_adapters.authoring import scaffold_task
from trm_modules.cli import app
from trm_modules.plugins import get_plugin_manager, register_plugin_file

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.puzzle_emb_ndim=32",
    "model.halt_max_steps=2",
    "train.steps=3",
    "train.batch_size=8",
    "data.train_puzzles=16",
    "data.test_puzzles=8",
    "train.eval_puzzles=8",
    "train.warmup_steps=1",
    "train.eval_every=1000",
]


def test_the_documented_walk_is_the_one_this_test_runs():
    walk = (ROOT / "docs" / "authoring.md").read_text()
    for step in (
        "trm new task latin -o latin-task",
        "trm codec check latin",
        "trm train recipe.toml -o runs/latin",
        "trm keygen -o keys",
        "trm pack runs/latin --name latin --version 0.1.0 -o latin-0.1.0.trm --key",
        "trm verify latin-0.1.0.trm --trusted-keys",
        "trm publish latin-0.1.0.trm --registry registry",
        "trm serve --registry registry",
        "/v1/modules/latin/solve",
        "trm export-scorm latin-0.1.0.trm -o latin-scorm.zip",
    ):
        assert step in walk, step


@pytest.fixture
def latin_task(tmp_path):
    """The scaffold of `latin` (4×4), its plugin registered in this process as TRM_PLUGINS would register it."""
    task = tmp_path / "latin-task"
    scaffold_task("latin", task, size=4)
    plugin = task / "src" / "trm_task_latin" / "plugin.py"
    pm = get_plugin_manager()
    name = register_plugin_file(pm, plugin, name="authoring-walk-latin")
    try:
        yield task
    finally:
        pm.unregister(name=name)
        pm.origins.pop(name, None)


def test_from_a_scaffold_to_a_signed_package_served_over_http_and_exported_as_scorm(latin_task, tmp_path):
    if not shutil.which("npm"):
        require_browser()
    runner = CliRunner()

    def trm(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        return result.output

    assert "keeps the contract" in trm("codec", "check", "latin")
    run_dir, keys, registry = tmp_path / "runs" / "latin", tmp_path / "keys", tmp_path / "registry"
    trm("train", str(latin_task / "recipe.toml"), "-o", str(run_dir), *[a for s in TINY for a in ("--set", s)])
    trm("keygen", "-o", str(keys), "--name", "latin-release")
    package = tmp_path / "latin-0.1.0.trm"
    # Three training steps solve nothing: where pack refuses failing examples, the walk says so explicitly.
    from trm_modules.cli.package_commands import pack

    explicit = ["--allow-failing-examples"] if "allow_failing_examples" in inspect.signature(pack).parameters else []
    trm(
        "pack",
        str(run_dir),
        "--name",
        "latin",
        "--version",
        "0.1.0",
        "-o",
        str(package),
        "--key",
        str(keys / "latin-release.key"),
        *explicit,
    )
    assert "OK latin@0.1.0" in trm("verify", str(package), "--trusted-keys", str(keys / "latin-release.pub"))
    trm("publish", str(package), "--registry", str(registry), "--trusted-keys", str(keys))
    (registry / "keys").mkdir(exist_ok=True)
    shutil.copy(keys / "latin-release.pub", registry / "keys")

    from trm_modules.server import ServerRuntime, ServerSettings

    plugin = latin_task / "src" / "trm_task_latin" / "plugin.py"
    runtime = ServerRuntime.start(
        ServerSettings(
            registry=registry,
            db=str(tmp_path / "store.sqlite3"),
            journal_path=tmp_path / "journal.jsonl",
            cpu_threads=1,
            plugin_files=str(plugin),
            public_url="http://testserver",
        )
    )
    try:
        token = runtime.tokens.create(["solve"], name="walk")[0]
        puzzle = {"grid": [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 3, 0], [0, 0, 0, 4]]}
        with on_a_socket(runtime) as base:
            request = urllib.request.Request(
                f"{base}/v1/modules/latin/solve",
                method="POST",
                data=json.dumps({"input": puzzle}).encode(),
                headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
    finally:
        runtime.close()
    assert answer["version"] == "0.1.0" and answer["valid"] in (True, False)
    grid = answer["output"]["grid"]
    assert len(grid) == 4 and grid[0][0] == 1 and grid[3][3] == 4  # constrained decoding keeps the givens

    scorm = tmp_path / "latin-scorm.zip"
    assert "wrote" in trm("export-scorm", str(package), "-o", str(scorm), "--puzzles", "2")
    with zipfile.ZipFile(scorm) as zf:
        document = json.loads(zf.read("activity.json"))
        zf.extractall(tmp_path / "scorm")
    assert document["codec"] == "latin" and document["view"]["instructions"].startswith("Fill in every empty cell")
    require_xmllint()
    from test_scorm import xmllint_validate

    validated = xmllint_validate(tmp_path / "scorm", "imsmanifest.xml")
    assert validated.returncode == 0, validated.stderr
