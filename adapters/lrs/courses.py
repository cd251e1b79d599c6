"""Which course a statement belongs to, for tokens limited to courses (one rule, in Python and in SQL).

A statement belongs to course C when

1. its object is a solve's activity IRI (``…/solves/{id}``, what the feedback bridge reads): the course
   the solve was recorded in decides, whatever else the statement names;
2. its object is a ``StatementRef`` (a voiding, a reply): the statement it refers to decides;
3. otherwise, one of its activities — ``context.contextActivities`` (grouping, parent, category,
   other) or the object — is C's activity IRI: ``{public URL}/courses/{C}`` (what this server's own
   statements carry as their grouping activity), or C itself when the course is named by an IRI.

``CourseScope.allows`` answers it for one statement (reads by id, writes); ``CourseScope.condition``
is the same rule as a SQL condition on ``lrs_statements`` for ``GET /statements`` queries (paging
included), so a limited token's query is filtered in the database, never after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import quote

from sqlalchemy import ColumnElement, Engine, and_, exists, literal, not_, or_, select

from trm_modules.store.models import Context, Solve

from ..xapi_statements import solve_id_from_iri
from . import tables

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def course_iri(base: str, course: str) -> str:
    """The activity IRI of ``course`` under ``base`` (the course itself when it is an IRI)."""
    return course if _SCHEME.match(course) else f"{base.rstrip('/')}/courses/{quote(course, safe='')}"


def _context_activity_ids(part: dict[str, Any]) -> list[str]:
    context = part.get("context") or {}
    lists = (context.get("contextActivities") or {}).values()
    ids: list[str] = []
    for entries in lists:
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                ids.append(entry["id"])
    return ids


@dataclass(frozen=True)
class CourseScope:
    """The courses a token is limited to, and how to tell a statement's course on this server."""

    courses: frozenset[str]
    base: str
    engine: Engine

    @property
    def iris(self) -> list[str]:
        return sorted({course_iri(self.base, c) for c in self.courses})

    def describe(self) -> str:
        return ", ".join(sorted(self.courses))

    # ------------------------------------------------------------------------------- one statement
    def solve_course(self, solve_id: str) -> tuple[bool, str | None]:
        """(whether the store knows the solve, its course)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(Context.course).join(Solve, Solve.context_id == Context.id).where(Solve.id == solve_id)
            ).first()
        return (True, row[0] or None) if row is not None else (False, None)

    def allows(
        self, statement: dict[str, Any], referred: Callable[[str], dict[str, Any] | None], depth: int = 0
    ) -> bool:
        """Whether ``statement`` belongs to one of the courses (``referred(id)``: a stored statement, or None)."""
        target = statement.get("object") or {}
        kind = target.get("objectType", "Activity")
        if kind == "Activity" and isinstance(target.get("id"), str):
            solve_id = solve_id_from_iri(target["id"])
            if solve_id is not None:
                known, course = self.solve_course(solve_id)
                return known and course in self.courses
        if kind == "StatementRef":
            stored = referred(str(target.get("id", "")).lower()) if depth == 0 else None
            return stored is not None and self.allows(stored, referred, depth + 1)
        named = set(_context_activity_ids(statement))
        if kind == "Activity" and isinstance(target.get("id"), str):
            named.add(target["id"])
        return bool(named & set(self.iris))

    # ------------------------------------------------------------------------------- in SQL
    def condition(self, alias: Any) -> ColumnElement[bool]:
        """The rule above as a condition on ``alias`` (an alias of ``lrs_statements``)."""
        target = tables.statements.alias("course_target")
        return or_(
            and_(alias.c.ref_target.is_(None), self._direct(alias)),
            alias.c.ref_target.in_(select(target.c.id).where(target.c.ref_target.is_(None), self._direct(target))),
        )

    def _direct(self, alias: Any) -> ColumnElement[bool]:
        a = tables.statement_activities.alias()
        prefix = f"{self.base.rstrip('/')}/v1/solves/"
        solve_iris = (
            select(literal(prefix) + Solve.id)
            .join(Context, Solve.context_id == Context.id)
            .where(Context.course.in_(sorted(self.courses)))
        )
        about_a_solve = exists().where(
            a.c.statement_seq == alias.c.seq, a.c.related.is_(False), a.c.activity_id.like("%/solves/%")
        )
        b = tables.statement_activities.alias()
        about_our_solve = exists().where(
            b.c.statement_seq == alias.c.seq, b.c.related.is_(False), b.c.activity_id.in_(solve_iris)
        )
        c = tables.statement_activities.alias()
        names_course = exists().where(c.c.statement_seq == alias.c.seq, c.c.activity_id.in_(self.iris))
        return or_(about_our_solve, and_(not_(about_a_solve), names_course))


def scope_for(courses: Iterable[str] | None, base: str, engine: Engine) -> CourseScope | None:
    """The scope of a token's courses (None: a token of every course)."""
    return CourseScope(frozenset(courses), base, engine) if courses is not None else None
