"""The events that flow from the host to observers (store, xAPI, metrics).

These pydantic models are the contract between ``Host`` (which emits them through the
``trm_on_solve`` / ``trm_on_feedback`` hooks) and every observer plugin.

They also carry the store's limits, so that a value the database cannot hold is refused where it
enters (a 422 at the HTTP edge, ``InvalidInput`` in the host) instead of being acknowledged and
then refused by the database: text fields are bounded by their column lengths, and no text, key or
document may hold a lone UTF-16 surrogate (``"\\ud800"`` in JSON), which no UTF-8 database stores,
nor a NUL character, which PostgreSQL refuses.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .errors import json_pointer

#: Longest id (solve, feedback event, statement) the store keeps.
ID_MAX = 128
#: Longest context part, learner pseudonym, actor, module name (the store's columns).
NAME_MAX = 200
#: Longest comment text of a feedback event.
COMMENT_MAX = 10_000


def check_text(value: str) -> str:
    """``value`` if every database can keep it (valid Unicode, no NUL), else ``ValueError`` saying where."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text holds a lone UTF-16 surrogate at character {exc.start} "
            f"({value[exc.start]!r}); expected valid Unicode"
        ) from None
    if "\x00" in value:
        raise ValueError(
            f"text holds a NUL character at character {value.index(chr(0))}; expected text without U+0000"
        ) from None
    return value


def invalid_text_in(document: Any) -> tuple[str, str] | None:
    """The JSON pointer and reason of the first string or key in ``document`` that is not valid Unicode.

    Iterative (a deep document cannot exhaust the stack); None when everything is valid.
    """
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        node, pointer = stack.pop()
        if isinstance(node, str):
            try:
                check_text(node)
            except ValueError as exc:
                return pointer, str(exc)
        elif isinstance(node, dict):
            for key, value in node.items():
                child = pointer + json_pointer([key])
                if isinstance(key, str):
                    try:
                        check_text(key)
                    except ValueError as exc:
                        return child, "key: " + str(exc)
                stack.append((value, child))
        elif isinstance(node, list):
            stack.extend((value, f"{pointer}/{index}") for index, value in enumerate(node))
    return None


def _check_document(value: Any) -> Any:
    found = invalid_text_in(value)
    if found is not None:
        pointer, reason = found
        raise ValueError(f"{reason} (at {pointer or '/'} in the document)")
    return value


