"""Comparisons a sweep's table can trust: the runs of a sweep grouped into configurations (their swept values without
the replicate keys `repeat`, `data.fold` and `seed`: hyperlab.replicates), each metric's mean,
standard deviation and 95% confidence interval over a configuration's finished runs, and each configuration tested
against the best one: a paired t-test when the sweep validates on folds (a fold is the same data for every
configuration, so the pairs share its difficulty), else Welch's t-test (no equal variances assumed).

numpy and scipy only: one pass over the runs groups them, and each configuration is tested once, so the statistics of
1,000 runs take tens of milliseconds (`scripts/benchmark.py --statistics`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import special

from hyperlab.replicates import FOLD_KEY
from hyperlab.sweeps.runs import FINISHED, Run, Sweep, higher_is_better

LEVEL = 0.05  # a configuration whose p-value against the best is at least this cannot be told apart from it
BEST_VERDICT, INDISTINGUISHABLE, WORSE = "best", "indistinguishable", "worse"  # the verdicts of a tested configuration
TOO_FEW = "too few runs"  # the verdict when either side has fewer than 2 finished runs: no test
NOT_FINISHED = "no finished run"


@dataclass
class Spread:
    """A metric over a configuration's finished runs: `std` (ddof=1) and the 95% interval of the mean (`low`,
    `high`, Student's t) are NaN for a single run, all NaN for none."""

    n: int
    mean: float
    std: float
    low: float
    high: float


@lru_cache(maxsize=256)
def t_quantile(degrees: int) -> float:
    """Student's t at 0.975 (a two-sided 95% interval)."""
    return float(special.stdtrit(degrees, 0.975))


