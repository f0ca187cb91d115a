"""Lightning's Trainer as the command line meets it, read without importing Lightning (nor torch): every argument
it takes, with Lightning's own default (`TRAINER_ARGUMENTS`: `trainer.<arg>=...` needs no `+`), its switches
(`TRAINER_FLAGS`), the precisions it accepts (`lightning_precisions`, imported only when called), and a command
line's `trainer.<arg>=...` refused when Lightning's Trainer has no such argument (`check_trainer_overrides`).
hyperlab.schemas makes the trainer group's schema of them.
"""

import ast
import difflib
import functools
import importlib.util
import inspect
from pathlib import Path
from typing import Any

from hyperlab.errors import ConfigError


def trainer_arguments() -> dict[str, Any]:
    """Every argument of Lightning's Trainer with Lightning's own default, read from the source of its `__init__`:
    the config is composed before Lightning (and torch) is imported; tests/test_fast_refusal.py checks that this is
    what the signature says. Read from the signature itself where the source cannot be read so (a default that is
    not a literal)."""
    spec = importlib.util.find_spec("lightning")  # (finds the package without importing it)
    try:
        package = Path(spec.submodule_search_locations[0])  # type: ignore[union-attr]
        tree = ast.parse((package / "pytorch" / "trainer" / "trainer.py").read_text(encoding="utf-8"))
        trainer = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Trainer")
        init = next(node for node in trainer.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
        given = init.args
        positional = [*given.posonlyargs, *given.args]
        defaults = [*[None] * (len(positional) - len(given.defaults)), *given.defaults]
        pairs = [*zip(positional, defaults, strict=True), *zip(given.kwonlyargs, given.kw_defaults, strict=True)]
        found = {arg.arg: inspect.Parameter.empty if d is None else ast.literal_eval(d) for arg, d in pairs}
    except (AttributeError, TypeError, OSError, SyntaxError, StopIteration, ValueError):
        import lightning as L

        found = {name: p.default for name, p in inspect.signature(L.Trainer.__init__).parameters.items()}
    return {name: default for name, default in found.items() if name not in ("self", "logger", "callbacks")}


# Every argument of Lightning's Trainer, with Lightning's own default: `trainer.<arg>=...` needs no `+`, and
# conf/trainer/*.yaml sets only what hyperlab changes. `logger` and `callbacks` are groups.
TRAINER_ARGUMENTS = trainer_arguments()


# the Trainer's switches, true or false (their Lightning default: None means "Lightning decides"; a text such as
# `yes` would reach torch as it is). fast_dev_run takes a number too; deterministic takes "warn".
TRAINER_FLAGS = {name: TRAINER_ARGUMENTS[name] for name in (
    "detect_anomaly", "inference_mode", "use_distributed_sampler", "barebones", "sync_batchnorm",
    "enable_autolog_hparams", "enable_checkpointing", "enable_progress_bar", "enable_model_summary", "benchmark",
) if name in TRAINER_ARGUMENTS}  # fmt: skip


@functools.cache
def lightning_precisions() -> list[str]:
    """Every precision Lightning's Trainer accepts ("64" and 64 alike: the schema's type makes text of a number)."""
    from hyperlab.compat import precision_inputs

    return precision_inputs()


def check_trainer_overrides(arguments: list[str]) -> None:
    """Refuse a command-line override of a Trainer argument that does not exist, naming the nearest one (Hydra's
    own message for it names no alternative)."""
    for argument in arguments:
        key = argument.split("=", 1)[0].lstrip("+~")
        if "=" not in argument or not key.startswith("trainer.") or key.count(".") != 1:
            continue
        name = key.removeprefix("trainer.")
        if name in ("logger", "callbacks"):
            raise ConfigError(f"{key} is set by the config group {name} ({name}=<option>), not as a Trainer key")
        if name not in TRAINER_ARGUMENTS and name != "_target_":
            near = difflib.get_close_matches(name, TRAINER_ARGUMENTS, n=1)
            hint = f"did you mean trainer.{near[0]}? " if near else ""
            raise ConfigError(f"{key} is not an argument of Lightning's Trainer: {hint}(see lightning.pytorch.Trainer)")