Text = Annotated[str, AfterValidator(check_text)]
Document = Annotated[dict[str, Any], AfterValidator(_check_document)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A new event id: a UUID version 7 (RFC 9562), whose first 48 bits are the Unix time in milliseconds.

    Time-ordered ids let a server tell an id issued moments ago (its record may still be on its way to the
    database from the replica that answered it) from one that was never issued (``issued_at``).
    """
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 9562 variant
    return str(uuid.UUID(int=value))


def issued_at(event_id: str) -> datetime | None:
    """When a UUID version 7 id (``new_id``) was issued, to the millisecond; None for any other id."""
    try:
        parsed = uuid.UUID(event_id)
    except (ValueError, AttributeError, TypeError):
        return None
    if parsed.version != 7:
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, tz=timezone.utc)


AGENT_IDENTIFIERS = ("mbox", "mbox_sha1sum", "openid", "account")


def _check_actor(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    present = [key for key in AGENT_IDENTIFIERS if key in value]
    if len(present) != 1:
        raise ValueError(
            f"actor must be an xAPI Agent with exactly one of {', '.join(AGENT_IDENTIFIERS)}; "
            f"it has {', '.join(present) or 'none'}"
        )
    return _check_document(value)


def _check_uuid(value: str | None) -> str | None:
    if value is not None:
        uuid.UUID(value)
    return value


class SolveContext(BaseModel):
    """Where a solve came from. ``learner`` is a pseudonym chosen by the platform, never a raw identity.

    ``actor`` (an xAPI Agent, e.g. the account a cmi5 launch names) and ``registration`` (an xAPI
    registration UUID) are passed through to the statements sent to a learning record store.
    """

    model_config = ConfigDict(extra="forbid")

    platform: Text | None = Field(None, max_length=NAME_MAX)
    course: Text | None = Field(None, max_length=NAME_MAX)
    activity: Text | None = Field(None, max_length=NAME_MAX)
    learner: Text | None = Field(None, max_length=NAME_MAX, description="Learner pseudonym (opaque to trm-modules).")
    cohort: Text | None = Field(
        None,
        max_length=NAME_MAX,
        description="The learner's section or cohort within the course (reports and trials can be limited to one).",
    )
    actor: Annotated[dict[str, Any], AfterValidator(_check_actor)] | None = Field(
        None,
        description="The learner as an xAPI Agent, as the platform identifies them to its LRS "
        '(e.g. {"account": {"homePage": "https://lms.example", "name": "u-17"}}).',
    )
    registration: Annotated[str, AfterValidator(_check_uuid)] | None = Field(
        None, description="The xAPI registration (UUID) of the learner's attempt, e.g. from a cmi5 launch."
    )


class SolveRecord(BaseModel):
    """One answered request, attributed to the exact module version and digest that computed it."""

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(
        default_factory=new_id, max_length=ID_MAX, description="Client-supplied or generated; idempotency key."
    )
    module: Text = Field(max_length=NAME_MAX)
    version: Text = Field(max_length=100)
    digest: Text = Field(max_length=80, description="sha256 of the package file that answered.")
    context: SolveContext = Field(default_factory=SolveContext)
    input: Document
    output: Document | None
    steps: int
    confidence: float
    valid: bool | None = None
    latency_ms: float
    device: Text = Field(max_length=50)
    created_at: datetime = Field(default_factory=_now)


class OutcomeRecord(BaseModel):
    """A learner's own result on an activity (a quiz score, a passed module), with the solves they asked for.

    ``solve_ids``: the solves the learner asked a module for while doing the activity (empty: they
    did not ask). Idempotent by ``id``, like feedback. ``source`` says who reported it (``api``,
    ``lti``, ``xapi``).
    """

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(
        default_factory=new_id,
        min_length=1,
        max_length=ID_MAX,
        description="Client-supplied or generated; idempotency key.",
    )
    learner: Text = Field(min_length=1, max_length=NAME_MAX, description="Learner pseudonym (as in solve contexts).")
    course: Text | None = Field(None, max_length=NAME_MAX)
    activity: Text | None = Field(None, max_length=NAME_MAX)
    score: float | None = Field(None, description="The learner's raw score (with max_score) or scaled score.")
    max_score: float | None = Field(
        None, gt=0, description="The most ``score`` could be (score / max_score is the normalised result)."
    )
    success: bool | None = Field(None, description="Whether the learner passed (None: not said).")
    solve_ids: list[Annotated[str, AfterValidator(check_text), Field(min_length=1, max_length=ID_MAX)]] = Field(
        default_factory=list, max_length=1000, description="The solves the learner asked for while doing it."
    )
    source: Text = Field("api", max_length=50)
    created_at: datetime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _score_fits(self) -> "OutcomeRecord":
        if self.score is not None and not math.isfinite(self.score):
            raise ValueError(f"score must be a finite number, got {self.score!r}")
        if self.score is not None and self.max_score is not None and self.score < 0:
            raise ValueError(f"score {self.score!r} is negative; a raw score with max_score is at least 0")
        if self.score is not None and self.max_score is None and not -1.0 <= self.score <= 1.0:
            raise ValueError(
                f"score {self.score!r} without max_score must be a scaled score in [-1, 1]; "
                "send max_score with a raw score"
            )
        if self.max_score is not None and self.score is None:
            raise ValueError("max_score without a score; send both, or neither")
        if self.score is None and self.success is None:
            raise ValueError("an outcome carries a score, a success, or both")
        return self

    @property
    def normalised_score(self) -> float | None:
        """score / max_score, or the score itself when it is already scaled to [0, 1]."""
        if self.score is None:
            return None
        return self.score / self.max_score if self.max_score else self.score


FeedbackKind = Literal["correct", "incorrect", "rating", "correction", "comment", "void"]


class FeedbackEvent(BaseModel):
    """Outcome feedback on a solve. Append-only: a retraction is a ``void`` event naming ``voids``."""

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(
        default_factory=new_id, max_length=ID_MAX, description="Client-supplied or generated; idempotency key."
    )
    solve_id: Text = Field(max_length=ID_MAX)
    kind: FeedbackKind
    value: float | Text | None = Field(
        None,
        description="A rating in [-1, 1] (kinds 'rating', 'correct', "
        "'incorrect', 'correction'), or a comment's text (kind 'comment').",
    )
    corrected_output: Document | None = None
    source: Text = Field("api", max_length=50)
    actor: Text | None = Field(None, max_length=NAME_MAX, description="Pseudonym of who gave the feedback.")
    voids: Text | None = Field(
        None, max_length=ID_MAX, description="Id of the feedback event this one retracts (kind 'void')."
    )
    created_at: datetime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _fits_its_kind(self) -> "FeedbackEvent":
        check_feedback_fields(self.kind, self.value, self.voids, self.corrected_output)
        return self


class FeedbackFieldError(ValueError):
    """A feedback field does not fit the event's kind; ``field`` names it (for a pointer at the edge)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_feedback_fields(kind: str, value: Any, voids: str | None, corrected_output: Any) -> None:
    """Refuse (``FeedbackFieldError`` naming the field) a feedback event whose fields do not fit its kind.

    A ``void`` names the event it retracts in ``voids`` and nothing else does; a ``rating`` is a
    number in [-1, 1] (so is the optional score of ``correct``/``incorrect``/``correction``); a
    ``comment`` is text of at most ``COMMENT_MAX`` characters; a ``correction`` carries
    ``corrected_output``.
    """
    if kind == "void" and not voids:
        raise FeedbackFieldError("voids", "a 'void' event must name the id of the event it retracts in 'voids'")
    if kind != "void" and voids:
        raise FeedbackFieldError("voids", f"only 'void' events name 'voids'; this one is of kind {kind!r}")
    if kind == "correction" and corrected_output is None:
        raise FeedbackFieldError(
            "corrected_output", "a 'correction' event carries the right answer in 'corrected_output'"
        )
    if kind != "correction" and corrected_output is not None:
        raise FeedbackFieldError(
            "corrected_output", f"only 'correction' events carry 'corrected_output'; this one is of kind {kind!r}"
        )
    if kind == "comment":
        if not isinstance(value, str):
            raise FeedbackFieldError("value", "a 'comment' event carries its text as a string in 'value'")
        if len(value) > COMMENT_MAX:
            raise FeedbackFieldError(
                "value", f"the comment in 'value' is {len(value):,} characters long; at most {COMMENT_MAX:,}"
            )
        return
    if kind == "rating" and value is None:
        raise FeedbackFieldError("value", "a 'rating' event carries a number in [-1, 1] in 'value'")
    if value is not None:
        if isinstance(value, str) or isinstance(value, bool):
            raise FeedbackFieldError("value", f"'value' of a {kind!r} event is a number in [-1, 1], not text")
        if not (math.isfinite(value) and -1.0 <= value <= 1.0):
            raise FeedbackFieldError("value", f"'value' of a {kind!r} event must be a number in [-1, 1], got {value!r}")
