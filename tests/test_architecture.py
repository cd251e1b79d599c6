"""The codebase's shape: every module imports alone, the layers hold, hooks and refusals are documented."""

from __future__ import annotations

import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import trm_adapters
import trm_modules
from trm_modules import hookspecs
from trm_modules.package import errors as package_errors

ROOT = Path(__file__).resolve().parents[1]


def all_modules() -> list[str]:
    names = []
    for package in (trm_modules, trm_adapters):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__") and ".migrations." not in info.name:  # Alembic runs those
                names.append(info.name)
    return sorted(names)


IMPORT_ALONE = """
import importlib, sys
import torch, fastapi, pydantic, sqlalchemy, typer  # third-party packages stay loaded: only ours are purged
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("trm_modules", "trm_adapters")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""


def test_every_module_imports_alone():
    # Each module is imported with none of the project's modules loaded (two interpreters share the list).
    modules = all_modules()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", IMPORT_ALONE, *modules[i::2]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-3000:] for _, err in outputs]
    assert "".join(out for out, _ in outputs).strip() == ""


def test_no_module_imports_itself_through_a_chain_of_imports():
    graph = grimp.build_graph("trm_modules", "trm_adapters", exclude_type_checking_imports=True)
    assert [module for module in sorted(graph.modules) if module in graph.find_upstream_modules(module)] == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (.ci/run installs it)")
def test_the_import_contracts_hold():
    result = subprocess.run(
        ["lint-imports", "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:]


def hook_names() -> list[str]:
    return sorted(
        name for name, value in vars(hookspecs).items() if name.startswith("trm_") and inspect.isfunction(value)
    )


def test_the_contract_declares_the_hooks_the_design_names():
    assert {
        "trm_register_codecs",
        "trm_register_architectures",
        "trm_module_sources",
        "trm_select_version",
        "trm_placement",
        "trm_on_solve",
        "trm_on_feedback",
        "trm_register_routes",
        "trm_register_commands",
        "trm_startup",
        "trm_shutdown",
        "trm_declare_settings",
        "trm_privacy_providers",
        "trm_store_schemas",
        "trm_board_view",
    } == set(hook_names())


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_in_the_manual_and_the_readme(hook):
    manual = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(manual) > 80, f"{hook} needs a docstring in trm_modules/hookspecs.py (the plugin manual)"
    assert f"`{hook}(" in (ROOT / "README.md").read_text(), f"{hook} is missing from the README's hook table"


def package_error_rules() -> list[str]:
    rules = {
        cls.rule
        for cls in vars(package_errors).values()
        if inspect.isclass(cls) and issubclass(cls, package_errors.PackageError)
    }
    for path in (ROOT / "trm_modules").rglob("*.py"):
        rules.update(re.findall(r"rule=\"([a-z0-9-]+)\"", path.read_text()))
    return sorted(rules)


@pytest.mark.parametrize("rule", package_error_rules())
def test_every_package_refusal_rule_is_in_the_spec(rule):
    spec = (ROOT / "spec" / "SPEC.md").read_text()
    assert f"`{rule}`" in spec, f"PackageError rule {rule!r} is not documented in spec/SPEC.md (section Refusals)"


def test_the_version_is_kept_in_one_place():
    import importlib.metadata

    assert importlib.metadata.version("trm-modules") == trm_modules.__version__
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()
