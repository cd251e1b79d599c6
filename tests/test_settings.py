"""One typed settings object: flags over ``TRM_*`` over the settings file over defaults; read at the edge only."""

from __future__ import annotations

import re
from pathlib import Path

from trm_modules.plugins import build_plugin_manager
from trm_modules.server import ServerSettings
from trm_modules.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults(tmp_path, monkeypatch):
    config = tmp_path / "trm.toml"
    config.write_text('registry = "/from/file"\ndb_url = "file.db"\nmodule_path = "/file/modules"\n')
    monkeypatch.setenv("TRM_CONFIG", str(config))
    monkeypatch.setenv("TRM_DB_URL", "env.db")
    monkeypatch.setenv("TRM_MODULE_PATH", "/env/modules")
    settings = Settings(module_path="/flag/modules", registry=None)  # a flag left unset hides nothing
    assert (settings.module_path, settings.db_url, settings.registry) == ("/flag/modules", "env.db", Path("/from/file"))
    assert "xapi_lrs_url" not in Settings.model_fields  # the xAPI adapter declares its own settings


def test_plugins_declare_settings_validated_into_the_one_settings_object(monkeypatch):
    import pytest
    from pydantic import ValidationError

    from trm_modules.settings import PluginSetting, SettingsClash, with_plugin_settings

    declared = [
        ("notes", PluginSetting("notes_limit", int, 10, "How many notes.")),
        ("notes", PluginSetting("notes_url", str | None, None, "Where notes go.", env="NOTES_URL")),
    ]
    monkeypatch.setenv("NOTES_URL", "https://notes.example")
    settings = with_plugin_settings(Settings(module_path="/m", notes_limit="25"), declared)
    assert (settings.notes_limit, settings.notes_url, settings.module_path) == (25, "https://notes.example", "/m")
    with pytest.raises(ValidationError, match="notes_limit"):
        with_plugin_settings(Settings(notes_limit="many"), declared)
    with pytest.raises(SettingsClash, match="db_url"):
        with_plugin_settings(Settings(), [("rogue", PluginSetting("db_url", str, "", "mine"))])


def test_the_store_defaults_to_a_file_in_home_unless_a_db_url_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("TRM_DB_URL", raising=False)
    monkeypatch.setenv("TRM_HOME", str(tmp_path))
    assert Settings().db == str(tmp_path / "store.sqlite3")
    monkeypatch.setenv("TRM_DB_URL", "postgresql+psycopg://u@db.example/trm")
    assert Settings().db == "postgresql+psycopg://u@db.example/trm"


def test_plugin_files_and_module_folders_are_path_lists(monkeypatch, tmp_path):
    monkeypatch.setenv("TRM_PLUGINS", f"a.py:{tmp_path}/b.py:")
    assert Settings().plugin_paths == ["a.py", f"{tmp_path}/b.py"]
    assert Settings(module_path=f"{tmp_path}/x::{tmp_path}/y").module_folders == [f"{tmp_path}/x", f"{tmp_path}/y"]


def test_server_settings_are_settings_with_the_servers_own_knobs(monkeypatch):
    monkeypatch.setenv("TRM_MAX_BODY_BYTES", "2048")
    settings = ServerSettings(db="here.db")
    assert isinstance(settings, Settings)
    assert (settings.db_url, settings.max_body_bytes, settings.public_url) == ("here.db", 2048, "http://127.0.0.1:8000")


def test_a_plugin_managers_builtin_sources_follow_its_settings_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_MODULE_PATH", str(tmp_path / "from-env"))
    pm = build_plugin_manager(entry_points=False, paths="", settings=Settings(module_path=str(tmp_path / "given")))
    folders = [
        str(source.path) for sources in pm.hook.trm_module_sources() for source in sources if hasattr(source, "path")
    ]
    assert folders == [str(tmp_path / "given")]


#: Environment variables that belong to external protocols, read where the protocol is implemented.
EXTERNAL_PROTOCOLS = {"WORLD_SIZE", "LOCAL_RANK", "SOURCE_DATE_EPOCH", "TERMINAL_WIDTH", "COLUMNS"}


def test_library_code_reads_the_environment_only_through_settings():
    readers = []
    for path in sorted((ROOT / "trm_modules").rglob("*.py")):
        if path.name == "settings.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(
                r"os\.environ(?:\.get\(|\[|\.setdefault\()?\s*[\"']?(\w*)|os\.getenv\([\"'](\w+)", line
            ):
                name = match.group(1) or match.group(2)
                if name not in EXTERNAL_PROTOCOLS:
                    readers.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert readers == []
