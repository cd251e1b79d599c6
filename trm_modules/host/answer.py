"""What ``Host.solve`` returns: the answer and exactly which version computed it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class Answer(BaseModel):
    """One solved request, attributed to the module version and package digest that computed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    solve_id: str = Field(description="Id of this solve; feedback names it (FeedbackEvent.solve_id).")
    module: str
    version: str
    digest: str = Field(description="sha256 of the package (or weights) that answered.")
    output: dict[str, Any] | None = Field(
        description="The answer; None when the model's tokens form no answer (valid is then False)."
    )
    steps: int = Field(description="Supervision steps the model used before halting (summed over the views solved).")
    confidence: float = Field(description="sigmoid(q_halt) at the answering step, in [0, 1].")
    valid: bool | None = Field(description="The codec's rule check of the answer; None if the task has none.")
    latency_ms: float
    device: str
    views: int = Field(
        1, description="Test-time views solved: more than 1 when the first answer broke the task's rules."
    )
    _observed: Any = PrivateAttr(None)

    @property
    def observed(self) -> Any:
        """A ``concurrent.futures.Future`` completing once every ``trm_on_solve`` observer has this
        solve's record, with their results (the store's write ticket among them); None without observers."""
        return self._observed
