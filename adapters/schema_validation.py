"""Validation of task documents against a codec's JSON Schema, reported as ``CodecError``.

The JSON Schemas a codec publishes are the single source of truth for what a well-formed
document is; this module turns the first (most relevant) schema violation into a
``CodecError`` whose ``path`` is a JSON pointer into the offending document.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from trm_modules.errors import CodecError, json_pointer

__all__ = ["compile_schema", "json_pointer", "validate_document"]


def compile_schema(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A reusable draft 2020-12 validator of ``schema`` (the schema itself is checked first)."""
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_document(validator: jsonschema.Draft202012Validator, document: Any, what: str) -> None:
    """Raise ``CodecError`` at the JSON pointer of the most relevant violation, if any.

    ``what`` names the document in the message (e.g. "sudoku 4x4 input").
    """
    if validator.is_valid(document):
        return
    error = best_match(validator.iter_errors(document))
    raise CodecError(f"{what} does not match its schema: {error.message}", json_pointer(error.absolute_path))
