"""Is the trial decision right? A/A false positive rate, power and verdicts to a decision, watched continuously.

    python bench/bench_trials.py [--trials 500] [--batch 50] [--max-verdicts 2500] [--seed 0]

Simulates ``--trials`` A/A trials (both versions equally accurate) and as many trials where the
candidate is truly 10 points better, the way a course runs them: learners arrive one after another
and are assigned whole to one version (50 %, learner-consistent, as the store's routing does);
each answers several puzzles (1 + Poisson(4), mean 5), spread over time so that learners' verdicts
interleave; each learner has their own accuracy (Beta with the arm's mean and concentration
``--concentration``, intra-learner correlation 1 / (1 + concentration)), so a learner's verdicts
are correlated and counting them as independent would overstate the evidence.

The trial is watched continuously: after every ``--batch`` verdicts, the per-learner counts so
far go through ``trm_modules.store.trial_statistics.sequential_test`` — the function that
``store.comparison.compare_versions`` (``GET /v1/modules/{name}/compare``) calls on the counts it
reads from the database — and the trial stops at its first decision (``candidate-better`` or
``candidate-worse``), or ends inconclusive at ``--max-verdicts``.

Prints the false positive rate (A/A trials that decided anything; goal ≤ alpha = 0.05) with its
Wilson interval (statsmodels), its ratio to alpha, the power (lift trials that decided
``candidate-better``), wrong-way decisions, and the median verdicts to a decision. One looks every
``--batch`` verdicts (default 50) rather than after each verdict to keep a run on one core within
minutes; the mSPRT's guarantee holds for any number of looks, so looking more often can only raise
the observed rate within the bound, never past it.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as stated
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from trm_modules.store.insights import wilson_interval  # noqa: E402
from trm_modules.store.trial_statistics import ArmCounts, sequential_test  # noqa: E402


@dataclass(frozen=True)
class TrialOutcome:
    decision: str
    verdicts: int  #: verdicts seen when it decided (or the horizon when inconclusive)


def simulate_stream(
    rng: np.random.Generator, *, baseline: float, candidate: float, concentration: float, max_verdicts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One course's verdicts in time order: (learner index, arm 0/1 per learner, correct 0/1 per verdict)."""
    learners = int(max_verdicts / 5 * 1.3) + 20  # enough learners to reach the horizon
    arm = rng.integers(0, 2, learners)
    mean = np.where(arm == 1, candidate, baseline)
    ability = rng.beta(mean * concentration, (1 - mean) * concentration)
    puzzles = 1 + rng.poisson(4, learners)
    learner = np.repeat(np.arange(learners), puzzles)
    arrival = np.sort(rng.uniform(0, learners, learners))  # about one learner per time unit
    # Each learner's puzzles come at exponential gaps (mean 3 time units) after their arrival.
    gaps = rng.exponential(3.0, learner.size)
    starts = np.cumsum(puzzles) - puzzles
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts] - gaps[starts], puzzles)
    when = arrival[learner] + within
    order = np.argsort(when, kind="stable")[:max_verdicts]
    correct = (rng.random(learner.size) < ability[learner]).astype(np.int64)
    return learner[order], arm, correct[order]


def run_trial(
    rng: np.random.Generator,
    *,
    baseline: float,
    candidate: float,
    concentration: float,
    max_verdicts: int,
    batch: int,
    alpha: float,
) -> TrialOutcome:
    learner, arm, correct = simulate_stream(
        rng, baseline=baseline, candidate=candidate, concentration=concentration, max_verdicts=max_verdicts
    )
    learners = arm.size
    for seen in range(batch, learner.size + 1, batch):
        verdicts = np.bincount(learner[:seen], minlength=learners)
        right = np.bincount(learner[:seen], weights=correct[:seen], minlength=learners).astype(np.int64)
        result = sequential_test(
            ArmCounts.of(verdicts[arm == 0], right[arm == 0]),
            ArmCounts.of(verdicts[arm == 1], right[arm == 1]),
            alpha=alpha,
        )
        if result.decision != "inconclusive":
            return TrialOutcome(result.decision, seen)
    return TrialOutcome("inconclusive", int(learner.size))


