"""The modules a load run sends work to, with real task inputs: each package's own examples (its install
self-test inputs, valid against its input schema), read from the registry with ``open_package``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locustfile import Module

REPO = Path(__file__).resolve().parents[2]


def served_modules(listed: list[dict[str, Any]], registry: str | Path | None = None) -> list[Module]:
    """``listed`` (``GET /v1/modules``): every module with an active version, its released versions (pins and
    canaries; pre-releases left out) and the example inputs of the packages in ``registry``."""
    from trm_modules.package import DirectoryRegistry, open_package

    folder = DirectoryRegistry(Path(registry) if registry else REPO / "registry")
    modules = []
    for summary in listed:
        if summary.get("active") is None:
            continue
        versions = [v for v in summary["available"] if "-" not in v] or [summary["active"]]
        inputs: list[dict[str, Any]] = []
        for version in versions:
            package = open_package(folder.path_of(folder.resolve(summary["name"], version)))
            inputs += [example_input for example_input, _ in package.examples]
        if not inputs:
            raise ValueError(f"module {summary['name']} has no example inputs to send")
        modules.append(Module(summary["name"], versions, inputs))
    if not modules:
        raise ValueError("the server has no active module to load")
    return modules
