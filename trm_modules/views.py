"""Test-time views: ask again, through answer-preserving transforms, when an answer breaks the rules.

A *view* moves cells and relabels tokens so that a right answer of the viewed puzzle, moved back,
is a right answer of the original: a Sudoku with its digits renamed and its bands shuffled, a maze
rotated. The model sees every view as a fresh puzzle, so its mistakes on different views are
largely independent. When the task's rule check (``TaskCodec.check``) rejects the first answer,
the other views are solved too and the answer is chosen among all of them:

1. the first answer the rules accept (views are tried in a fixed order, the identity first);
2. else the answer most views agree on (the paper's augmentation vote), ties to the earlier view;
3. else the identity view's answer.

Only rejected answers pay for more views, so an input the model gets right costs one pass. Tasks
whose codec cannot check an answer (``check`` returns None) are answered with the identity view.
Views come from ``TaskCodec.transforms`` with a fixed seed: the same input gets the same answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .codec import TaskCodec
from .errors import CodecError

#: Views an answer may be sought in (the identity included) unless a caller says otherwise.
DEFAULT_VIEWS = 8
#: Seed of the views' transforms: fixed, so answers are reproducible.
VIEW_SEED = 20251006


@dataclass(frozen=True, eq=False)
class TokenView:
    """One answer-preserving transform of a token sequence: ``viewed[i] = lookup[tokens[source[i]]]``."""

    source: np.ndarray  # (L,) cell of the original each viewed cell comes from
    lookup: np.ndarray  # (V,) token relabelling, a permutation of the vocabulary
    _restore_cells: np.ndarray = field(init=False, repr=False)
    _restore_tokens: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:  # the inverse, once: ``invert`` runs on every rejected answer
        object.__setattr__(self, "_restore_cells", np.argsort(self.source))
        object.__setattr__(self, "_restore_tokens", np.argsort(self.lookup))

    @classmethod
    def identity(cls, seq_len: int, vocab_size: int) -> "TokenView":
        return cls(np.arange(seq_len), np.arange(vocab_size))

    def apply(self, tokens: np.ndarray) -> np.ndarray:
        """The viewed sequence(s) of ``tokens`` (..., L)."""
        return self.lookup[np.asarray(tokens)[..., self.source]]

    def invert(self, tokens: np.ndarray) -> np.ndarray:
        """Map viewed tokens (..., L) (the model's answer to the view) back to the original frame."""
        return self._restore_tokens[np.asarray(tokens)[..., self._restore_cells]]


def views_of(codec: TaskCodec, count: int) -> list[TokenView]:
    """Up to ``count`` views of ``codec``'s task, the identity first (just the identity when the
    codec has no transforms or cannot check answers, since views are chosen between by the rules)."""
    views = [TokenView.identity(codec.seq_len, codec.vocab_size)]
    if count <= 1 or not codec.can_check:
        return views
    # Draw spares: a task with few transforms (a maze has 8) repeats some, and a repeat adds nothing.
    drawn = codec.transforms(np.random.default_rng(VIEW_SEED), 64 * count)
    if drawn is None:
        return views
    seen = {(views[0].source.tobytes(), views[0].lookup.tobytes())}
    for source, lookup in zip(*drawn):
        view = TokenView(np.asarray(source, dtype=np.intp), np.asarray(lookup, dtype=np.intp))
        key = (view.source.tobytes(), view.lookup.tobytes())
        if key not in seen:
            seen.add(key)
            views.append(view)
            if len(views) == count:
                break
    return views


@dataclass
class Candidate:
    """The answer one view gave, in the original frame."""

    tokens: np.ndarray
    steps: int
    confidence: float
    output: dict[str, Any] | None  # None: the tokens form no answer
    valid: bool | None
    problem: tuple[str, str] | None = None  # why the tokens form no answer: (message, JSON pointer)


def needs_more_views(candidate: Candidate) -> bool:
    """Is this answer rejected (by the rules, or for not forming an answer at all)?"""
    return candidate.valid is False or candidate.output is None


def choose(candidates: Sequence[Candidate]) -> Candidate:
    """The answer to return among the views' answers (rules first, then the vote; see module doc)."""
    for candidate in candidates:
        if candidate.valid is True:
            return candidate
    answered = [c for c in candidates if c.output is not None]
    if not answered:
        return candidates[0]
    votes = Counter(c.tokens.tobytes() for c in answered)
    best = max(votes.values())
    return next(c for c in answered if votes[c.tokens.tobytes()] == best)


def decode_candidate(
    codec: TaskCodec, tokens: np.ndarray, data_in: dict[str, Any], steps: int, confidence: float
) -> Candidate:
    """Decode and rule-check one answer; undecodable tokens or a checker that fails mean not valid."""
    try:
        output = codec.decode_output(tokens, data_in)
    except CodecError as exc:
        return Candidate(tokens, steps, confidence, None, False, (exc.message, exc.path))
    try:
        valid = codec.check(data_in, output)
    except Exception:  # noqa: BLE001 - an answer the checker chokes on is not valid
        valid = False
    return Candidate(tokens, steps, confidence, output, valid)
