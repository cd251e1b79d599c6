"""A package's task schemas as validators that can neither reach out nor run away (spec/SPEC.md §10).

- **No reference is retrieved, ever.** Every ``$ref`` / ``$dynamicRef`` must be a fragment (``#…``)
  into the same document; anything else is refused when the package is opened (rule
  ``schema-external-ref``). The validators' ``referencing.Registry`` refuses every retrieval as a
  second line: a schema cannot make the server fetch ``http://…`` or read ``file:///…``.
- **Bounded matching time.** ``pattern`` and ``patternProperties`` are matched with RE2 (google-re2),
  whose time is linear in the text: no catastrophic backtracking (``^(a+)+$`` on 28 characters took
  18 s with Python's ``re``). A pattern longer than ``MAX_PATTERN_CHARS``, or one RE2 cannot run
  (backreferences, lookaround), is refused at open (rule ``schema-pattern``).
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import jsonschema
import re2
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.exceptions import NoSuchResource

from .errors import DocumentInvalid
from .manifest import json_pointer

#: Longest ``pattern`` / ``patternProperties`` key a task schema may hold, in characters.
MAX_PATTERN_CHARS = 1000
#: Memory RE2 may use for one compiled pattern (bounds its program size too).
RE2_MAX_MEM = 8 << 20

_REF_KEYWORDS = ("$ref", "$dynamicRef")


class SchemaRefused(DocumentInvalid):
    """A task schema asks for something the format forbids (an external ``$ref``, an unsafe pattern)."""

    rule = "schema"


def _refuse_retrieval(uri: str) -> Any:
    raise NoSuchResource(ref=uri)


#: No resource is ever retrieved: only the schema's own fragments resolve.
_NO_RETRIEVAL = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """RE2 program for ``pattern``; ``ValueError`` saying why when it is too long or RE2 cannot run it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the pattern is {len(pattern):,} characters long; at most {MAX_PATTERN_CHARS:,}")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"the pattern {pattern[:80]!r} cannot be matched in linear time ({reason}); "
            "backreferences and lookaround are not allowed"
        ) from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        program = compile_pattern(pattern)
        for key, value in instance.items():
            if program.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


TaskSchemaValidator = validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def check_task_schema(schema: Any, file: str) -> None:
    """Refuse (``SchemaRefused`` naming the place) a schema with an external reference or an unsafe pattern."""
    for pointer, keyword, value in _walk(schema, ""):
        if keyword in _REF_KEYWORDS:
            if not isinstance(value, str) or not value.startswith("#"):
                raise SchemaRefused(
                    f"{keyword} {str(value)[:200]!r} points outside the schema; task schemas are "
                    "self-contained (only '#…' fragments) and nothing is ever retrieved",
                    file=file,
                    path=pointer,
                    rule="schema-external-ref",
                )
        elif keyword == "pattern" and isinstance(value, str):
            _check_pattern(value, file, pointer)
        elif keyword == "patternProperties" and isinstance(value, dict):
            for key in value:
                _check_pattern(key, file, pointer + json_pointer([key]))


def task_validator(schema: dict[str, Any]) -> Any:
    """A draft 2020-12 validator for ``schema`` (checked by ``check_task_schema``) that never retrieves."""
    return TaskSchemaValidator(schema, registry=_NO_RETRIEVAL)


def _check_pattern(pattern: str, file: str, pointer: str) -> None:
    try:
        compile_pattern(pattern)
    except ValueError as exc:
        raise SchemaRefused(str(exc), file=file, path=pointer, rule="schema-pattern") from None


def _walk(node: Any, pointer: str) -> Iterator[tuple[str, str, Any]]:
    stack = [(node, pointer)]
    while stack:
        current, at = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                child = at + json_pointer([key])
                yield child, key, value
                stack.append((value, child))
        elif isinstance(current, list):
            stack.extend((value, f"{at}/{index}") for index, value in enumerate(current))
