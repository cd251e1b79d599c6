"""The plugin contract: a leaf module, and routes, commands, startup and shutdown arriving through hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from fastapi import APIRouter, Request
from typer.testing import CliRunner

from fixtures.server import served
from trm_modules import hookimpl
from trm_modules.cli import add_plugin_commands
from trm_modules.plugins import build_plugin_manager

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_contract_loads_neither_torch_nor_the_host_nor_the_package_layer():
    code = (
        "import sys, trm_modules.hookspecs, trm_modules; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trm_modules', 'trm_adapters')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['trm_modules', 'trm_modules.hookspecs']"


def test_the_core_never_imports_the_adapters():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "trm_modules").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "trm_adapters" in line
    ]
    assert offenders == []


class RoutesPlugin:
    """Adds GET /hello, which reads the server runtime from the app's state."""

    def __init__(self) -> None:
        self.runtimes: list[object] = []

    @hookimpl
    def trm_register_routes(self, runtime):
        self.runtimes.append(runtime)
        router = APIRouter(prefix="/hello")

        @router.get("")
        def hello(request: Request) -> dict:
            return {"active": {s.name: s.active for s in request.app.state.runtime.host.modules()}}

        return [router]


def test_a_plugin_router_is_mounted_and_reaches_the_server_runtime(tmp_path):
    plugin = RoutesPlugin()
    with served(tmp_path, extra_plugins=[plugin]) as server:
        response = server.client.get("/hello")
        assert plugin.runtimes == [server.runtime]
    assert response.json() == {"active": {"sudoku-4x4": "1.0.0"}}


class NotARouterPlugin:
    @hookimpl
    def trm_register_routes(self, runtime):
        return "not a router"


def test_a_plugin_returning_something_else_than_a_router_is_counted_as_failing_and_the_server_serves(tmp_path):
    with served(tmp_path, extra_plugins=[NotARouterPlugin()]) as server:
        assert server.client.get("/healthz").status_code == 200
        errors = {info.name: info.errors for info in server.runtime.host.pm.plugin_infos()}
    assert errors["NotARouterPlugin"] == 1


def test_without_entry_point_plugins_the_server_has_no_xapi_routes(tmp_path):
    with served(tmp_path, entry_point_plugins=False) as server:
        paths = set(server.client.get("/openapi.json").json()["paths"])
    assert "/v1/feedback" in paths and not any(path.startswith("/xapi") for path in paths)


class LifecyclePlugin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    @hookimpl
    def trm_startup(self, runtime):
        self.calls.append(("startup", [s.name for s in runtime.host.modules()]))

    @hookimpl
    def trm_shutdown(self, runtime):
        self.calls.append(("shutdown", [s.name for s in runtime.host.modules()]))


def test_startup_runs_once_after_modules_are_active_and_shutdown_once_before_they_unload(tmp_path):
    plugin = LifecyclePlugin()
    with served(tmp_path, extra_plugins=[plugin]) as server:
        assert plugin.calls == [("startup", ["sudoku-4x4"])]
        runtime = server.runtime
    runtime.close()  # a second close must not call the plugin again
    assert plugin.calls == [("startup", ["sudoku-4x4"]), ("shutdown", ["sudoku-4x4"])]


class CommandsPlugin:
    @hookimpl
    def trm_register_commands(self, cli):
        @cli.command("greet")
        def greet(name: str) -> None:
            """Say hello."""
            print(f"hello {name}")

        @cli.command("taken")
        def impostor() -> None:
            print("plugin")


def test_a_plugin_adds_a_command_but_cannot_replace_one_already_taken():
    cli = typer.Typer()

    @cli.command("taken")
    def taken() -> None:
        print("core")

    pm = build_plugin_manager(entry_points=False, paths="")
    pm.register(CommandsPlugin())
    add_plugin_commands(cli, pm)
    runner = CliRunner()
    assert runner.invoke(cli, ["greet", "ada"]).output == "hello ada\n"
    assert runner.invoke(cli, ["taken"]).output == "core\n"


def test_the_scorm_export_command_arrives_through_its_plugin():
    from trm_modules.cli import app

    result = CliRunner().invoke(app, ["export-scorm", "--help"])
    assert result.exit_code == 0 and "SCORM 2004" in result.output
