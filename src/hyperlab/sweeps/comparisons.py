"""What summary.md and configurations.csv say about a sweep's configurations (hyperlab.sweeps.statistics computes
it): a table of each configuration's mean, spread, 95% interval and test against the best, and the answer in words -
which configuration is best, which cannot be told apart from it, which values lost in every run. A sweep whose
configurations each ran once gets one sentence instead: it cannot tell a difference from noise."""

import csv
import math
from pathlib import Path

from hyperlab.run_folder import short_names
from hyperlab.spreadsheet import spreadsheet_text
from hyperlab.sweeps.curves import is_number
from hyperlab.sweeps.runs import Sweep, metric_label
from hyperlab.sweeps.statistics import (
    INDISTINGUISHABLE,
    LEVEL,
    NOT_FINISHED,
    TOO_FEW,
    WORSE,
    Configuration,
    Spread,
    test_name,
    uses_folds,
    values_of,
    worse_in_every_run,
)

MOST_LISTED = 8  # configurations named one by one in the answer, then "and N more"
RANGE = "\u2013"  # en dash: `hidden 256–512`
WORDS = {"repeat": "repeats", "data.fold": "folds", "seed": "seeds"}  # a replicate key: what its runs are called


def replicate_word(sweep: Sweep) -> str:
    """What a configuration's runs are: `repeats`, `folds`, `seeds`, or `runs` when several keys replicate."""
    return WORDS[sweep.replicated[0]] if len(sweep.replicated) == 1 else "runs"


def label(configuration: Configuration, names: dict[str, str]) -> str:
    """`lr=0.001, hidden=512, depth=1`."""
    return ", ".join(f"{names[key]}={value}" for key, value in configuration.values.items()) or "every run"


def number(value: float, digits: int = 4) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def p_text(value: float) -> str:
    if math.isnan(value):
        return ""
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def mean_and_std(spread: Spread) -> str:
    """`0.9773 ± 0.0012` (the mean alone for one run, nothing for none)."""
    if not spread.n:
        return ""
    return number(spread.mean) + (f" ± {number(spread.std)}" if spread.n > 1 else "")


def runs_text(configuration: Configuration, metric: str) -> str:
    """The runs counted: `3`, or `2 of 3` when some did not finish."""
    counted, listed = configuration.spreads[metric].n, len(configuration.runs)
    return str(counted) if counted == listed else f"{counted} of {listed}"


def table_lines(sweep: Sweep, found: list[Configuration], metric: str, tests: list[str]) -> list[str]:
    """The Configurations table: swept values, runs, the sort metric's mean, std, 95% CI, p-value, verdict, and
    each test metric's mean ± std."""
    names = short_names(sweep.compared)
    test = test_name(uses_folds(sweep))
    shown = [name for name in tests if name != metric]
    header = [*(names[key] for key in sweep.compared), "runs", f"{metric_label(sweep, metric)} mean", "std",
              "95% CI", f"p vs best ({test})", "verdict", *(f"{name} mean ± std" for name in shown)]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for configuration in found:
        score = configuration.spreads[metric]
        interval = f"[{number(score.low)}, {number(score.high)}]" if score.n > 1 else ""
        cells = [*configuration.values.values(), runs_text(configuration, metric), number(score.mean),
                 number(score.std), interval, p_text(configuration.p_value), configuration.verdict,
                 *(mean_and_std(configuration.spreads[name]) for name in shown)]  # fmt: skip
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return lines


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def answer(sweep: Sweep, found: list[Configuration], metric: str) -> str:
    """The answer in words: the best configuration with its mean ± std, those that cannot be told apart from it,
    the values that lost in every run."""
    names = short_names(sweep.compared)
    best = found[0]
    if not best.scores:
        return "No configuration has a finished run to compare."
    score = best.spreads[metric]
    measured = f"{metric_label(sweep, metric)} {number(score.mean)}"
    measured += f" ± {number(score.std)} over {score.n} {replicate_word(sweep)}" if score.n > 1 else ", one run"
    if len(found) == 1:  # (only replicates swept: nothing to compare, the spread is the answer)
        interval = f", 95% CI [{number(score.low)}, {number(score.high)}]" if score.n > 1 else ""
        return f"One configuration: {label(best, names)} ({measured}{interval})."
    said = [f"Best: {label(best, names)} ({measured})."]
    test = f"at the {LEVEL:.0%} level ({test_name(uses_folds(sweep))})"
    alike = [c for c in found if c.verdict == INDISTINGUISHABLE]
    worse = [c for c in found if c.verdict == WORSE]
    untested = [c for c in found if c.verdict == TOO_FEW]
    if alike:
        said.append(f"Cannot be told apart from it {test}: {describe(sweep, best, alike, found, names)}.")
        if worse and len(alike) > MOST_LISTED:  # (most are alike: which ones are not is the news)
            said.append(f"Worse {test}: {named(sweep, worse, found, names)}.")
    elif worse:
        said.append(f"Every other configuration{' tested' if untested else ''} is worse {test}.")
    if untested:
        said.append(f"Too few finished runs to test (fewer than 2): {plural(len(untested), 'configuration')}.")
    unfinished = sum(1 for c in found if c.verdict == NOT_FINISHED)
    if unfinished:
        said.append(f"No finished run: {plural(unfinished, 'configuration')}.")
    losers = worse_in_every_run(sweep, found, metric)
    if losers:
        said.append("Worse in every run: " + ", ".join(f"{names[key]}={value}" for key, value in losers) + ".")
    return " ".join(said)


