"""The search space of hyperlab's Optuna sweeper (hyperlab.sweeps.optuna): Hydra's sweep syntax, in
`hydra.sweeper.params` or on the command line, as Optuna's distributions (`choice(a, b)` and `a,b`: categorical;
`range(1, 4)`: 1, 2, 3; `interval(0.0, 0.5)`, `tag(log, ...)`, `tag(int, ...)`), and the replicates (`repeats`,
`data.folds`) that every trial runs once each. Optuna is imported where a distribution is made: Hydra imports the
sweeper whenever it starts."""

import itertools
import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from omegaconf import DictConfig

from hyperlab.errors import ConfigError, first_line
from hyperlab.replicates import REPLICATE_KEYS


def distribution(override: Override) -> Any:
    """The Optuna distribution of a swept key (None for a key given one value)."""
    import optuna.distributions as d

    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return d.CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):  # Python's range: the stop is left out
        start, stop, step = value.start, value.stop, value.step
        last = start + step * math.floor((stop - start) / step - 1e-9)
        if step < 0:  # (range(5, 1, -1): the same values as range(2, 6))
            start, last, step = last, start, -step
        if all(isinstance(x, int) for x in (start, stop, step)):
            return d.IntDistribution(int(start), int(last), step=int(step))
        return d.FloatDistribution(float(start), float(last), step=float(step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if "int" in value.tags:  # (Hydra reads an interval's bounds as floats)
            return d.IntDistribution(int(value.start), int(value.end), log=log_scale)
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ConfigError(f"hydra.sweeper.params: {override.input_line}: not a search space Optuna takes")


def search_space(params: DictConfig | None, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The distributions of the swept keys (the command line's replace the config's) and the other overrides."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        try:
            found = distribution(override)
        except ValueError as error:  # (Optuna's: an empty range, a log scale from 0, ...)
            raise ConfigError(f"hydra.sweeper.params.{key}: {override.input_line}: {first_line(error)}") from None
        space.pop(key, None)
        fixed.pop(key, None)
        if found is None:
            fixed[key] = override.input_line
        else:
            space[key] = found
    return space, list(fixed.values())


def split_replicates(arguments: list[str]) -> tuple[list[str], list[list[str]]]:
    """The command line without the replicates `repeats` and `data.folds` added (hyperlab.replicates), and each
    replicate's overrides (`[[]]`: none): every trial runs once per replicate, and its value is their mean."""
    kept, values = [], {}
    for argument, override in zip(arguments, OverridesParser.create().parse_overrides(arguments), strict=True):
        key = override.get_key_element()
        if key in REPLICATE_KEYS and override.is_sweep_override():
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            kept.append(argument)
    return kept, [list(job) for job in itertools.product(*values.values())]


def ends(found: Any) -> tuple[Any, Any]:
    """A distribution's first and last values (a choice's, a range's or an interval's)."""
    return (found.choices[0], found.choices[-1]) if hasattr(found, "choices") else (found.low, found.high)
