"""How a module fares: per version × course (× cohort, × day or week) over a time window.

Every figure is aggregated in the database (``GROUP BY``), over one table where it can be: a
solve's latest effective verdict is kept on its row (``solves.verdict``, written in the
transaction that writes the feedback), and so is its course, so the core report is one indexed
scan of ``solves`` (``ix_solves_report``). Intervals come from statsmodels: module accuracy with a
95 % Wilson interval (``proportion_confint(method="wilson")``), mean learner scores with a t
interval (``DescrStatsW``).

- :func:`module_report`: the groups (solves, learners, verdicts, accuracy and its interval) and,
  unless left out, the sections: performance (steps, latency percentiles, validity, ratings
  mean), ratings distribution, calibration (expected calibration error and reliability table),
  failing inputs grouped by input digest, and learner outcomes.
- :func:`report_csv`: one table of a report as CSV text.

Definitions (the same as ``trm_modules.store.queries``): effective feedback is every event no
``void`` retracts; a verdict is ``correct`` (1) or ``incorrect``/``correction`` (0); ``accuracy`` is
correct / verdicts. A failing solve has a 0 verdict or an answer its task's rules rejected.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from datetime import datetime
from typing import Any, Iterable, Literal, Sequence

from pydantic import BaseModel, Field
from sqlalchemy import Float, Integer, and_, case, cast, distinct, exists, false, func, true, literal_column, select
from sqlalchemy.orm import aliased

from ..errors import ModuleNotFound
from .errors import StoreError
from .models import Feedback, LearnerOutcome, LearnerOutcomeSolve, Solve
from .storage import Store

Dimension = Literal["version", "course", "cohort", "day", "week"]
DIMENSIONS: tuple[str, ...] = ("version", "course", "cohort", "day", "week")
SECTIONS: tuple[str, ...] = ("performance", "ratings", "calibration", "failures", "outcomes")
#: Confidence bins of the reliability table ([0, 0.1), …, [0.9, 1.0]).
CALIBRATION_BINS = 10
ALPHA = 0.05


class ReportFilters(BaseModel):
    """What a report covers: one module, optionally one course and cohort, a time window, and its grouping."""

    course: str | None = None
    cohort: str | None = None
    since: datetime | None = None
    until: datetime | None = Field(None, description="Exclusive end of the window.")
    by: list[str] = Field(default_factory=lambda: ["version", "course"])


class Group(BaseModel):
    """The solves of one version in one course (and cohort, and period when grouped by them)."""

    version: str | None
    course: str | None
    cohort: str | None = None
    period: str | None = Field(None, description="Start (ISO date, UTC) of the day or week (Monday) grouped by.")
    solves: int
    learners: int = Field(description="Distinct learner pseudonyms among the solves.")
    verdicts: int = Field(description="Solves with an effective verdict (correct, incorrect or corrected).")
    correct: int
    accuracy: float | None = Field(description="correct / verdicts (null without verdicts).")
    accuracy_low: float | None = Field(description="Lower end of the 95 % Wilson interval of accuracy.")
    accuracy_high: float | None = Field(description="Upper end of the 95 % Wilson interval of accuracy.")
    valid_rate: float | None = None
    ratings: int | None = None
    rating_mean: float | None = None
    steps_mean: float | None = None
    steps_p50: float | None = None
    steps_p90: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None


class RatingCount(BaseModel):
    version: str
    course: str
    value: float
    count: int


class CalibrationBin(BaseModel):
    """One confidence bin of a version's reliability table (solves with a verdict)."""

    version: str
    bin_low: float
    bin_high: float
    verdicts: int
    mean_confidence: float
    accuracy: float


class Calibration(BaseModel):
    version: str
    verdicts: int
    ece: float | None = Field(description="Expected calibration error: Σ (n_bin / n) |accuracy_bin − confidence_bin|.")


class FailingInput(BaseModel):
    """Failing solves of one version on one input (grouped by the input's digest)."""

    version: str
    input_digest: str
    failures: int = Field(description="Solves of this input with a 0 verdict or an answer the rules rejected.")
    incorrect: int
    invalid: int
    solves: int = Field(description="All solves of this input by this version in the window.")
    example_solve_id: str
    input: dict[str, Any] | None


