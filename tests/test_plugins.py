"""Plugin discovery (builtin, entry points of installed distributions, paths), origins and isolation."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from fixtures.host import grid_inputs, tiny_model
from trm_modules.cli import app
from trm_modules.host import Host, MemorySource, ServableVersion
from trm_modules.plugins import build_plugin_manager, codec_classes, get_codec, register_plugin_file

PLUGIN_SOURCE = '''
"""A third-party trm_modules plugin: a codec and an observer."""
import numpy as np
from trm_modules.codec import TaskCodec
from trm_modules import hookimpl

SEEN = []


class ReverseGridCodec(TaskCodec):
    name = "reverse-grid"

    @property
    def params(self):
        return {}

    @property
    def vocab_size(self):
        return 6

    @property
    def seq_len(self):
        return 16

    def input_schema(self):
        return {"type": "object", "required": ["cells"],
                "properties": {"cells": {"type": "array", "minItems": 16, "maxItems": 16,
                                         "items": {"type": "integer", "minimum": 0, "maximum": 4}}}}

    def output_schema(self):
        return self.input_schema()

    def encode_input(self, data):
        return np.asarray(data["cells"][::-1], dtype=np.int64) + 1

    def encode_output(self, data, data_in=None):
        return self.encode_input(data)

    def decode_output(self, tokens, data_in):
        return {"cells": [max(int(t) - 1, 0) for t in tokens][::-1]}

    def generate(self, rng, n, **difficulty):
        return []


@hookimpl
def trm_register_codecs():
    return [ReverseGridCodec]


@hookimpl
def trm_on_solve(record):
    SEEN.append((record.module, record.version, record.output))
'''


@pytest.fixture
def third_party_dist(tmp_path, monkeypatch):
    """A distribution ``trm-demo-plugin`` installed into a folder on sys.path, as pip would lay it out."""
    project = tmp_path / "trm-demo-plugin"
    (project / "trm_demo_plugin").mkdir(parents=True)
    (project / "trm_demo_plugin" / "__init__.py").write_text(PLUGIN_SOURCE)
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "trm-demo-plugin"
        version = "0.3.1"
        dependencies = ["trm-modules"]

        [project.entry-points.trm_modules]
        demo = "trm_demo_plugin"
    """)
    )
    # What `pip install` of that project leaves in site-packages: the code and a .dist-info.
    dist_info = project / "trm_demo_plugin-0.3.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: trm-demo-plugin\nVersion: 0.3.1\n")
    (dist_info / "entry_points.txt").write_text("[trm_modules]\ndemo = trm_demo_plugin\n")
    monkeypatch.syspath_prepend(str(project))
    yield project
    sys.modules.pop("trm_demo_plugin", None)


def broken_dist(root, name, module_source):
    """A distribution whose entry point imports ``module_source``."""
    (root / f"{name}.py").write_text(module_source)
    dist_info = root / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[trm_modules]\n{name} = {name}\n")


def test_third_party_distribution_is_listed_with_its_dist_and_hooks(third_party_dist):
    pm = build_plugin_manager(paths="")
    info = next(i for i in pm.plugin_infos() if i.name == "demo")
    assert info.origin == "entrypoint"
    assert info.source.startswith("trm-demo-plugin 0.3.1")
    assert info.hooks == ["trm_on_solve", "trm_register_codecs"]


def test_host_uses_the_third_party_codec_and_observer(third_party_dist):
    pm = build_plugin_manager(paths="")
    codec = get_codec("reverse-grid", pm=pm)
    spec = ServableVersion.from_model("rev", "1.0.0", tiny_model(1), codec)
    with Host([MemorySource([spec])], plugin_manager=pm, memory_budgets={"cpu": 1 << 30}, cpu_threads=1) as host:
        host.swap("rev", "1.0.0")
        answer = host.solve("rev", grid_inputs(1)[0])
        assert host.flush()
    seen = sys.modules["trm_demo_plugin"].SEEN
    assert seen == [("rev", "1.0.0", answer.output)]


