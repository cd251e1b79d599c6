"""Where things live inside a package archive (spec/SPEC.md, "Layout")."""

from __future__ import annotations

import re

from .manifest import MANIFEST_NAME, SIGNATURE_NAME

__all__ = [
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "WEIGHTS_NAME",
    "INPUT_SCHEMA_NAME",
    "OUTPUT_SCHEMA_NAME",
    "CARD_NAME",
    "EXAMPLE_PATTERN",
    "REQUIRED_FILES",
    "example_names",
    "PACKAGE_SUFFIX",
]

PACKAGE_SUFFIX = ".trm"
WEIGHTS_NAME = "weights.safetensors"
INPUT_SCHEMA_NAME = "schema/input.schema.json"
OUTPUT_SCHEMA_NAME = "schema/output.schema.json"
CARD_NAME = "README.md"
#: ``examples/<id>.input.json`` pairs with ``examples/<id>.output.json``.
EXAMPLE_PATTERN = re.compile(r"^examples/([A-Za-z0-9_-]+)\.(input|output)\.json$")
REQUIRED_FILES = (INPUT_SCHEMA_NAME, OUTPUT_SCHEMA_NAME, CARD_NAME)


def example_names(index: int) -> tuple[str, str, str]:
    """The example id and the archive paths of its input and output, for the ``index``-th example."""
    name = f"{index + 1:04d}"
    return name, f"examples/{name}.input.json", f"examples/{name}.output.json"