class OutcomeGroup(BaseModel):
    """Learner outcomes in a course, split by whether the learner asked the module and which version answered."""

    course: str
    asked: bool
    version: str | None = Field(
        description="The version that answered the learner's solves ('mixed' when several; "
        "null for learners who did not ask)."
    )
    outcomes: int
    learners: int
    score_mean: float | None
    score_low: float | None
    score_high: float | None
    successes: int
    with_success: int
    success_rate: float | None
    success_low: float | None
    success_high: float | None


class ModuleReport(BaseModel):
    """``GET /v1/modules/{name}/stats`` and ``trm stats``: the groups and the sections asked for."""

    module: str
    filters: ReportFilters
    groups: list[Group]
    ratings: list[RatingCount] | None = None
    calibration: list[Calibration] | None = None
    reliability: list[CalibrationBin] | None = None
    failures: list[FailingInput] | None = None
    outcomes: list[OutcomeGroup] | None = None


# ------------------------------------------------------------------------------------ statistics
def wilson_interval(successes: int, trials: int) -> tuple[float | None, float | None]:
    """The 95 % Wilson score interval of successes / trials (statsmodels), (None, None) without trials."""
    if trials <= 0:
        return None, None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, trials, alpha=ALPHA, method="wilson")
    return float(low), float(high)