def spread(values: Sequence[float]) -> Spread:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return Spread(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(array.mean())
    if array.size == 1:
        return Spread(1, mean, math.nan, math.nan, math.nan)
    std = float(array.std(ddof=1))
    half = t_quantile(array.size - 1) * std / math.sqrt(array.size)
    return Spread(int(array.size), mean, std, mean - half, mean + half)


def constant(values: np.ndarray) -> bool:
    """No spread beyond rounding (the t statistic would be zero over zero, or rounding error over rounding error)."""
    return float(np.ptp(values)) <= 1e-12 * max(1.0, float(np.abs(values).max()))


def p_value(best: Sequence[float], other: Sequence[float], paired: bool) -> float:
    """The two-sided p-value of `other` against `best`: paired (the lists aligned, pair by pair) or Welch's. The
    value of scipy's ttest_rel and ttest_ind(equal_var=False), from their formulas and Student's t distribution
    (scipy.special): a thousand scipy.stats calls would take a second. NaN when either side has fewer than 2
    values; without any spread, 1.0 for equal means and 0.0 for different ones (the t statistic would be 0/0 or
    infinite)."""
    first, second = np.asarray(best, dtype=float), np.asarray(other, dtype=float)
    if first.size < 2 or second.size < 2:
        return math.nan
    if paired:
        differences = first - second
        if constant(differences):
            return 1.0 if abs(float(differences.mean())) <= 1e-12 * max(1.0, float(np.abs(first).max())) else 0.0
        error = float(differences.std(ddof=1)) / math.sqrt(differences.size)
        return two_sided(float(differences.mean()) / error, differences.size - 1)
    if constant(first) and constant(second):
        return 1.0 if math.isclose(float(first.mean()), float(second.mean()), rel_tol=1e-12, abs_tol=1e-12) else 0.0
    shares = float(first.var(ddof=1)) / first.size, float(second.var(ddof=1)) / second.size
    degrees = sum(shares) ** 2 / (shares[0] ** 2 / (first.size - 1) + shares[1] ** 2 / (second.size - 1))
    return two_sided((float(first.mean()) - float(second.mean())) / math.sqrt(sum(shares)), degrees)


def two_sided(t: float, degrees: float) -> float:
    """P(|T| >= |t|) for Student's T with `degrees` degrees of freedom (not necessarily whole: Welch's)."""
    return float(min(1.0, 2.0 * special.stdtr(degrees, -abs(t))))


def test_name(paired: bool) -> str:
    return "paired t-test" if paired else "Welch's t-test"


def uses_folds(sweep: Sweep) -> bool:
    """Whether the sweep validates each configuration on folds (`data.fold` swept): the test pairs runs by fold."""
    return FOLD_KEY in sweep.replicated


@dataclass
class Configuration:
    """One configuration: its swept `values` (without the replicate keys), all its `runs` (any status), its
    finished runs' values of the compared metric by replicate (`scores`: the replicate keys' values -> value),
    the `spreads` of every metric asked for, its rank (1: the best) and its test against the best."""

    values: dict[str, str]
    runs: list[Run] = field(default_factory=list)
    scores: dict[tuple[str, ...], float] = field(default_factory=dict)
    spreads: dict[str, Spread] = field(default_factory=dict)
    rank: int = 0
    p_value: float = math.nan
    verdict: str = ""


def finished_value(run: Run, metric: str) -> float:
    """The run's value of `metric` when it counts in the statistics (a finished run, a finite value), else NaN."""
    value = run.metric(metric) if run.status in FINISHED else math.nan
    return value if math.isfinite(value) else math.nan


def group(sweep: Sweep) -> list[Configuration]:
    """The sweep's runs by configuration, in the order their first run appears (runs without values, a search's
    trials that never began, belong to none)."""
    keys = sweep.compared
    found: dict[tuple[str, ...], Configuration] = {}
    for run in sweep.runs:
        if not run.values:
            continue
        key = tuple(run.values.get(name, "") for name in keys)
        configuration = found.get(key)
        if configuration is None:
            configuration = found[key] = Configuration(dict(zip(keys, key, strict=True)))
        configuration.runs.append(run)
    return list(found.values())


def configurations(sweep: Sweep, metric: str, others: Sequence[str] = ()) -> list[Configuration]:
    """The sweep's configurations ranked by their mean of `metric`, best first (those without a finished run last,
    in folder order), with the spreads of `metric` and the `others`, each tested against the best (`verdict`)."""
    found = group(sweep)
    replicate_keys = sweep.replicated
    for configuration in found:
        scores = {}
        for run in configuration.runs:
            value = finished_value(run, metric)
            if not math.isnan(value):
                scores[tuple(run.values.get(name, "") for name in replicate_keys)] = value
        configuration.scores = scores
        configuration.spreads[metric] = spread(list(scores.values()))
        for other in others:
            values = [finished_value(run, other) for run in configuration.runs]
            configuration.spreads.setdefault(other, spread([value for value in values if not math.isnan(value)]))
    sign = -1.0 if higher_is_better(sweep, metric) else 1.0
    found.sort(key=lambda c: (c.spreads[metric].n == 0, sign * c.spreads[metric].mean if c.scores else 0.0))
    for rank, configuration in enumerate(found, start=1):
        configuration.rank = rank
    if found:
        judge(found, uses_folds(sweep))
    return found


def judge(ranked: list[Configuration], paired: bool) -> None:
    """Each configuration's p-value against the best (`ranked[0]`) and its verdict."""
    best = ranked[0]
    if best.scores:
        best.verdict = BEST_VERDICT
    for configuration in ranked[1 if best.scores else 0 :]:
        if not configuration.scores:
            configuration.verdict = NOT_FINISHED
            continue
        if paired:
            common = [name for name in best.scores if name in configuration.scores]
            pair = ([best.scores[name] for name in common], [configuration.scores[name] for name in common])
        else:
            pair = (list(best.scores.values()), list(configuration.scores.values()))
        configuration.p_value = p_value(*pair, paired=paired)
        if math.isnan(configuration.p_value):
            configuration.verdict = TOO_FEW
        else:
            configuration.verdict = INDISTINGUISHABLE if configuration.p_value >= LEVEL else WORSE


def replicated(sweep: Sweep, found: list[Configuration]) -> bool:
    """Whether the sweep has replicates: a replicate key swept, or a configuration run more than once (else it cannot
    tell a difference from noise)."""
    return bool(sweep.replicated) or any(len(configuration.runs) > 1 for configuration in found)


def worse_in_every_run(sweep: Sweep, found: list[Configuration], metric: str) -> list[tuple[str, str]]:
    """The swept values (key, value) whose every finished run is worse than every finished run of the best
    configuration (not the best's own values; a value without a finished run is not judged), in the sweep's order
    of keys, each key's values in order (values_of)."""
    if not found or not found[0].scores:
        return []
    best = found[0]
    higher = higher_is_better(sweep, metric)
    threshold = min(best.scores.values()) if higher else max(best.scores.values())
    reach: dict[tuple[str, str], float] = {}  # each value's best run
    for configuration in found[1:]:
        for key, value in configuration.values.items():
            if value == best.values[key]:
                continue
            for score in configuration.scores.values():
                known = reach.get((key, value))
                reach[(key, value)] = score if known is None else (max if higher else min)(known, score)
    worse = {place for place, score in reach.items() if (score < threshold if higher else score > threshold)}
    return [(key, value) for key in sweep.compared for value in values_of(found, key) if (key, value) in worse]


def values_of(found: list[Configuration], key: str) -> list[str]:
    """A key's values among the configurations, numbers in numeric order (text in alphabetical order)."""
    values = {configuration.values[key] for configuration in found}
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