def test_plugin_failing_to_import_is_reported_and_others_still_load(tmp_path, monkeypatch):
    broken_dist(tmp_path, "trm_broken_import", "raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = build_plugin_manager(paths="")
    info = next(i for i in pm.plugin_infos() if i.name == "trm_broken_import")
    assert info.load_error == "ImportError: needs libfoo" and info.errors == 1
    assert "sudoku" in codec_classes(pm)


def test_codec_hook_that_raises_is_counted_and_other_codecs_remain(tmp_path, monkeypatch):
    broken_dist(
        tmp_path,
        "trm_broken_codecs",
        textwrap.dedent("""
        from trm_modules import hookimpl

        @hookimpl
        def trm_register_codecs():
            raise RuntimeError("codec registry exploded")
    """),
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = build_plugin_manager(paths="")
    assert "sudoku" in codec_classes(pm)
    assert pm.error_counts["trm_broken_codecs"] == 1


def test_plugin_file_named_in_trm_plugins_has_origin_path(tmp_path):
    plugin_file = tmp_path / "course_pins.py"
    plugin_file.write_text(
        textwrap.dedent("""
        from trm_modules import hookimpl

        @hookimpl
        def trm_select_version(module, context):
            return None
    """)
    )
    pm = build_plugin_manager(entry_points=False, paths=str(plugin_file))
    info = next(i for i in pm.plugin_infos() if i.name == "course_pins")
    assert (info.origin, info.source, info.hooks) == ("path", str(plugin_file), ["trm_select_version"])


def test_missing_plugin_file_is_reported_not_raised(tmp_path):
    pm = build_plugin_manager(entry_points=False, paths=str(tmp_path / "nope.py"))
    info = next(i for i in pm.plugin_infos() if i.name == "nope")
    assert info.load_error.startswith("FileNotFoundError")


def test_register_plugin_file_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        register_plugin_file(build_plugin_manager(entry_points=False, paths=""), tmp_path / "absent.py")


def test_builtin_plugin_provides_module_sources():
    pm = build_plugin_manager(entry_points=False, paths="")
    infos = {info.name: info for info in pm.plugin_infos()}
    assert set(infos) == {"builtin", "architectures"}  # the host's defaults, and TRM/HRM through the architecture hook
    assert (infos["builtin"].origin, infos["builtin"].hooks) == ("builtin", ["trm_module_sources"])
    assert (infos["architectures"].origin, infos["architectures"].hooks) == ("builtin", ["trm_register_architectures"])


def test_trm_plugins_command_lists_origins_as_json():
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert listed["builtin"]["origin"] == "builtin"
    assert listed["sudoku"]["origin"] == "entrypoint" and "trm_register_codecs" in listed["sudoku"]["hooks"]


def test_the_process_wide_plugin_manager_is_built_on_the_first_call_with_every_plugin_and_stays_one_object():
    # In a fresh interpreter: the cmi5 adapter's commands import trm_modules.cli.errors while it loads,
    # which must not ask for the manager being built.
    import subprocess

    code = (
        "import trm_modules.plugins as p\n"
        "assert p._process_manager is None\n"
        "first = p.get_plugin_manager()\n"
        "assert first is p.get_plugin_manager(), 'a second manager'\n"
        "assert 'cmi5' in {name for name, _ in first.list_name_plugin()}, first.list_name_plugin()\n"
        "assert not first.load_failures, first.load_failures\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_plugin_asking_for_the_manager_while_it_is_built_is_refused_by_name_and_the_rest_load(tmp_path):
    import subprocess

    plugin = tmp_path / "greedy.py"
    plugin.write_text("from trm_modules.plugins import get_plugin_manager\nMANAGER = get_plugin_manager()\n")
    code = (
        "import trm_modules.plugins as p\n"
        "pm = p.get_plugin_manager()\n"
        "origin, source, error = pm.load_failures['greedy']\n"
        "print(origin, error.split(':')[0], 'sudoku' in dict(pm.list_name_plugin()), pm is p.get_plugin_manager())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRM_PLUGINS": str(plugin)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["path", "PluginManagerReentered", "True", "True"], done.stdout


def test_importing_the_cli_loads_no_plugin_and_builds_no_app():
    """Like pytest's plugin manager: built when called, never at import (checked in a fresh interpreter)."""
    import subprocess
    import sys

    script = (
        "import sys, trm_modules.cli, trm_modules.plugins as p; "
        "print(p._process_manager is None, 'trm_adapters' in sys.modules, trm_modules.cli._app is None)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["True", "False", "True"], result.stdout