def mean_interval(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """Mean of ``values`` and its 95 % t interval (statsmodels ``DescrStatsW``); None where undefined."""
    if not values:
        return None, None, None
    mean = float(sum(values) / len(values))
    if len(values) < 2:
        return mean, None, None
    from statsmodels.stats.weightstats import DescrStatsW

    low, high = DescrStatsW(values).tconfint_mean(alpha=ALPHA)
    if math.isnan(low):  # every value equal: no spread
        return mean, mean, mean
    return mean, float(low), float(high)


# ------------------------------------------------------------------------------------ the report
def parse_dimensions(by: Iterable[str] | str | None) -> list[str]:
    """The grouping: ``by`` values (comma-separated allowed); version and course unless one of them is named."""
    names: list[str] = []
    for value in [by] if isinstance(by, str) else list(by or []):
        names.extend(part.strip() for part in value.split(",") if part.strip())
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown:
        raise StoreError(f"cannot group by {', '.join(map(repr, unknown))}; expected any of {', '.join(DIMENSIONS)}")
    if "day" in names and "week" in names:
        raise StoreError("group by day or by week, not both")
    if "version" not in names and "course" not in names:
        names = ["version", "course", *names]
    return [name for name in DIMENSIONS if name in names]


def _period(dialect: str, unit: str) -> Any:
    if dialect == "postgresql":
        utc = func.timezone("UTC", Solve.created_at)
        start = utc if unit == "day" else func.date_trunc("week", utc)
        return func.to_char(start, "YYYY-MM-DD")
    if unit == "day":
        return func.strftime("%Y-%m-%d", Solve.created_at)
    return func.date(Solve.created_at, "weekday 0", "-6 days")  # the Monday of the (ISO) week


def _filtered(query: Any, module: str, filters: ReportFilters, *, solves_looked_up: str | None = None) -> Any:
    """``query`` limited to ``module``'s solves in the filters' course, cohort and window.

    ``solves_looked_up``: the dialect, when the query joins solves to another table's rows
    (feedback) and should find them by id rather than scan every solve of the module. SQLite has no hash join, and from
    ``module = ?`` on an index it would scan the module's solves and look each one's feedback up,
    so there the module is compared through ``coalesce`` (no index applies) and the planner starts
    from the other table's index instead.
    """
    if solves_looked_up == "sqlite":
        query = query.where(func.coalesce(Solve.module, "") == module)
    else:
        query = query.where(Solve.module == module)
    if filters.course is not None:
        query = query.where(Solve.course == filters.course)
    if filters.cohort is not None:
        query = query.where(Solve.cohort == filters.cohort)
    if filters.since is not None:
        query = query.where(Solve.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Solve.created_at < filters.until)
    return query


def _keys(dialect: str, dimensions: Sequence[str]) -> list[Any]:
    columns = {"version": Solve.version, "course": Solve.course, "cohort": Solve.cohort}
    keys = []
    for name in dimensions:
        if name in ("day", "week"):
            keys.append(_period(dialect, name).label("period"))
        else:
            keys.append(columns[name].label(name))
    return keys


def _key_of(row: Any, dimensions: Sequence[str]) -> tuple[Any, ...]:
    return tuple(getattr(row, "period" if name in ("day", "week") else name) for name in dimensions)


def module_report(
    store: Store,
    module: str,
    *,
    course: str | None = None,
    cohort: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Iterable[str] | str | None = None,
    sections: Iterable[str] = SECTIONS,
    failures_limit: int = 20,
) -> ModuleReport:
    """How ``module`` fares in the window, grouped by ``by`` (see the module docstring).

    ``sections``: which of ``SECTIONS`` to compute besides the groups (an empty tuple gives the
    core report, one aggregate query). ``ModuleNotFound`` if the store holds no solve of ``module``.
    """
    dimensions = parse_dimensions(by)
    wanted = set(sections)
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise StoreError(f"unknown report sections {sorted(unknown)}; expected any of {', '.join(SECTIONS)}")
    filters = ReportFilters(course=course, cohort=cohort, since=since, until=until, by=dimensions)
    keys = _keys(store.dialect, dimensions)
    core = _filtered(
        select(
            *keys,
            func.count().label("solves"),
            func.count(distinct(Solve.learner)).label("learners"),
            func.count(Solve.verdict).label("verdicts"),
            func.coalesce(func.sum(Solve.verdict), 0).label("correct"),
        ),
        module,
        filters,
    )
    core = core.group_by(*keys).order_by(*keys)
    with store.session() as session:
        rows = session.execute(core).all()
        if not rows and not session.scalar(select(exists().where(Solve.module == module))):
            known = session.scalars(select(Solve.module).distinct().order_by(Solve.module)).all()
            raise ModuleNotFound(
                f"no solves of module {module!r} are recorded in {store!r}; modules with solves: {list(known)}"
            )
        groups = {}
        for row in rows:
            low, high = wilson_interval(int(row.correct), int(row.verdicts))
            groups[_key_of(row, dimensions)] = Group(
                version=getattr(row, "version", None),
                course=getattr(row, "course", None),
                cohort=getattr(row, "cohort", None),
                period=getattr(row, "period", None),
                solves=row.solves,
                learners=row.learners,
                verdicts=row.verdicts,
                correct=int(row.correct),
                accuracy=int(row.correct) / row.verdicts if row.verdicts else None,
                accuracy_low=low,
                accuracy_high=high,
            )
        report = ModuleReport(module=module, filters=filters, groups=list(groups.values()))
        if "performance" in wanted:
            _add_performance(store, session, module, filters, dimensions, groups)
        if "ratings" in wanted:
            report.ratings = _ratings(session, module, filters, dimensions, groups)
        if "calibration" in wanted:
            report.calibration, report.reliability = _calibration(session, module, filters)
        if "failures" in wanted:
            report.failures = _failures(session, module, filters, failures_limit)
        if "outcomes" in wanted:
            report.outcomes = learner_outcomes(session, module, course=course, since=since, until=until)
    return report


def _add_performance(
    store: Store,
    session: Any,
    module: str,
    filters: ReportFilters,
    dimensions: Sequence[str],
    groups: dict[tuple[Any, ...], Group],
) -> None:
    keys = _keys(store.dialect, dimensions)
    valid_rate = func.avg(case((Solve.valid.is_(None), None), (Solve.valid == true(), 1.0), else_=0.0))
    aggregates = [func.avg(Solve.steps).label("steps_mean"), valid_rate.label("valid_rate")]
    if store.dialect == "postgresql":

        def pct(q: float, column: Any, name: str) -> Any:
            return func.percentile_cont(q).within_group(column).label(name)

        aggregates += [
            pct(0.5, Solve.steps, "steps_p50"),
            pct(0.9, Solve.steps, "steps_p90"),
            pct(0.5, Solve.latency_ms, "latency_p50_ms"),
            pct(0.9, Solve.latency_ms, "latency_p90_ms"),
            pct(0.99, Solve.latency_ms, "latency_p99_ms"),
        ]
    query = _filtered(select(*keys, *aggregates), module, filters).group_by(*keys)
    for row in session.execute(query):
        group = groups.get(_key_of(row, dimensions))
        if group is None:
            continue
        group.steps_mean = float(row.steps_mean) if row.steps_mean is not None else None
        group.valid_rate = float(row.valid_rate) if row.valid_rate is not None else None
        if store.dialect == "postgresql":
            for name in ("steps_p50", "steps_p90", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"):
                setattr(group, name, float(getattr(row, name)))
    if store.dialect != "postgresql":  # SQLite has no percentile aggregate: numpy over the two columns
        _add_percentiles_numpy(
            session, _filtered(select(*keys, Solve.steps, Solve.latency_ms), module, filters), dimensions, groups
        )


def _add_percentiles_numpy(
    session: Any, query: Any, dimensions: Sequence[str], groups: dict[tuple[Any, ...], Group]
) -> None:
    """Steps and latency percentiles per group (numpy's linear interpolation, as PostgreSQL's
    ``percentile_cont``) over rows (keys…, steps, latency): a module's million solves are split by
    group in numpy, not appended row by row."""
    import numpy as np

    rows = session.execute(query).all()
    if not rows:
        return
    width = len(dimensions)
    columns = list(zip(*rows))
    codes: dict[tuple[Any, ...], int] = {}
    code = np.fromiter(
        (codes.setdefault(key, len(codes)) for key in zip(*columns[:width])), dtype=np.int64, count=len(rows)
    )
    steps, latency = np.asarray(columns[width], dtype=float), np.asarray(columns[width + 1], dtype=float)
    order = np.argsort(code, kind="stable")
    starts = np.searchsorted(code[order], np.arange(len(codes) + 1))
    for key, index in codes.items():
        group = groups.get(key)
        if group is None:
            continue
        chosen = order[starts[index] : starts[index + 1]]
        group.steps_p50, group.steps_p90 = (float(v) for v in np.percentile(steps[chosen], [50, 90]))
        group.latency_p50_ms, group.latency_p90_ms, group.latency_p99_ms = (
            float(v) for v in np.percentile(latency[chosen], [50, 90, 99])
        )


def _effective_ratings() -> Any:
    voider = aliased(Feedback)
    return and_(Feedback.kind == "rating", ~exists().where(voider.kind == "void", voider.voids == Feedback.id))


def _ratings(
    session: Any, module: str, filters: ReportFilters, dimensions: Sequence[str], groups: dict[tuple[Any, ...], Group]
) -> list[RatingCount]:
    """Effective ``rating`` events on the window's solves: count and mean per group, distribution per version × course."""
    value = cast(_rating_value(session), Float)
    dialect = session.get_bind().dialect.name
    query = _filtered(
        select(Solve.version, Solve.course, value.label("value"), func.count().label("count"))
        .select_from(Feedback)
        .join(Solve, Feedback.solve_id == Solve.id)
        .where(_effective_ratings()),
        module,
        filters,
        solves_looked_up=dialect,
    )
    query = query.group_by(Solve.version, Solve.course, value).order_by(Solve.version, Solve.course, value)
    distribution = [
        RatingCount(version=r.version, course=r.course or "", value=float(r.value), count=r.count)
        for r in session.execute(query)
        if r.value is not None
    ]
    per_group: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0])
    if set(dimensions) <= {"version", "course"}:
        for item in distribution:
            key = tuple({"version": item.version, "course": item.course}[d] for d in dimensions)
            per_group[key][0] += item.count
            per_group[key][1] += item.count * item.value
    else:  # grouped by cohort or period too: count and mean in the database with those keys
        keys = _keys(dialect, dimensions)
        query = _filtered(
            select(*keys, func.count().label("n"), func.avg(value).label("mean"))
            .select_from(Feedback)
            .join(Solve, Feedback.solve_id == Solve.id)
            .where(_effective_ratings()),
            module,
            filters,
            solves_looked_up=dialect,
        )
        for row in session.execute(query.group_by(*keys)):
            per_group[_key_of(row, dimensions)] = [row.n, (row.mean or 0.0) * row.n]
    for key, (count, total) in per_group.items():
        group = groups.get(key)
        if group is not None and count:
            group.ratings, group.rating_mean = int(count), total / count
    for group in groups.values():
        if group.ratings is None:
            group.ratings = 0
    return distribution