def describe(sweep: Sweep, best: Configuration, alike: list[Configuration], found: list[Configuration],
             names: dict[str, str]) -> str:  # fmt: skip
    """The configurations `alike` the best: as a region with it (`lr=0.001 at hidden 256–512 and depth 1–3`) when
    they make exactly the grid of their values per key, each key's values a run of neighbours in the sweep; else
    named one by one (MOST_LISTED, then how many more)."""
    region = compact(sweep, [best, *alike], found, names)
    if region:
        return f"{region} ({plural(len(alike), 'configuration')} besides the best)"
    return named(sweep, alike, found, names)


def named(sweep: Sweep, chosen: list[Configuration], found: list[Configuration], names: dict[str, str]) -> str:
    """`chosen` as a region (`compact`) or one by one (MOST_LISTED, then how many more), with their number."""
    region = compact(sweep, chosen, found, names)
    if region:
        return f"{region} ({plural(len(chosen), 'configuration')})"
    listed = "; ".join(label(configuration, names) for configuration in chosen[:MOST_LISTED])
    more = f" and {len(chosen) - MOST_LISTED} more" if len(chosen) > MOST_LISTED else ""
    return f"{listed}{more} ({plural(len(chosen), 'configuration')})"


def compact(sweep: Sweep, region: list[Configuration], found: list[Configuration], names: dict[str, str]) -> str:
    """`lr=0.001 at hidden 256–512 and depth 1–3`, or "" when `region` is not such a grid."""
    chosen = {key: {configuration.values[key] for configuration in region} for key in sweep.compared}
    if math.prod(len(values) for values in chosen.values()) != len(region):
        return ""
    single, ranges = [], []
    for key, values in chosen.items():
        if len(values) == 1:
            single.append(f"{names[key]}={next(iter(values))}")
            continue
        order = values_of(found, key)
        places = sorted(order.index(value) for value in values)
        if not all(is_number(value) for value in order) or places[-1] - places[0] + 1 != len(places):
            return ""
        ranges.append(f"{names[key]} {order[places[0]]}{RANGE}{order[places[-1]]}")
    ranged = ranges[0] if len(ranges) == 1 else ", ".join(ranges[:-1]) + f" and {ranges[-1]}"
    return f"{', '.join(single)} at {ranged}" if single else ranged


def ran_once() -> str:
    return (
        "Each configuration ran once, so this sweep cannot tell which differences are noise: run it again with "
        "`repeats=3` (or `data.folds=5`: cross-validation, for tables, image folders and digits)."
    )


def markdown_section(sweep: Sweep, found: list[Configuration], metric: str, tests: list[str]) -> list[str]:
    """summary.md's lines between its header and its runs: the configurations and the answer, or the sentence that
    the sweep cannot tell."""
    if not any(len(configuration.runs) > 1 for configuration in found):
        return ["", ran_once()]
    lines = ["", "## Configurations", "", *table_lines(sweep, found, metric, tests)]
    return [*lines, "", "## The answer", "", answer(sweep, found, metric)]


def write_configurations_csv(path: Path, sweep: Sweep, found: list[Configuration], metric: str,
                             tests: list[str]) -> None:  # fmt: skip
    """configurations.csv: one row per configuration, best first (`configuration`: its rank, summary.csv's
    column of the same name), its swept values, runs counted and listed, each metric's mean, std and 95% interval,
    and its test against the best."""
    names = short_names(sweep.compared)
    metrics = [metric, *(name for name in tests if name != metric)]
    header = ["configuration", *(names[key] for key in sweep.compared), "runs", "runs listed"]
    for name in metrics:
        shown = metric_label(sweep, name)
        header += [f"{shown} mean", f"{shown} std", f"{shown} ci95_low", f"{shown} ci95_high"]
    header += ["p_value", "test", "verdict"]
    test = test_name(uses_folds(sweep))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([spreadsheet_text(cell) for cell in header])
        for configuration in found:
            row = [configuration.rank, *configuration.values.values(), configuration.spreads[metric].n]
            row.append(len(configuration.runs))
            for name in metrics:
                spread = configuration.spreads[name]
                row += [exact(spread.mean), exact(spread.std), exact(spread.low), exact(spread.high)]
            tested = not math.isnan(configuration.p_value)
            row += [exact(configuration.p_value), test if tested else "", configuration.verdict]
            writer.writerow([spreadsheet_text(cell) for cell in row])


def exact(value: float) -> str:
    return "" if math.isnan(value) else format(value, ".10g")


def conclusion(sweep: Sweep, found: list[Configuration], metric: str) -> str:
    """One line for the sweep's end: the best configuration's mean ± std and how many are indistinguishable from it
    ("" when no configuration ran more than once, or none finished)."""
    if not found or not found[0].scores or not any(len(configuration.runs) > 1 for configuration in found):
        return ""
    best, names = found[0], short_names(sweep.compared)
    alike = sum(1 for configuration in found if configuration.verdict == INDISTINGUISHABLE)
    score = best.spreads[metric]
    over = f" ± {number(score.std)} over {score.n} {replicate_word(sweep)}" if score.n > 1 else " (one run)"
    said = f"{label(best, names)} ({metric_label(sweep, metric)} {number(score.mean)}{over})"
    if len(found) == 1:
        return f"one configuration: {said}"
    return f"best configuration: {said}; {plural(alike, 'configuration')} indistinguishable from it"