def run_set(label: str, trials: int, rng: np.random.Generator, **kwargs: float) -> list[TrialOutcome]:
    started = time.perf_counter()
    outcomes = []
    for i in range(trials):
        outcomes.append(run_trial(rng, **kwargs))  # type: ignore[arg-type]
        if (i + 1) % 100 == 0:
            print(f"  {label}: {i + 1}/{trials} trials, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return outcomes


def rate(count: int, total: int) -> str:
    low, high = wilson_interval(count, total)
    return f"{count / total:.3f} ({count}/{total}; 95 % Wilson [{low:.3f}, {high:.3f}])"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=500, help="trials of each kind (A/A and lift)")
    parser.add_argument("--baseline", type=float, default=0.80, help="baseline accuracy")
    parser.add_argument("--lift", type=float, default=0.10, help="the candidate's true lift in the lift trials")
    parser.add_argument(
        "--concentration",
        type=float,
        default=4.0,
        help="Beta concentration of learners' accuracies (intra-learner correlation 1/(1+c))",
    )
    parser.add_argument("--batch", type=int, default=50, help="verdicts between two looks")
    parser.add_argument("--max-verdicts", type=int, default=2500, help="the trial's horizon")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.baseline < 1 or not 0 < args.baseline + args.lift < 1:
        parser.error("--baseline and --baseline + --lift must lie within (0, 1)")

    common = dict(concentration=args.concentration, max_verdicts=args.max_verdicts, batch=args.batch, alpha=args.alpha)
    print(
        f"{args.trials} A/A + {args.trials} lift trials; baseline {args.baseline:.2f}, lift {args.lift:+.2f}; "
        f"learners answer 1+Poisson(4) puzzles, accuracy ~ Beta(concentration {args.concentration:g}, "
        f"intra-learner correlation {1 / (1 + args.concentration):.2f}); a look every {args.batch} verdicts up "
        f"to {args.max_verdicts} ({args.max_verdicts // args.batch} looks); alpha {args.alpha}"
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(args.seed)
    null = run_set("A/A", args.trials, rng, baseline=args.baseline, candidate=args.baseline, **common)
    lift = run_set("lift", args.trials, rng, baseline=args.baseline, candidate=args.baseline + args.lift, **common)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started

    false_positives = sum(o.decision != "inconclusive" for o in null)
    better = [o for o in lift if o.decision == "candidate-better"]
    wrong = sum(o.decision == "candidate-worse" for o in lift)
    fpr = false_positives / len(null)
    print(
        f"false positive rate: {rate(false_positives, len(null))}  goal <= {args.alpha}  "
        f"ratio to alpha {fpr / args.alpha:.2f}  -> {'MET' if fpr <= args.alpha else 'NOT MET'}"
    )
    print(f"power (candidate-better within {args.max_verdicts} verdicts): {rate(len(better), len(lift))}")
    print(f"wrong-way decisions in lift trials (candidate-worse): {wrong}")
    if better:
        verdicts = np.array([o.verdicts for o in better])
        print(
            f"median verdicts to a decision (lift trials that decided): {np.median(verdicts):.0f} "
            f"(quartiles {np.percentile(verdicts, 25):.0f}-{np.percentile(verdicts, 75):.0f})"
        )
    if false_positives:
        print(
            f"median verdicts to a false positive: {np.median([o.verdicts for o in null if o.decision != 'inconclusive']):.0f}"
        )
    print(f"elapsed {elapsed:.0f} s wall, {cpu:.0f} s CPU ({len(null) + len(lift)} trials, one thread)")


if __name__ == "__main__":
    main()