def _rating_value(session: Any) -> Any:
    """The numeric value of a rating event (a JSON number) as SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return Feedback.value.op("#>>")(literal_column("'{}'"))  # the JSONB scalar as text
    return func.json_extract(Feedback.value, "$")


def _calibration(session: Any, module: str, filters: ReportFilters) -> tuple[list[Calibration], list[CalibrationBin]]:
    """Per version: confidence bins of judged solves (count, mean confidence, accuracy) and the ECE over them."""
    bin_index = case(
        (Solve.confidence >= 1.0, CALIBRATION_BINS - 1),
        (Solve.confidence < 0, 0),
        else_=func.floor(Solve.confidence * CALIBRATION_BINS),
    )
    bin_column = cast(bin_index, Integer).label("bin")
    query = _filtered(
        select(
            Solve.version,
            bin_column,
            func.count().label("n"),
            func.avg(Solve.confidence).label("confidence"),
            func.avg(Solve.verdict * 1.0).label("accuracy"),
        ).where(Solve.verdict.is_not(None)),
        module,
        filters,
    )
    rows = session.execute(query.group_by(Solve.version, bin_column).order_by(Solve.version, bin_column)).all()
    bins = [
        CalibrationBin(
            version=r.version,
            bin_low=r.bin / CALIBRATION_BINS,
            bin_high=(r.bin + 1) / CALIBRATION_BINS,
            verdicts=r.n,
            mean_confidence=float(r.confidence),
            accuracy=float(r.accuracy),
        )
        for r in rows
    ]
    by_version: dict[str, list[CalibrationBin]] = defaultdict(list)
    for item in bins:
        by_version[item.version].append(item)
    summary = []
    for version, items in by_version.items():
        total = sum(item.verdicts for item in items)
        ece = (
            sum(item.verdicts / total * abs(item.accuracy - item.mean_confidence) for item in items) if total else None
        )
        summary.append(Calibration(version=version, verdicts=total, ece=ece))
    return summary, bins


def _failures(session: Any, module: str, filters: ReportFilters, limit: int) -> list[FailingInput]:
    """The inputs with the most failing solves, per version (grouped by input digest)."""
    failing = (Solve.verdict == 0) | (Solve.valid == false())
    digest = Solve.input_digest
    # The counts read only columns of ix_solves_report (one index-only scan); the example of each of the
    # ``limit`` inputs, its first failing solve's id, is then looked up among those inputs' solves alone.
    query = _filtered(
        select(
            Solve.version,
            digest.label("digest"),
            func.sum(case((failing, 1), else_=0)).label("failures"),
            func.sum(case((Solve.verdict == 0, 1), else_=0)).label("incorrect"),
            func.sum(case((Solve.valid == false(), 1), else_=0)).label("invalid"),
            func.count().label("solves"),
        ),
        module,
        filters,
    ).where(digest.is_not(None))
    query = (
        query.group_by(Solve.version, digest)
        .having(func.sum(case((failing, 1), else_=0)) > 0)
        .order_by(func.sum(case((failing, 1), else_=0)).desc(), Solve.version, digest)
        .limit(limit)
    )
    rows = session.execute(query).all()
    examples: dict[tuple[str, str], str] = {}
    if rows:
        first = _filtered(
            select(Solve.version, digest.label("digest"), func.min(Solve.id).label("example")), module, filters
        ).where(failing, digest.in_({r.digest for r in rows}), Solve.version.in_({r.version for r in rows}))
        examples = {(r.version, r.digest): r.example for r in session.execute(first.group_by(Solve.version, digest))}
    inputs = {
        row.id: row.input
        for row in session.execute(select(Solve.id, Solve.input).where(Solve.id.in_(set(examples.values()))))
    }
    return [
        FailingInput(
            version=r.version,
            input_digest=r.digest,
            failures=int(r.failures),
            incorrect=int(r.incorrect),
            invalid=int(r.invalid),
            solves=r.solves,
            example_solve_id=examples[(r.version, r.digest)],
            input=inputs.get(examples[(r.version, r.digest)]),
        )
        for r in rows
    ]


def learner_outcomes(
    session: Any,
    module: str | None = None,
    *,
    course: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[OutcomeGroup]:
    """Learner outcomes split by asked-the-module / did-not and by the version that answered.

    With ``module``, "asked" means asked *this* module: an outcome whose solves were all answered
    by other modules counts as not asked. Each outcome's version is the one version that answered
    its solves (``mixed`` when several did).
    """
    link = select(
        LearnerOutcomeSolve.outcome_id.label("outcome_id"),
        func.min(Solve.version).label("low"),
        func.max(Solve.version).label("high"),
    ).join(Solve, Solve.id == LearnerOutcomeSolve.solve_id)
    if module is not None:
        link = link.where(Solve.module == module)
    versions = link.group_by(LearnerOutcomeSolve.outcome_id).subquery()
    query = select(
        LearnerOutcome.course,
        LearnerOutcome.learner,
        LearnerOutcome.normalised_score,
        LearnerOutcome.success,
        versions.c.low,
        versions.c.high,
    ).outerjoin(versions, versions.c.outcome_id == LearnerOutcome.id)
    if course is not None:
        query = query.where(LearnerOutcome.course == course)
    if since is not None:
        query = query.where(LearnerOutcome.created_at >= since)
    if until is not None:
        query = query.where(LearnerOutcome.created_at < until)
    cells: dict[tuple[str, bool, str | None], list[Any]] = defaultdict(list)
    for row in session.execute(query):
        asked = row.low is not None
        version = None if not asked else (row.low if row.low == row.high else "mixed")
        cells[(row.course, asked, version)].append(row)
    groups = []
    for (course_name, asked, version), rows in sorted(
        cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
    ):
        scores = [float(r.normalised_score) for r in rows if r.normalised_score is not None]
        judged = [bool(r.success) for r in rows if r.success is not None]
        mean, low, high = mean_interval(scores)
        s_low, s_high = wilson_interval(sum(judged), len(judged))
        groups.append(
            OutcomeGroup(
                course=course_name,
                asked=asked,
                version=version,
                outcomes=len(rows),
                learners=len({r.learner for r in rows}),
                score_mean=mean,
                score_low=low,
                score_high=high,
                successes=sum(judged),
                with_success=len(judged),
                success_rate=sum(judged) / len(judged) if judged else None,
                success_low=s_low,
                success_high=s_high,
            )
        )
    return groups


# ------------------------------------------------------------------------------------ CSV
TABLES: tuple[str, ...] = ("groups", "ratings", "calibration", "reliability", "failures", "outcomes")


def report_csv(report: ModuleReport, table: str = "groups") -> str:
    """One table of ``report`` as CSV (header row first; every field of the table's rows)."""
    if table not in TABLES:
        raise StoreError(f"no table {table!r} in a report; expected one of {', '.join(TABLES)}")
    rows: list[BaseModel] = getattr(report, table) or []
    models: dict[str, type[BaseModel]] = {
        "groups": Group,
        "ratings": RatingCount,
        "calibration": Calibration,
        "reliability": CalibrationBin,
        "failures": FailingInput,
        "outcomes": OutcomeGroup,
    }
    model = models[table]
    fields = [name for name in model.model_fields if name != "input"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["module", *fields])
    for row in rows:
        values = row.model_dump()
        writer.writerow([report.module, *("" if values[f] is None else values[f] for f in fields)])
    return out.getvalue()
