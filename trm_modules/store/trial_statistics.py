"""The statistics of a trial between two versions, on learner-level data (no database here).

A trial assigns whole learners to a version, and each learner answers many puzzles, so verdicts
are not independent: a learner who finds mazes easy is right on most of them. The difference in
accuracy is therefore estimated with standard errors clustered by learner (statsmodels OLS of the
verdict on the arm, ``cov_type="cluster"``), which is what the issue's hand computation missed.

The p-value stays valid however often it is looked at: it is the mixture sequential probability
ratio test (mSPRT; Johari, Pekelis & Walsh, "Always valid inference", 2017; Optimizely's Stats
Engine) on that estimate. With the estimate ``d`` and its variance ``V``, the mixture likelihood
ratio against "no difference" under a normal mixture of effects N(0, τ²) is the ratio of two
normal densities (``scipy.stats.norm``): ``Λ = φ(d; 0, V + τ²) / φ(d; 0, V)``; ``p = min(1, 1/Λ)``.
Deciding the first time ``p ≤ α`` keeps the false positive rate at most ``α`` under continuous
monitoring (Ville's inequality). The always-valid interval is the set of effects ``θ`` the same test
would not reject at ``d − θ``. ``bench/bench_trials.py`` measures the false positive rate, the
power and the verdicts a decision takes on simulated courses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Decision = Literal["candidate-better", "candidate-worse", "inconclusive"]
#: Standard deviation of the normal mixture of effects (accuracy points / 100) the test is tuned for.
DEFAULT_MIXTURE_SD = 0.1
#: No decision before each arm has this many learners (the clustered variance needs clusters).
MIN_LEARNERS_PER_ARM = 10
#: A sample ratio with a chi-square p-value below this is a mismatch (assignment or logging is broken).
SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmCounts:
    """Per learner of one arm: verdicts given and how many of them were ``correct``."""

    verdicts: np.ndarray
    correct: np.ndarray

    @classmethod
    def of(cls, verdicts: Sequence[int], correct: Sequence[int]) -> "ArmCounts":
        v = np.asarray(verdicts, dtype=np.int64)
        c = np.asarray(correct, dtype=np.int64)
        keep = v > 0
        return cls(v[keep], c[keep])

    @property
    def learners(self) -> int:
        return int(self.verdicts.size)

    @property
    def total(self) -> int:
        return int(self.verdicts.sum())

    @property
    def accuracy(self) -> float | None:
        return float(self.correct.sum() / self.total) if self.total else None


@dataclass(frozen=True)
class SequentialResult:
    """The difference candidate − baseline in accuracy and what may be concluded from it now."""

    difference: float | None
    standard_error: float | None
    low: float | None  #: fixed-horizon 95 % interval (clustered), for reading, not for stopping
    high: float | None
    sequential_low: float | None  #: always-valid (1 − α) interval
    sequential_high: float | None
    p_value: float  #: always-valid p-value (mSPRT)
    decision: Decision
    verdicts: int
    verdicts_needed: int | None  #: about how many more verdicts an inconclusive trial needs


def clustered_difference(baseline: ArmCounts, candidate: ArmCounts) -> tuple[float, float]:
    """(candidate − baseline accuracy, its standard error clustered by learner): statsmodels OLS.

    The regression of each verdict (0/1) on the arm gives the difference of the two accuracies as
    its slope; ``cov_type="cluster"`` with the learner as group makes its variance account for
    learners answering many puzzles.
    """
    import statsmodels.api as sm

    verdicts = np.concatenate([baseline.verdicts, candidate.verdicts])
    correct = np.concatenate([baseline.correct, candidate.correct])
    arm = np.repeat(np.r_[np.zeros(baseline.learners), np.ones(candidate.learners)], verdicts)
    learner = np.repeat(np.arange(verdicts.size), verdicts)
    # Within each learner: ``correct`` ones, then zeros (order does not matter to OLS).
    position = np.arange(learner.size) - np.repeat(np.cumsum(verdicts) - verdicts, verdicts)
    outcome = (position < np.repeat(correct, verdicts)).astype(np.float64)
    design = np.column_stack([np.ones_like(arm), arm])
    with np.errstate(invalid="ignore"):  # no spread at all gives a NaN standard error, handled by the caller
        fit = sm.OLS(outcome, design).fit(cov_type="cluster", cov_kwds={"groups": learner})
        return float(fit.params[1]), float(fit.bse[1])


def mixture_likelihood_ratio(difference: float, variance: float, mixture_sd: float) -> float:
    """Λ of the mSPRT: the N(0, τ²)-mixture likelihood of ``difference`` over its likelihood under no effect."""
    from scipy.stats import norm

    log_ratio = norm.logpdf(difference, 0.0, math.sqrt(variance + mixture_sd**2)) - norm.logpdf(
        difference, 0.0, math.sqrt(variance)
    )
    return math.exp(min(log_ratio, 700.0))


def always_valid_radius(variance: float, mixture_sd: float, alpha: float) -> float:
    """Half-width of the always-valid interval: the effects θ with Λ(d − θ) < 1/α."""
    tau2 = mixture_sd**2
    return math.sqrt(
        variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) + 2.0 * math.log(1.0 / alpha))
    )


def verdicts_needed(effect: float, variance: float, verdicts: int, mixture_sd: float, alpha: float) -> int | None:
    """About how many more verdicts until an ``effect`` of this size would be decided (variance ∝ 1/verdicts)."""
    from scipy.optimize import brentq

    if variance <= 0 or verdicts <= 0 or effect == 0:
        return None
    per_verdict = variance * verdicts
    target = math.log(1.0 / alpha)

    def gap(n: float) -> float:
        return math.log(max(mixture_likelihood_ratio(effect, per_verdict / n, mixture_sd), 1e-300)) - target

    if gap(verdicts) >= 0:
        return 0
    ceiling = verdicts * 1e6
    if gap(ceiling) < 0:
        return None
    return max(0, math.ceil(brentq(gap, verdicts, ceiling, xtol=1.0)) - verdicts)


def sequential_test(
    baseline: ArmCounts,
    candidate: ArmCounts,
    *,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    mixture_sd: float = DEFAULT_MIXTURE_SD,
    min_learners: int = MIN_LEARNERS_PER_ARM,
) -> SequentialResult:
    """The always-valid comparison of ``candidate`` with ``baseline`` (see the module docstring).

    ``min_effect``: the smallest difference worth acting on; it sizes ``verdicts_needed`` when the
    observed difference is smaller.
    """
    from scipy.stats import norm

    total = baseline.total + candidate.total
    if baseline.learners < 2 or candidate.learners < 2:
        return SequentialResult(None, None, None, None, None, None, 1.0, "inconclusive", total, None)
    difference, se = clustered_difference(baseline, candidate)
    if not (se > 0 and math.isfinite(se)):  # no spread at all (every verdict alike): nothing to conclude
        return SequentialResult(difference, se, None, None, None, None, 1.0, "inconclusive", total, None)
    variance = se * se
    z = float(norm.ppf(1 - 0.05 / 2))
    p_value = min(1.0, 1.0 / mixture_likelihood_ratio(difference, variance, mixture_sd))
    radius = always_valid_radius(variance, mixture_sd, alpha)
    enough = min(baseline.learners, candidate.learners) >= min_learners
    decision: Decision = "inconclusive"
    if enough and p_value <= alpha:
        decision = "candidate-better" if difference > 0 else "candidate-worse"
    needed = None
    if decision == "inconclusive":
        needed = verdicts_needed(max(abs(difference), min_effect), variance, total, mixture_sd, alpha)
        if not enough and needed is not None:
            short = min_learners - min(baseline.learners, candidate.learners)
            per_learner = total / max(1, baseline.learners + candidate.learners)
            needed = max(needed, math.ceil(short * 2 * per_learner))
    return SequentialResult(
        difference,
        se,
        difference - z * se,
        difference + z * se,
        difference - radius,
        difference + radius,
        p_value,
        decision,
        total,
        needed,
    )


def sample_ratio_p_value(baseline_learners: int, candidate_learners: int, candidate_share: float) -> float | None:
    """Chi-square p-value (scipy) of the learners' split against the share the candidate should get."""
    from scipy.stats import chisquare

    total = baseline_learners + candidate_learners
    if total == 0 or not 0 < candidate_share < 1:
        return None
    expected = [total * (1 - candidate_share), total * candidate_share]
    return float(chisquare([baseline_learners, candidate_learners], f_exp=expected).pvalue)


def mean_difference(
    baseline: Sequence[float], candidate: Sequence[float], alpha: float = 0.05
) -> tuple[float | None, float | None, float | None, float | None]:
    """(difference of means, 95 % low, high, p-value): Welch's t on one value per learner (statsmodels)."""
    if len(baseline) < 2 or len(candidate) < 2:
        return None, None, None, None
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    compared = CompareMeans(DescrStatsW(np.asarray(candidate, float)), DescrStatsW(np.asarray(baseline, float)))
    low, high = compared.tconfint_diff(alpha=alpha, usevar="unequal")
    _, p_value, _ = compared.ttest_ind(usevar="unequal")
    difference = float(np.mean(candidate) - np.mean(baseline))
    if math.isnan(low):
        return difference, None, None, None
    return difference, float(low), float(high), float(p_value)
