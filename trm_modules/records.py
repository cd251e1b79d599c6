"""The events that flow from the host to observers (store, xAPI, metrics).

These pydantic models are the contract between ``Host`` (which emits them through the
``trm_on_solve`` / ``trm_on_feedback`` hooks) and every observer plugin.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class SolveContext(BaseModel):
    """Where a solve came from. ``learner`` is a pseudonym chosen by the platform, never a raw identity."""

    model_config = ConfigDict(extra="forbid")

    platform: str | None = None
    course: str | None = None
    activity: str | None = None
    learner: str | None = Field(None, description="Learner pseudonym (opaque to trm-modules).")


class SolveRecord(BaseModel):
    """One answered request, attributed to the exact module version and digest that computed it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id, description="Client-supplied or generated; idempotency key.")
    module: str
    version: str
    digest: str = Field(description="sha256 of the package file that answered.")
    context: SolveContext = Field(default_factory=SolveContext)
    input: dict[str, Any]
    output: dict[str, Any] | None
    steps: int
    confidence: float
    valid: bool | None = None
    latency_ms: float
    device: str
    created_at: datetime = Field(default_factory=_now)


FeedbackKind = Literal["correct", "incorrect", "rating", "correction", "comment", "void"]


class FeedbackEvent(BaseModel):
    """Outcome feedback on a solve. Append-only: a retraction is a ``void`` event naming ``voids``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id, description="Client-supplied or generated; idempotency key.")
    solve_id: str
    kind: FeedbackKind
    value: float | str | None = None
    corrected_output: dict[str, Any] | None = None
    source: str = "api"
    actor: str | None = Field(None, description="Pseudonym of who gave the feedback.")
    voids: str | None = Field(None, description="Id of the feedback event this one retracts (kind 'void').")
    created_at: datetime = Field(default_factory=_now)
