"""The task-codec contract: JSON in → token grid → JSON out, and the validity of an answer.

A codec is the only place that knows a task's wire format. The model never sees JSON and the
codec never sees the model's tensors. Codecs are provided by plugins through the
``trm_register_codecs`` hook and looked up by name with ``trm_modules.plugins.get_codec``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Json = dict[str, Any]


class TaskSpec(BaseModel):
    """The task a model solves: the codec's name and the parameters that rebuild it (``get_codec``)."""

    model_config = ConfigDict(extra="forbid")

    codec: str
    params: dict[str, Any] = Field(default_factory=dict)


class TaskCodec(ABC):
    """Base class of task codecs. Subclasses are constructed from their JSON ``params``.

    Token conventions: id 0 is padding; ``encode_input`` and ``encode_output`` return int arrays
    of shape ``(seq_len,)``; ``decode_output`` inverts ``encode_output`` given the input.
    Errors in task data raise ``trm_modules.errors.CodecError`` with a JSON-pointer path.
    """

    name: ClassVar[str]
    #: Puzzle identifiers the model needs (1 for tasks that share one embedding, like Sudoku).
    num_puzzle_identifiers: int = 1

    @property
    @abstractmethod
    def params(self) -> Json:
        """Parameters that rebuild this codec (``type(self)(**params)``); stored in manifests."""

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def seq_len(self) -> int: ...

    @abstractmethod
    def input_schema(self) -> Json:
        """JSON Schema (draft 2020-12) of one input document."""

    @abstractmethod
    def output_schema(self) -> Json:
        """JSON Schema (draft 2020-12) of one output document."""

    @abstractmethod
    def encode_input(self, data: Json) -> np.ndarray: ...

    @abstractmethod
    def encode_output(self, data: Json, data_in: Json | None = None) -> np.ndarray:
        """Label tokens of an answer (used for training and feedback corrections)."""

    @abstractmethod
    def decode_output(self, tokens: np.ndarray, data_in: Json) -> Json: ...

    def decode_input(self, tokens: np.ndarray) -> Json | None:
        """The input document of input ``tokens`` (inverts ``encode_input``), or None when the codec cannot
        say. ``trm codec check`` uses it to judge transformed puzzles: a transform must keep answers right."""
        return None

    def check(self, data_in: Json, data_out: Json) -> bool | None:
        """Is ``data_out`` a valid answer to ``data_in`` by the task's rules? None if unknowable."""
        return None

    def reference_solution(self, data_in: Json) -> Json | None:
        """A correct answer computed by a classical solver, or None when the task has none."""
        return None

    def puzzle_id(self, data_in: Json) -> int:
        """Row of the puzzle-embedding table for this input (0 for single-embedding tasks)."""
        return 0

    @abstractmethod
    def generate(self, rng: np.random.Generator, n: int, **difficulty: Any) -> list[tuple[Json, Json]]:
        """``n`` fresh (input, output) pairs; ``difficulty`` keys are codec-specific."""

    def answer_token_table(self) -> np.ndarray | None:
        """Which answer tokens a cell may hold, given the input's token there: a (vocab, vocab) bool
        array, row = input token, or None when the answer does not follow the input cell by cell.

        Every solving path decodes through it (``trm_modules.model.constrained_argmax``): cells the
        input fixes keep their token, free cells choose among the values the task allows there, so
        an answer never contradicts its input (spec/SPEC.md, "Constrained decoding"). The rule check
        (``check``) remains the judge of whether the answer is right.
        """
        return None

    def pair_from_text(self, question: str, answer: str) -> tuple[Json, Json]:
        """An (input, output) pair from one row of the TRM/HRM authors' CSV layout (``source,q,a,rating``:
        the puzzle and its answer as one string each, a character per cell in row-major order).

        Codecs whose task has such a layout (Sudoku-Extreme, Maze-Hard) override this and raise
        ``CodecError`` for a row that does not fit; the pair is then validated like any other
        (``encode_input`` …). ``reads_text_rows`` tells whether a codec overrides it.
        """
        raise NotImplementedError(f"the {self.name!r} codec reads no text rows (the authors' CSV layout)")

    @property
    def reads_text_rows(self) -> bool:
        """Does this codec read the authors' CSV rows (overrides ``pair_from_text``)?"""
        return type(self).pair_from_text is not TaskCodec.pair_from_text

    def canonical_key(self, input_tokens: np.ndarray) -> bytes:
        """Bytes that two inputs share when one of the codec's answer-preserving transforms maps one onto
        the other (as far as the codec can tell cheaply), so a held-out puzzle that is a relabelled or
        rotated training puzzle is recognised. Default: the tokens themselves (exact duplicates only)."""
        return np.ascontiguousarray(np.asarray(input_tokens, dtype=np.int64)).tobytes()

    @property
    def can_check(self) -> bool:
        """Does this codec judge answers by the task's rules (overrides ``check``)?"""
        return type(self).check is not TaskCodec.check

    def transforms(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``count`` random answer-preserving transforms, or None when the task has none of this form.

        A transform is a cell permutation and a token relabelling, returned as ``sources``
        (count, seq_len), the original cell of each transformed cell, and ``lookups``
        (count, vocab_size), a permutation of token ids: ``moved = lookup[tokens[source]]``. A
        right answer, transformed the same way, must be a right answer of the transformed input.
        Training augments with them; ``trm_modules.views`` answers again through them.
        """
        return None

    def augment(
        self, rng: np.random.Generator, inputs: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply one random answer-preserving transform per row of (N, seq_len) token arrays
        (the same to a row's input and label); by default one drawn from ``transforms``."""
        inputs = np.asarray(inputs)
        labels = np.asarray(labels)
        drawn = self.transforms(rng, inputs.shape[0])
        if drawn is None:
            return inputs, labels
        sources, lookups = drawn

        def transform(tokens: np.ndarray) -> np.ndarray:
            moved = np.take_along_axis(tokens, sources, axis=1)
            return np.take_along_axis(lookups, moved.astype(np.intp), axis=1).astype(tokens.dtype, copy=False)

        return transform(inputs), transform(labels)
