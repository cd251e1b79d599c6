"""The task-codec contract, checked (``trm codec check NAME``): what every codec must do for training, solving,
test-time views and the browser activities to work, each check passing or failing with what was wrong.

- ``construct``: the codec builds from its parameters, and ``type(codec)(**codec.params)`` rebuilds it alike;
- ``schemas``: ``input_schema`` and ``output_schema`` are valid JSON Schema (draft 2020-12);
- ``generate``: ``generate`` draws the pairs asked for, each input and output valid by its schema;
- ``encode``: ``encode_input``/``encode_output`` give ``(seq_len,)`` integer tokens within the vocabulary;
- ``round-trip``: ``decode_output(encode_output(out), in) == out``;
- ``rules``: ``check`` accepts every generated answer and rejects answers given to other puzzles
  (skipped when the codec cannot judge answers: then views and the pack's self-test cannot either);
- ``answer-token-table``: every generated answer passes through the table (constrained decoding never
  forbids a right answer);
- ``transforms``: each transform is a cell permutation and a token relabelling keeping the pad, and a right
  answer transformed is a right answer of the transformed puzzle (judged by ``check`` through
  ``decode_input``);
- ``board``: a plugin describes the task's browser board (``trm_board_view``), which fits the codec (skipped,
  naming the hook, when none does: the task then has no SCORM, cmi5 or LTI activity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import jsonschema
import numpy as np

from trm_modules.boards import InvalidBoardView, NoBoardView, board_view
from trm_modules.codec import TaskCodec
from trm_modules.plugins import get_codec

Status = Literal["pass", "fail", "skip"]
#: Pairs drawn for the checks, and transforms tried on each.
PAIRS = 8
TRANSFORMS = 8


@dataclass(frozen=True)
class CheckResult:
    """One contract check: its name, ``pass``/``fail``/``skip``, and what it found."""

    name: str
    status: Status
    detail: str


class ContractFailure(Exception):
    """A check found the contract broken (its message says how)."""


def _tokens(codec: TaskCodec, tokens: Any, what: str) -> np.ndarray:
    array = np.asarray(tokens)
    if array.shape != (codec.seq_len,) or not np.issubdtype(array.dtype, np.integer):
        raise ContractFailure(
            f"{what} gave {array.dtype} tokens of shape {array.shape}; expected ({codec.seq_len},) integers"
        )
    if array.min() < 0 or array.max() >= codec.vocab_size:
        raise ContractFailure(f"{what} gave token {int(array.max())} outside the vocabulary 0..{codec.vocab_size - 1}")
    return array


def check_codec(
    codec_or_name: TaskCodec | str,
    params: dict[str, Any] | None = None,
    *,
    plugins: Any = None,
    seed: int = 0,
    difficulty: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """Run every contract check on a codec (an instance, or a name built with ``params`` from ``plugins``)."""
    results: list[CheckResult] = []
    state: dict[str, Any] = {}

    def run(name: str, check: Callable[[], str | None], needs: tuple[str, ...] = ()) -> None:
        missing = [n for n in needs if n not in state]
        if missing:
            results.append(CheckResult(name, "skip", f"needs {', '.join(missing)} to pass first"))
            return
        try:
            detail = check()
        except ContractFailure as exc:
            results.append(CheckResult(name, "fail", str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a codec that raises fails the check, saying what it raised
            results.append(CheckResult(name, "fail", f"raised {type(exc).__name__}: {exc}"))
            return
        if detail is not None and detail.startswith("skip: "):
            results.append(CheckResult(name, "skip", detail[len("skip: ") :]))
            return
        state[name] = True
        results.append(CheckResult(name, "pass", detail or "ok"))

    def construct() -> str:
        codec = (
            codec_or_name if isinstance(codec_or_name, TaskCodec) else get_codec(codec_or_name, params or {}, plugins)
        )
        state["codec"] = codec
        again = type(codec)(**codec.params)
        if again.params != codec.params or (again.vocab_size, again.seq_len) != (codec.vocab_size, codec.seq_len):
            raise ContractFailure(f"type(codec)(**codec.params) builds a different codec: {again.params!r}")
        return f"{codec.name!r} with {codec.params!r}: vocabulary {codec.vocab_size}, sequence {codec.seq_len}"

    def schemas() -> str:
        codec = state["codec"]
        for what, schema in (("input", codec.input_schema()), ("output", codec.output_schema())):
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ContractFailure(f"{what}_schema is not valid JSON Schema: {exc.message}") from exc
        state["validators"] = (
            jsonschema.Draft202012Validator(codec.input_schema()),
            jsonschema.Draft202012Validator(codec.output_schema()),
        )
        return "input and output schemas are valid draft 2020-12"

    def generate() -> str:
        codec = state["codec"]
        pairs = codec.generate(np.random.default_rng(seed), PAIRS, **(difficulty or {}))
        if len(pairs) != PAIRS:
            raise ContractFailure(f"generate(rng, {PAIRS}) gave {len(pairs)} pairs")
        inputs, outputs = state["validators"]
        for index, (data_in, data_out) in enumerate(pairs):
            for what, validator, document in (("input", inputs, data_in), ("output", outputs, data_out)):
                error = jsonschema.exceptions.best_match(validator.iter_errors(document))
                if error is not None:
                    raise ContractFailure(f"generated pair {index}: the {what} breaks its schema: {error.message}")
        state["pairs"] = pairs
        return f"{PAIRS} pairs, valid by their schemas"

    def encode() -> str:
        codec = state["codec"]
        state["encoded"] = [
            (
                _tokens(codec, codec.encode_input(i), "encode_input"),
                _tokens(codec, codec.encode_output(o, i), "encode_output"),
            )
            for i, o in state["pairs"]
        ]
        return f"tokens of shape ({codec.seq_len},) within 0..{codec.vocab_size - 1}"

    def round_trip() -> str:
        codec = state["codec"]
        for index, ((data_in, data_out), (_, tokens)) in enumerate(zip(state["pairs"], state["encoded"])):
            decoded = codec.decode_output(tokens, data_in)
            if decoded != data_out:
                raise ContractFailure(
                    f"pair {index}: decode_output(encode_output(out)) gave {decoded!r}, not {data_out!r}"
                )
        return "decode_output inverts encode_output"

    def rules() -> str:
        codec = state["codec"]
        if not codec.can_check:
            return "skip: the codec does not judge answers (check returns None): views and self-tests cannot either"
        pairs = state["pairs"]
        for index, (data_in, data_out) in enumerate(pairs):
            verdict = codec.check(data_in, data_out)
            if verdict is not True:
                raise ContractFailure(f"check rejects generated pair {index}'s own answer (returned {verdict!r})")
        wrong = sum(codec.check(pairs[i][0], pairs[(i + 1) % len(pairs)][1]) is False for i in range(len(pairs)))
        if wrong == 0:
            raise ContractFailure("check accepts every answer given to another puzzle: it judges nothing")
        return f"accepts the {len(pairs)} right answers, rejects {wrong} of {len(pairs)} answers to other puzzles"

    def token_table() -> str:
        codec = state["codec"]
        table = codec.answer_token_table()
        if table is None:
            return "skip: no table (answers are not constrained cell by cell)"
        table = np.asarray(table)
        if table.shape != (codec.vocab_size, codec.vocab_size) or table.dtype != bool:
            raise ContractFailure(
                f"answer_token_table is {table.dtype} {table.shape}; expected bool "
                f"({codec.vocab_size}, {codec.vocab_size})"
            )
        for index, (tokens_in, tokens_out) in enumerate(state["encoded"]):
            forbidden = np.flatnonzero(~table[tokens_in, tokens_out])
            if forbidden.size:
                cell = int(forbidden[0])
                raise ContractFailure(
                    f"pair {index}, cell {cell}: the table forbids the right answer's token "
                    f"{int(tokens_out[cell])} where the input has {int(tokens_in[cell])}"
                )
        return "every generated answer passes through it"

    def transforms() -> str:
        codec = state["codec"]
        drawn = codec.transforms(np.random.default_rng(seed), TRANSFORMS)
        if drawn is None:
            return "skip: the codec has no transforms (no augmentation, no test-time views)"
        sources, lookups = (np.asarray(a) for a in drawn)
        if sources.shape != (TRANSFORMS, codec.seq_len) or lookups.shape != (TRANSFORMS, codec.vocab_size):
            raise ContractFailure(
                f"transforms gave sources {sources.shape} and lookups {lookups.shape}; expected "
                f"({TRANSFORMS}, {codec.seq_len}) and ({TRANSFORMS}, {codec.vocab_size})"
            )
        for k in range(TRANSFORMS):
            if sorted(sources[k].tolist()) != list(range(codec.seq_len)):
                raise ContractFailure(f"transform {k}: sources is not a permutation of the cells")
            if sorted(lookups[k].tolist()) != list(range(codec.vocab_size)) or lookups[k][0] != 0:
                raise ContractFailure(f"transform {k}: lookup is not a relabelling of the tokens that keeps the pad 0")
        if not codec.can_check:
            return (
                "skip: well-formed, but the codec cannot judge answers, so whether they keep answers right is unknown"
            )
        judged = 0
        for index, (tokens_in, tokens_out) in enumerate(state["encoded"]):
            for k in range(TRANSFORMS):
                moved_in = lookups[k][tokens_in[sources[k]]]
                moved_out = lookups[k][tokens_out[sources[k]]]
                document = codec.decode_input(moved_in)
                if document is None:
                    return "skip: well-formed, but the codec has no decode_input to judge transformed puzzles with"
                verdict = codec.check(document, codec.decode_output(moved_out, document))
                if verdict is not True:
                    raise ContractFailure(f"transform {k} turns pair {index}'s right answer into one check rejects")
                judged += 1
        return f"{judged} transformed answers stay right"

    def board() -> str:
        try:
            view = board_view(state["codec"], plugins)
        except InvalidBoardView as exc:
            raise ContractFailure(str(exc)) from exc
        except NoBoardView as exc:  # a task may have no browser activity: said, not failed
            return f"skip: {exc}"
        return f"{view.rows}x{view.cols} board, {view.entry} entry, {len(view.rules)} rule(s) the page checks"

    run("construct", construct)
    run("schemas", schemas, ("construct",))
    run("generate", generate, ("schemas",))
    run("encode", encode, ("generate",))
    run("round-trip", round_trip, ("encode",))
    run("rules", rules, ("generate",))
    run("answer-token-table", token_table, ("encode",))
    run("transforms", transforms, ("encode",))
    run("board", board, ("construct",))
    return results


__all__ = ["CheckResult", "check_codec", "PAIRS", "TRANSFORMS"]
