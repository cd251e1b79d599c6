"""The README's exit-status table is true: every failure it documents, run as a user would, ends with the
status the table gives it, and its one line on stderr says what exists or what to do.

The table's rows and this file's cases are kept together: a status in the table without a case here
(or the other way round) fails the first test.
"""

from __future__ import annotations

import re
import socket
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.packages import build_tiny_package
from fixtures.store import closed_port_postgres_url
from trm_modules.cli import app
from trm_modules.store.backup import SQLITE_MAGIC

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def trm(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def documented_statuses() -> dict[int, str]:
    """Exit status → the examples the README's table gives for it."""
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d) \| [^|]+\| ([^|]*)\|$", text, re.M)
    assert rows, "the README has no exit-status table"
    return {int(status): examples.strip() for status, examples in rows}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("exit") / "sudoku-4x4-1.0.0.trm")


@pytest.fixture
def inputs(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"grid": [[1,0,0,0],[0,0,3,0],[0,4,0,0],[0,0,0,2]]}\n')
    return path


def tampered(package: Path, tmp_path: Path) -> Path:
    """``package`` with one byte of its weights changed (the archive stores entries uncompressed)."""
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo("weights.safetensors")
    name_length = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.file_size - 1] ^= 0xFF  # the last byte of the last tensor
    out = tmp_path / "tampered.trm"
    out.write_bytes(bytes(data))
    return out


LISTENERS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def close_listeners():
    yield
    while LISTENERS:
        LISTENERS.pop().close()


def test_every_status_of_the_readme_table_has_its_cases_here():
    assert set(documented_statuses()) == {0} | set(CASES)


def busy_port(tmp_path, package, inputs):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    LISTENERS.append(listener)  # held while the command runs (closed by the close_listeners fixture)
    port = listener.getsockname()[1]
    return ["serve", "--port", port, "--db", tmp_path / "store.sqlite3", "--registry", tmp_path / "registry"]


def refused_digest(tmp_path, package, inputs):
    return ["verify", tampered(package, tmp_path), "--no-examples"]


def backup_of_another_kind(tmp_path, package, inputs):
    backup = tmp_path / "sqlite.backup"
    backup.write_bytes(SQLITE_MAGIC + b"\0" * 100)
    return ["db", "restore", backup, "--db", closed_port_postgres_url()]


def missing_input(tmp_path, package, inputs):
    return ["solve", package, "--input", tmp_path / "no-such.jsonl", "--output", "-"]


def unknown_option(tmp_path, package, inputs):
    return ["logs", "--no-such-option"]


def unknown_engine(tmp_path, package, inputs):
    return ["solve", package, "--engine", "warp", "--input", inputs, "--output", "-"]


def unknown_module(tmp_path, package, inputs):
    return ["solve", "no-such-module", "--input", inputs, "--output", "-"]


def unknown_version(tmp_path, package, inputs):
    return ["verify", "sudoku-4x4@9.9.9", "--no-examples"]


def unreachable_store(tmp_path, package, inputs):
    return ["logs", "--db", closed_port_postgres_url()]


#: status → (case, what its error line must say)
CASES = {
    1: [
        (busy_port, "cannot listen on 127.0.0.1"),
        (refused_digest, "weights.safetensors"),
        (backup_of_another_kind, "sqlite backup and cannot be restored into a postgresql"),
    ],
    2: [
        (missing_input, "cannot read --input"),
        (unknown_option, "No such option"),
        (unknown_engine, "unknown engine 'warp'"),
    ],
    3: [(unknown_module, "sudoku-4x4"), (unknown_version, "published: ")],
    4: [(unreachable_store, "StoreUnavailable: cannot reach")],
}


@pytest.mark.parametrize(
    "status,case,says",
    [(status, case, says) for status, cases in CASES.items() for case, says in cases],
    ids=lambda value: getattr(value, "__name__", None) or str(value)[:12],
)
def test_a_documented_failure_ends_with_its_documented_status(
    status, case, says, tmp_path, package, inputs, monkeypatch
):
    monkeypatch.setenv("TRM_HOME", str(tmp_path / "home"))
    result = trm(*case(tmp_path, package, inputs))
    assert result.exit_code == status, result.output
    assert says in result.output


def test_serve_on_a_busy_port_fails_before_loading_or_announcing_anything(tmp_path, package, inputs):
    result = trm(*busy_port(tmp_path, package, inputs))
    assert result.exit_code == 1, result.output
    assert "serving" not in result.output and "active" not in result.output and "token" not in result.output
    assert "choose another --port" in result.output


def test_an_unknown_module_names_the_modules_that_exist(tmp_path, inputs):
    result = trm("solve", "no-such-module", "--input", inputs, "--output", "-")
    assert result.exit_code == 3
    assert re.search(r"modules there: .*sudoku-4x4", result.output), result.output
