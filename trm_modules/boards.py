"""Board views: how the browser activities (SCORM, cmi5, LTI) and the dashboard draw and edit a task's token grid.

A codec's plugin describes its board through the ``trm_board_view`` hook as a ``BoardView``: the grid's
shape, what each token looks like, which input cells the learner edits and with which tokens, and the
task's rules in a form the page can check itself (``BoardRule``), so that the page's test-time views choose
answers as the server does. The Sudoku, maze and generic grid codecs describe theirs in their adapter plugins; a
task whose plugin describes none cannot become an activity (``NoBoardView`` names the hook).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import pluggy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .codec import TaskCodec
from .errors import TRMError
from .plugins import call_hook, get_plugin_manager


class NoBoardView(TRMError, LookupError):
    """No plugin describes a browser board for this task's codec (or the description is invalid)."""


class InvalidBoardView(NoBoardView):
    """A plugin describes a board for this codec that is no valid ``BoardView`` or does not fit the codec."""


class AllDifferent(BaseModel):
    """Each group of cells (indices into the token sequence) holds pairwise different tokens; cells holding an
    ``ignore`` token (the padding around a grid smaller than the board) are left out of the comparison."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["all-different"] = "all-different"
    groups: list[list[Annotated[int, Field(ge=0)]]]
    ignore: list[int] = Field(default_factory=list)


class ShortestPath(BaseModel):
    """The cells holding ``path`` tokens, with the ``start`` and ``goal`` cells, form a shortest route from start
    to goal through cells whose input token is in ``passable`` (4-neighbourhood), and nothing else changed."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["shortest-path"] = "shortest-path"
    start: int
    goal: int
    path: int
    passable: list[int]


BoardRule = Annotated[Union[AllDifferent, ShortestPath], Field(discriminator="kind")]


class BoardView(BaseModel):
    """A task's board as the browser activities draw it (``rows`` × ``cols`` cells, row-major token order).

    ``blank_token`` marks the input cells the learner edits, and is what such a cell holds until edited;
    ``choices`` are the tokens an edited cell may hold. ``entry`` is how the learner edits: ``"type"`` a
    label on the keyboard (Sudoku digits), or ``"click"`` to cycle through the choices (a maze's path).
    ``labels`` and ``classes`` (token id as a string → text, CSS class) say how a token is shown; a
    ``box_rows`` × ``box_cols`` box pattern draws thicker lines. ``rules`` let the page judge an answer
    as the codec's ``check`` does; with none, the page asks in the identity view only.
    """

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=1, le=64)
    cols: int = Field(ge=1, le=64)
    box_rows: int | None = Field(default=None, ge=1)
    box_cols: int | None = Field(default=None, ge=1)
    blank_token: int = Field(ge=0)
    choices: list[int] = Field(min_length=1)
    labels: dict[str, str]
    classes: dict[str, str] = Field(default_factory=dict)
    entry: Literal["type", "click"] = "type"
    instructions: str = ""
    rules: list[BoardRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "BoardView":
        cells = self.rows * self.cols
        for rule in self.rules:
            if isinstance(rule, AllDifferent):
                bad = [i for group in rule.groups for i in group if i >= cells]
                if bad:
                    raise ValueError(f"rule all-different names cell {bad[0]} of a {self.rows}x{self.cols} board")
        missing = [t for t in self.choices if str(t) not in self.labels]
        if missing and self.entry == "type":
            raise ValueError(f"choice token {missing[0]} has no label to type")
        return self


def board_view(codec: TaskCodec, plugins: pluggy.PluginManager | None = None) -> BoardView:
    """The board the plugins describe for ``codec`` (``trm_board_view``, first answer wins); ``NoBoardView``
    saying which hook to implement when none does, or when the answer is not a valid ``BoardView``."""
    plugins = plugins if plugins is not None else get_plugin_manager()
    described: Any = call_hook(plugins, "trm_board_view", firstresult=True, codec=codec)
    if described is None:
        raise NoBoardView(
            f"task codec {codec.name!r} has no browser board: its plugin can describe one by implementing "
            f"the trm_board_view(codec) hook (trm_modules/hookspecs.py) returning a "
            f"trm_modules.boards.BoardView"
        )
    try:
        view = described if isinstance(described, BoardView) else BoardView.model_validate(described)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/" + "/".join(str(p) for p in first["loc"])
        raise InvalidBoardView(
            f"the board trm_board_view describes for codec {codec.name!r} is invalid: {first['msg']} (at {where})"
        ) from exc
    if view.rows * view.cols != codec.seq_len:
        raise InvalidBoardView(
            f"the board trm_board_view describes for codec {codec.name!r} has "
            f"{view.rows}x{view.cols} cells, but the codec's sequence has {codec.seq_len} tokens"
        )
    return view


def board_document(codec: TaskCodec, plugins: pluggy.PluginManager | None = None) -> dict[str, Any]:
    """``board_view`` as the JSON document the pages read."""
    return board_view(codec, plugins).model_dump(mode="json")


def grid_groups(
    rows: int,
    cols: int,
    box_rows: int | None = None,
    box_cols: int | None = None,
    *,
    by_rows: bool = True,
    by_cols: bool = True,
) -> list[list[int]]:
    """Cell indices of each row, column and box of a ``rows`` × ``cols`` grid (for ``AllDifferent``)."""
    groups: list[list[int]] = []
    if by_rows:
        groups += [[r * cols + c for c in range(cols)] for r in range(rows)]
    if by_cols:
        groups += [[r * cols + c for r in range(rows)] for c in range(cols)]
    if box_rows and box_cols:
        for top in range(0, rows, box_rows):
            for left in range(0, cols, box_cols):
                groups.append([(top + r) * cols + left + c for r in range(box_rows) for c in range(box_cols)])
    return groups


__all__ = [
    "BoardView",
    "AllDifferent",
    "ShortestPath",
    "NoBoardView",
    "InvalidBoardView",
    "board_view",
    "board_document",
    "grid_groups",
]
