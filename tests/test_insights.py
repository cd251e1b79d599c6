"""Insights: the report's figures equal the verdicts sent, intervals come from statsmodels, and a
comparison on a simulated course with a known difference names the better version."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

import pytest
from statsmodels.stats.proportion import proportion_confint

from fixtures.store import T0, backend, feedback, solve, store, store_url  # noqa: F401 (fixtures)
from trm_modules.errors import ModuleNotFound
from trm_modules.records import OutcomeRecord, SolveContext
from trm_modules.store import StoreError
from trm_modules.store.comparison import compare_versions
from trm_modules.store.insights import module_report, report_csv
from trm_modules.store.models import Solve
from trm_modules.store.storage import input_digest

COURSE = "logic-101"


def simulated_course(
    store,
    *,
    accuracy: dict[str, float],
    learners: int = 60,
    puzzles: int = 6,
    seed: int = 1,
    course: str = COURSE,
    module: str = "maze-9x9",
    judged: float = 0.85,
):
    """Learners split by hash-like parity between versions, each answering ``puzzles`` puzzles, most judged.

    Returns what was sent: per (version, course) the solves, learners, verdicts and correct counts.
    """
    rng = random.Random(seed)
    versions = sorted(accuracy)
    sent = defaultdict(lambda: {"solves": 0, "learners": set(), "verdicts": 0, "correct": 0})
    items = []
    for learner in range(learners):
        version = versions[learner % len(versions)]
        ability = rng.uniform(-0.08, 0.08)  # learners differ: verdicts cluster by learner
        for p in range(puzzles):
            solve_id = f"{module}-{course}-{learner}-{p}"
            items.append(
                solve(
                    0,
                    id=solve_id,
                    module=module,
                    version=version,
                    context=SolveContext(
                        platform="lms",
                        course=course,
                        activity=f"week-{p % 3}",
                        learner=f"{course}-learner-{learner}",
                        cohort="A" if learner % 4 < 2 else "B",
                    ),
                    input={"walls": [p % 5, learner % 2]},
                    created_at=T0 + timedelta(hours=learner, minutes=p),
                    confidence=rng.random(),
                )
            )
            cell = sent[(version, course)]
            cell["solves"] += 1
            cell["learners"].add(learner)
            if rng.random() < judged:
                correct = rng.random() < accuracy[version] + ability
                items.append(feedback(solve_id, "correct" if correct else "incorrect"))
                cell["verdicts"] += 1
                cell["correct"] += int(correct)
    assert store.write(items) == []
    return sent


def test_report_figures_equal_the_verdicts_sent_with_wilson_intervals(store):
    sent = simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.92})
    simulated_course(store, accuracy={"1.0.0": 0.5}, course="other-course", learners=10, seed=2)
    report = module_report(store, "maze-9x9", course=COURSE, sections=())
    assert [(g.version, g.course) for g in report.groups] == [("1.0.0", COURSE), ("1.2.0", COURSE)]
    for group in report.groups:
        cell = sent[(group.version, COURSE)]
        assert (group.solves, group.learners, group.verdicts, group.correct) == (
            cell["solves"],
            len(cell["learners"]),
            cell["verdicts"],
            cell["correct"],
        )
        assert group.accuracy == cell["correct"] / cell["verdicts"]
        low, high = proportion_confint(cell["correct"], cell["verdicts"], method="wilson")
        assert (group.accuracy_low, group.accuracy_high) == pytest.approx((low, high))


def test_report_groups_by_version_course_cohort_day_and_week(store):
    simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.9}, learners=8, puzzles=2)
    assert {(g.version, g.course) for g in module_report(store, "maze-9x9", by="version", sections=()).groups} == {
        ("1.0.0", None),
        ("1.2.0", None),
    }
    by_cohort = module_report(store, "maze-9x9", by=["version", "cohort"], sections=()).groups
    assert {g.cohort for g in by_cohort} == {"A", "B"} and sum(g.solves for g in by_cohort) == 16
    by_day = module_report(store, "maze-9x9", by="course,day", sections=()).groups
    assert [g.period for g in by_day] == ["2025-03-01"] and by_day[0].solves == 16  # 8 learners, hours 0..7
    by_week = module_report(store, "maze-9x9", by="week", sections=()).groups
    assert {g.period for g in by_week} == {"2025-02-24"}  # 2025-03-01 is a Saturday; its week starts Monday 24 Feb
    window = module_report(
        store, "maze-9x9", since=T0 + timedelta(hours=4), until=T0 + timedelta(hours=6), sections=()
    ).groups
    assert sum(g.solves for g in window) == 4
    with pytest.raises(StoreError, match="cannot group by 'month'"):
        module_report(store, "maze-9x9", by="month")
    with pytest.raises(ModuleNotFound, match="maze-9x9"):
        module_report(store, "nothing-here")


def test_verdict_follows_voids_and_feedback_that_arrives_before_its_solve(store):
    early = feedback("late-solve", "incorrect", minutes=1)
    assert store.write([early]) == []
    assert store.write([solve(1, id="late-solve"), solve(2, id="judged")]) == []
    right = feedback("judged", "correct", 1)
    wrong = feedback("judged", "incorrect", 2)
    store.write([right, wrong])
    group = lambda: module_report(store, "parity", sections=()).groups[0]  # noqa: E731
    assert (group().verdicts, group().correct) == (2, 0)
    store.write([feedback("judged", "void", 3, voids=wrong.id)])
    assert (group().verdicts, group().correct) == (2, 1)  # the earlier 'correct' decides again
    void_of_void = feedback("judged", "void", 4, voids="fb-judged-void-3")
    store.write([void_of_void])
    assert (group().verdicts, group().correct) == (2, 1)  # a void of a void has no effect


def test_sections_give_ratings_calibration_failures_and_performance(store):
    items = [solve(n, input={"bits": [n % 2]}, confidence=0.95 if n % 2 else 0.55, valid=n != 2) for n in range(8)]
    items += [feedback(f"solve-parity-1.0.0-{n}", "correct" if n % 2 else "incorrect") for n in range(8)]
    items += [feedback(f"solve-parity-1.0.0-{n}", "rating", value=v) for n, v in [(0, 1.0), (1, 1.0), (2, -0.5)]]
    store.write(items)
    report = module_report(store, "parity", by="version")
    (group,) = report.groups
    assert (group.ratings, group.rating_mean) == (3, pytest.approx(0.5))
    assert [(r.value, r.count) for r in report.ratings] == [(-0.5, 1), (1.0, 2)]
    assert group.steps_p50 is not None and group.latency_p99_ms is not None and group.valid_rate == pytest.approx(7 / 8)
    (calibration,) = report.calibration
    # Two bins: confidence 0.55 all wrong, 0.95 all right: ECE = 0.5 * 0.55 + 0.5 * 0.05.
    assert calibration.ece == pytest.approx(0.5 * 0.55 + 0.5 * 0.05)
    assert [(b.bin_low, b.verdicts, b.accuracy) for b in report.reliability] == [(0.5, 4, 0.0), (0.9, 4, 1.0)]
    (failing,) = report.failures  # every even solve failed on the input {"bits": [0]}
    assert (failing.failures, failing.incorrect, failing.invalid, failing.solves) == (4, 4, 1, 4)
    assert failing.input_digest == input_digest({"bits": [0]}) and failing.input == {"bits": [0]}
    text = report_csv(report, "groups")
    assert text.splitlines()[0].startswith(
        "module,version,course,cohort,period,solves,learners,verdicts,correct,accuracy"
    )
    assert text.splitlines()[1].startswith("parity,1.0.0,,,,8,3,8,4,0.5")


def test_learner_outcomes_split_by_asking_the_module_and_by_the_version_that_answered(store):
    store.write([solve(1, id="a"), solve(2, id="b", version="1.1.0"), solve(3, id="c")])
    outcomes = [
        OutcomeRecord(id="o1", learner="l1", course="algebra-1", score=8, max_score=10, success=True, solve_ids=["a"]),
        OutcomeRecord(id="o2", learner="l2", course="algebra-1", score=6, max_score=10, success=False, solve_ids=["b"]),
        OutcomeRecord(id="o3", learner="l3", course="algebra-1", score=0.5, success=False),
        OutcomeRecord(id="o4", learner="l4", course="algebra-1", score=0.7),
        OutcomeRecord(id="o5", learner="l5", course="algebra-1", score=1, max_score=1, solve_ids=["a", "b"]),
    ]
    store.write(outcomes)
    store.write([OutcomeRecord(id="o1", learner="l1", course="algebra-1", score=0, max_score=10, solve_ids=["c"])])
    groups = {(g.asked, g.version): g for g in module_report(store, "parity", sections=("outcomes",)).outcomes}
    assert set(groups) == {(False, None), (True, "1.0.0"), (True, "1.1.0"), (True, "mixed")}
    assert groups[(True, "1.0.0")].score_mean == pytest.approx(0.8)  # the resend of o1 changed nothing
    assert groups[(False, None)].outcomes == 2 and groups[(False, None)].score_mean == pytest.approx(0.6)
    assert (groups[(False, None)].successes, groups[(False, None)].with_success) == (0, 1)


def test_compare_names_the_better_version_and_its_figures_equal_the_verdicts_sent(store):
    sent = simulated_course(store, accuracy={"1.0.0": 0.6, "1.2.0": 0.9}, learners=80, puzzles=8)
    result = compare_versions(store, "maze-9x9", "1.0.0", "1.2.0", course=COURSE, candidate_share=0.5)
    assert result.decision == "candidate-better" and result.p_value <= 0.05
    for arm in (result.baseline, result.candidate):
        cell = sent[(arm.version, COURSE)]
        assert (arm.solves, arm.learners, arm.verdicts, arm.correct) == (
            cell["solves"],
            len(cell["learners"]),
            cell["verdicts"],
            cell["correct"],
        )
    assert result.difference == pytest.approx(result.candidate.accuracy - result.baseline.accuracy)
    assert result.sequential_low < result.difference_low < result.difference < result.difference_high
    assert not result.sample_ratio.mismatch and result.sample_ratio.observed_candidate_share == 0.5
    worse = compare_versions(store, "maze-9x9", "1.2.0", "1.0.0", course=COURSE)
    assert worse.decision == "candidate-worse"


def test_compare_of_a_small_trial_is_inconclusive_and_says_how_many_verdicts_it_needs(store):
    simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.84}, learners=12, puzzles=3)
    result = compare_versions(store, "maze-9x9", "1.0.0", "1.2.0", course=COURSE, candidate_share=0.5)
    assert result.decision == "inconclusive" and result.verdicts_needed and result.verdicts_needed > 0


def test_compare_flags_a_sample_ratio_mismatch(store):
    simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.84}, learners=200, puzzles=1)
    result = compare_versions(store, "maze-9x9", "1.0.0", "1.2.0", course=COURSE, candidate_share=0.1)
    assert result.sample_ratio.mismatch and result.sample_ratio.p_value < 0.001


def test_migration_backfills_course_and_verdict_of_solves_already_stored(store_url):
    from sqlalchemy import text

    from trm_modules.store import Store

    old = Store(store_url, migrate=False)
    old.upgrade("0010_privacy_audit")
    with old.engine.begin() as connection:
        connection.execute(text("INSERT INTO contexts (id, platform, course, activity) VALUES (1, 'lms', 'c9', 'a')"))
        for n, kind in enumerate(["correct", "incorrect"]):
            connection.execute(
                text(
                    "INSERT INTO solves (id, module, version, digest, context_id, learner, input, output, steps, "
                    "confidence, valid, latency_ms, device, created_at) VALUES "
                    f"('s{n}', 'm', '1', 'd', 1, 'l', '{{}}', NULL, 1, 0.5, NULL, 1.0, 'cpu', '2025-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO feedback (id, solve_id, kind, source, created_at) VALUES "
                    f"('f{n}', 's{n}', '{kind}', 'api', '2025-01-01 00:00:01')"
                )
            )
    old.close()
    upgraded = Store(store_url)
    with upgraded.session() as session:
        rows = sorted((s.id, s.course, s.verdict) for s in session.query(Solve))
    upgraded.close()
    assert rows == [("s0", "c9", 1), ("s1", "c9", 0)]
