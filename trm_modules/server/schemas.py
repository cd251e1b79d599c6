"""The bodies of the HTTP API (pydantic models; they are also the OpenAPI document's schemas)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..records import COMMENT_MAX, ID_MAX, NAME_MAX, Document, FeedbackKind, SolveContext, Text, check_feedback_fields


class SolveRequest(BaseModel):
    """One task input for a module, with where it comes from."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "input": {"grid": [[1, 0, 0, 4], [0, 0, 1, 0], [0, 1, 0, 0], [4, 0, 0, 1]]},
                    "context": {
                        "platform": "moodle.example.org",
                        "course": "logic-101",
                        "activity": "week-3",
                        "learner": "a1b2c3",
                    },
                    "client_id": "3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11",
                }
            ]
        },
    )

    input: Document = Field(
        description="The task input; must match the module's input schema (GET /v1/modules/{name}/schemas/input)."
    )
    context: SolveContext = Field(
        default_factory=SolveContext, description="Platform, course, activity and learner pseudonym."
    )
    client_id: Text | None = Field(
        None,
        min_length=1,
        max_length=ID_MAX,
        description="Your id for this solve (idempotency key in the store); generated when absent.",
    )


class SolveResponse(BaseModel):
    """The module's answer and exactly which version computed it."""

    solve_id: str = Field(
        description="Name this id in feedback; the xAPI activity of the solve is {public_url}/v1/solves/{solve_id}."
    )
    module: str
    version: str
    digest: str = Field(description="sha256 of the package file that answered.")
    output: dict[str, Any] | None = Field(
        description="The answer; null when the model's tokens form no answer "
        "(valid is then false; the solve is still recorded)."
    )
    steps: int = Field(description="Supervision steps used before halting (summed over the views solved).")
    confidence: float = Field(description="The model's halting confidence in [0, 1].")
    valid: bool | None = Field(description="The task's rule check of the answer (None: the task has none).")
    latency_ms: float
    views: int = Field(
        1, description="Test-time views solved: more than 1 when the first answer broke the task's rules."
    )


class FeedbackRequest(BaseModel):
    """Outcome feedback on a solve; posting the same ``id`` again changes nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "9b2f7f5e-7c11-4d0e-9a51-2b9b1c0f6a10",
                    "solve_id": "3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11",
                    "kind": "correct",
                    "actor": "teacher-7",
                },
                {
                    "solve_id": "3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11",
                    "kind": "correction",
                    "corrected_output": {"grid": [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]},
                },
                {"solve_id": "3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11", "kind": "rating", "value": 0.5},
            ]
        },
    )

    id: Text | None = Field(
        None, min_length=1, max_length=ID_MAX, description="Your id for this event (idempotency key)."
    )
    solve_id: Text = Field(
        min_length=1,
        max_length=ID_MAX,
        description="The solve this is about (404 if this server recorded no such solve, unless 'external').",
    )
    kind: FeedbackKind
    value: float | Text | None = Field(
        None,
        description="A rating in [-1, 1] (required for 'rating', optional score "
        "of 'correct', 'incorrect', 'correction'), or a comment's text "
        f"(kind 'comment', at most {COMMENT_MAX:,} characters).",
    )
    corrected_output: Document | None = Field(None, description="The right answer (kind 'correction' only, required).")
    actor: Text | None = Field(None, max_length=NAME_MAX, description="Pseudonym of who gave the feedback.")
    voids: Text | None = Field(
        None,
        min_length=1,
        max_length=ID_MAX,
        description="Id of the event a 'void' retracts (required for 'void', else absent).",
    )
    external: bool = Field(
        False,
        description="The solve was answered elsewhere (another server, an offline copy): "
        "accept feedback on a solve id this store does not know.",
    )

    @model_validator(mode="after")
    def _fits_its_kind(self) -> "FeedbackRequest":
        check_feedback_fields(self.kind, self.value, self.voids, self.corrected_output)
        return self


class FeedbackAccepted(BaseModel):
    """The feedback event as accepted (``duplicate``: its id was already known; nothing changed)."""

    id: str
    solve_id: str
    kind: str
    duplicate: bool = Field(False, description="This id was already stored: nothing changed (answered with 200).")


class VersionRequest(BaseModel):
    """Names one version of a module."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "1.2.0"}]})
    version: str


class CanaryRequest(BaseModel):
    """Send ``share`` of learners (by pseudonym hash) to ``version``; share 0 stops the canary."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "1.3.0", "share": 0.1}]})
    version: str | None = None
    share: float = Field(ge=0.0, le=1.0)


class YankRequest(BaseModel):
    """Why a version is yanked (shown to those who still pin it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "answers 4x4 puzzles with repeated digits", "yanked": True}]},
    )
    reason: str | None = Field(None, max_length=500)
    yanked: bool = True


class SlotResponse(BaseModel):
    """Which versions of a module answer which requests on this server."""

    name: str
    active: str | None
    canary: str | None
    canary_share: float
    pins: dict[str, str]
    loaded: list[str]
    history: list[str]
    revision: int = Field(
        0,
        description="Revision of the module's routing state shared by all replicas (0: never "
        "changed through the admin API); send it as If-Match to refuse a stale write",
    )


class ModuleLinks(BaseModel):
    self: str
    solve: str
    input_schema: str
    output_schema: str


class ModuleSummary(BaseModel):
    """A module this server knows: what is published and what answers."""

    name: str
    module_id: str | None
    title: str | None
    active: str | None
    canary: str | None
    canary_share: float
    pins: dict[str, str]
    available: list[str] = Field(description="Published versions that are not yanked, oldest first.")
    yanked: list[str]
    links: ModuleLinks


class ModuleDetail(ModuleSummary):
    """One module: its active (or requested) version's manifest, model card and task schemas."""

    version: str
    digest: str
    manifest: dict[str, Any]
    card: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class PublishedPackage(BaseModel):
    """A package the server verified, self-tested and published to its registry."""

    name: str
    version: str
    digest: str
    size: int
    active: str | None = Field(description="The module's active version after the upload.")
