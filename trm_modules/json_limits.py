"""Bounded JSON: the nesting depth of a document is measured on its bytes before it is parsed.

Python's parser recurses once per level and every walker after it (schema validation, the
store's encoders) does too, so ``[[[[…]]]]`` a few thousand levels deep ends in ``RecursionError``
(a 500, a traceback). ``json_depth`` measures the depth without parsing (strings blanked by one
regular expression, brackets counted by numpy: linear, no recursion); ``check_json_depth``
refuses documents deeper than the limit with a typed ``JsonTooDeep``. Every JSON the server or
``trm verify`` parses goes through here first: request bodies (``server/limits.py``), manifests,
task schemas, examples, signatures and safetensors headers (``package.weights.parse_strict_json``).
"""

from __future__ import annotations

import re

import numpy as np

from .errors import TRMError

#: Deepest nesting (objects and arrays) accepted in any JSON document trm-modules parses.
MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENERS = np.zeros(256, dtype=np.int8)
_OPENERS[list(b"[{")] = 1
_OPENERS[list(b"]}")] = -1


class JsonTooDeep(TRMError, ValueError):
    """A JSON document nests objects/arrays deeper than allowed."""

    def __init__(self, depth: int, limit: int, what: str = "the document") -> None:
        super().__init__(
            f"{what} nests {depth:,} levels deep; at most {limit} levels of objects and arrays are accepted"
        )
        self.depth = depth
        self.limit = limit


def json_depth(raw: bytes | bytearray | memoryview) -> int:
    """The deepest nesting of objects/arrays in the JSON text ``raw`` (brackets inside strings ignored)."""
    brackets = _STRING.sub(b'""', bytes(raw)).translate(None, _NOT_A_BRACKET)
    if not brackets:
        return 0
    return int(np.cumsum(_OPENERS[np.frombuffer(brackets, dtype=np.uint8)], dtype=np.int64).max())


def check_json_depth(
    raw: bytes | bytearray | memoryview, limit: int = MAX_JSON_DEPTH, what: str = "the document"
) -> None:
    """Raise ``JsonTooDeep`` when ``raw`` nests deeper than ``limit``."""
    depth = json_depth(raw)
    if depth > limit:
        raise JsonTooDeep(depth, limit, what)
