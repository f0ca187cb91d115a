"""The private names of other packages that hyperlab uses, each checked through the function of hyperlab.compat
that wraps it (issue 24): an upgrade that moves or drops one fails here, naming the package and its installed version,
instead of somewhere in a run. Fast (no training): each check imports the name or builds the smallest real object that
has it. They pass on the newest versions and on the floors (scripts/floors.sh).

Every private name of another package is used in one module, src/hyperlab/compat.py, which wraps each in a public
name of its own (issue 25). Name (package) -> compat's name (who uses it):

- `hydra._internal.utils.get_args_parser` (hydra-core) -> `hydra_args_parser()` (cli.py: the command line's flags,
  read before Hydra runs)
- the flags of that parser, `HYDRA_ONLY_FLAGS` (hydra-core) -> cli.py's `HYDRA_ONLY_FLAGS` (`getattr(parsed, flag,
  None)` on what `hydra_args_parser()` parses: a renamed flag would be silently missed; public names, no private one)
- `lightning.fabric.connector._PRECISION_INPUT` (lightning) -> `precision_inputs()` (`lightning_precisions`: the
  precisions the config accepts)
- `lightning.pytorch.strategies.launchers._MultiProcessingLauncher` (lightning) -> `is_spawn_launcher(launcher)`
  (train.py: ddp_spawn's progress)
- `lightning.pytorch.strategies.launchers._SubprocessScriptLauncher` (lightning) -> `is_script_launcher(launcher)`
  (train.py, with the launcher's `cluster_environment`: ddp refused in a sweep)
- `ModelCheckpoint._every_n_train_steps` and `ModelCheckpoint._train_time_interval` (lightning) ->
  `checkpoint_acts_per_batch(callback)` (tasks/loop.py's `acts_per_batch`)
- `LearningRateMonitor._extract_stats` (lightning) -> `learning_rate_stats(monitor, trainer, interval)`
  (callbacks/progress.py's `MiniBatchLearningRateMonitor`: the fast loop's learning rates at the mini-batch step)
- `LightningModule._trainer` (lightning) -> `attached_trainer(module)` (tasks/bookkeeping.py, tasks/base.py,
  tasks/minimisation.py: attached or not, without `.trainer`'s error)
- `TensorBoardLogger._default_hp_metric` (lightning) -> `default_hp_metric(logger)` (loggers/tensorboard.py: refused
  when true)
- `TensorBoardLogger._prefix` (lightning) -> `logger_prefix(logger)` (loggers/tensorboard.py: refused when set)
- the checkpoint key `_instantiator` (lightning: `lightning.pytorch.core.saving` builds a module by it) ->
  `INSTANTIATOR_KEY` (checkpoints.py: a checkpoint holding it is refused)
- the module `lightning.pytorch.utilities._pytree` (lightning) -> `PYTREE_MODULE` (quiet.py: the module a warning
  filter names)
- `optuna_integration.pytorch_lightning.pytorch_lightning._PRUNED_KEY`, `_EPOCH_KEY` and `_INTERMEDIATE_VALUE`
  (optuna-integration) -> `PRUNED_KEY`, `EPOCH_KEY`, `INTERMEDIATE_KEY` (callbacks/pruning.py's `pruned_reason`: the
  trial system attributes its DDP pruning writes)

The one exception, outside compat.py (`OUTSIDE_COMPAT`): `torch.nn.Module._apply` (torch), overridden by
`TaskModule._apply` in tasks/bookkeeping.py (an override can't move to another module): the task's metrics, kept
outside its module tree so that Lightning's model summary lists the network alone, move with the task.

Replaced by public APIs (issue 25), no longer used: `SummaryWriter._get_file_writer` (its public `file_writer`, which
`SummaryWriter.__init__` creates), `optuna.trial.Trial._trial_id` (the storage's
`get_trial_id_from_study_id_trial_number`), `codecs.CodecInfo._is_text_encoding` (`str.encode`, which refuses a codec
that is not a text encoding), `Trainer._val_check_time_interval` and `fit_loop.epoch_loop._batches_that_stepped`
(the loop is chosen from the config before the Trainer is built, and the fast loop logs at its own step).

`test_every_private_name_in_src_is_listed` reads src/ and fails on a private attribute or import of another package
that this list does not check, so a new use comes with its check; `test_no_module_but_compat_uses_a_private_name` fails
on one used outside compat.py, so a new use comes through compat.
"""

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hyperlab import compat

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Use:
    package: str  # the distribution whose version the message names
    name: str  # what hyperlab uses, as the message says it
    used_by: str  # the file using it: compat.py, but for the exceptions in OUTSIDE_COMPAT
    check: Callable[[Path], Any]  # truthy if the name is there, as hyperlab uses it (it may raise)
    attribute: str = ""  # the private name itself (`_kwargs`), as src/ spells it (see the last tests)


def quiet_trainer(**kwargs: Any) -> Any:
    import lightning as L

    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    return L.Trainer(**(options | kwargs), enable_model_summary=False, accelerator="cpu")


def hydra_args_parser(tmp_path: Path) -> bool:
    return compat.hydra_args_parser().parse_known_args(["a=1"])[0].overrides == ["a=1"]


def hydra_only_flags(tmp_path: Path) -> bool:
    from hyperlab.command_line import HYDRA_ONLY_FLAGS

    flags = {action.dest for action in compat.hydra_args_parser()._actions}  # (--version exits as parsed: no value)
    missing = [flag for flag in HYDRA_ONLY_FLAGS if flag not in flags]
    assert not missing, f"its parser has no flag {missing}"
    return True


def precision_input(tmp_path: Path) -> bool:
    return {"32-true", "64-true", "bf16-mixed", "16-mixed", "64", "32"} <= set(compat.precision_inputs())


def multiprocessing_launcher(tmp_path: Path) -> bool:
    launcher = quiet_trainer(devices=2, strategy="ddp_spawn").strategy.launcher
    return compat.is_spawn_launcher(launcher) and not compat.is_script_launcher(launcher)


def subprocess_script_launcher(tmp_path: Path) -> bool:
    launcher = quiet_trainer(devices=2, strategy="ddp").strategy.launcher
    return compat.is_script_launcher(launcher) and isinstance(
        launcher.cluster_environment.creates_processes_externally, bool
    )


def every_n_train_steps(tmp_path: Path) -> bool:
    from lightning.pytorch.callbacks import ModelCheckpoint

    steps = ModelCheckpoint(every_n_train_steps=3)
    return steps._every_n_train_steps == 3 and compat.checkpoint_acts_per_batch(steps)


def extract_stats(tmp_path: Path) -> bool:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    monitor = LearningRateMonitor(logging_interval="epoch")
    trainer = quiet_trainer(callbacks=[monitor], logger=CSVLogger(tmp_path))
    model = L.LightningModule()
    model.configure_optimizers = lambda: torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.25)
    model.trainer = trainer
    trainer.strategy.connect(model)
    trainer.strategy.setup_optimizers(trainer)
    monitor.on_train_start(trainer, model)
    return compat.learning_rate_stats(monitor, trainer, "epoch") == {"lr-Adam": 0.25}


def train_time_interval(tmp_path: Path) -> bool:
    from lightning.pytorch.callbacks import ModelCheckpoint

    timed = ModelCheckpoint(train_time_interval=timedelta(minutes=2))
    acts = compat.checkpoint_acts_per_batch(timed) and not compat.checkpoint_acts_per_batch(ModelCheckpoint())
    return timed._train_time_interval == timedelta(minutes=2) and acts


def module_trainer(tmp_path: Path) -> bool:
    import lightning as L

    module = L.LightningModule()
    detached = compat.attached_trainer(module) is None
    module.trainer = trainer = quiet_trainer()  # (as fit attaches it)
    return detached and compat.attached_trainer(module) is trainer


def tensorboard_logger(tmp_path: Path, **kwargs: Any) -> Any:
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(tmp_path), **kwargs)


def default_hp_metric(tmp_path: Path) -> bool:
    return compat.default_hp_metric(tensorboard_logger(tmp_path)) is True and (
        compat.default_hp_metric(tensorboard_logger(tmp_path, default_hp_metric=False)) is False
    )


def prefix(tmp_path: Path) -> bool:
    return compat.logger_prefix(tensorboard_logger(tmp_path, prefix="p")) == "p" and not compat.logger_prefix(
        tensorboard_logger(tmp_path)
    )


def module_apply(tmp_path: Path) -> bool:
    import inspect as inspection

    import torch

    parameters = list(inspection.signature(torch.nn.Module._apply).parameters)
    moved = torch.nn.Linear(1, 1)._apply(lambda tensor: tensor.double())  # (what .double() calls)
    return parameters[:3] == ["self", "fn", "recurse"] and moved.weight.dtype == torch.float64


def instantiator_key(tmp_path: Path) -> bool:
    from lightning.pytorch.core import saving

    return f'"{compat.INSTANTIATOR_KEY}"' in inspect.getsource(saving)


def pytree_module(tmp_path: Path) -> bool:
    name = "lightning.pytorch.utilities._pytree"
    return importlib.util.find_spec(name) is not None and re.match(compat.PYTREE_MODULE, name) is not None


def ddp_key(private: str, ours: str) -> Callable[[Path], bool]:
    def check(tmp_path: Path) -> bool:
        from optuna_integration.pytorch_lightning import pytorch_lightning

        theirs = getattr(pytorch_lightning, private)
        assert theirs == getattr(compat, ours), f"it is {theirs!r}, compat's {ours} is {getattr(compat, ours)!r}"
        return True

    return check


COMPAT, CLI, BOOKKEEPING = "src/hyperlab/compat.py", "src/hyperlab/cli.py", "src/hyperlab/tasks/bookkeeping.py"
LAUNCHERS, DDP_KEYS = "lightning.pytorch.strategies.launchers", "optuna_integration.pytorch_lightning.pytorch_lightning"
# fmt: off
USES = [
    Use("hydra-core", "hydra._internal.utils.get_args_parser", COMPAT, hydra_args_parser, "_internal"),
    Use("hydra-core", "the flags of hydra._internal.utils.get_args_parser (HYDRA_ONLY_FLAGS)", CLI, hydra_only_flags),
    Use("lightning", "lightning.fabric.connector._PRECISION_INPUT", COMPAT, precision_input, "_PRECISION_INPUT"),
    Use("lightning", f"{LAUNCHERS}._MultiProcessingLauncher", COMPAT, multiprocessing_launcher,
        "_MultiProcessingLauncher"),
    Use("lightning", f"{LAUNCHERS}._SubprocessScriptLauncher (and its cluster_environment)", COMPAT,
        subprocess_script_launcher, "_SubprocessScriptLauncher"),
    Use("lightning", "ModelCheckpoint._every_n_train_steps", COMPAT, every_n_train_steps, "_every_n_train_steps"),
    Use("lightning", "ModelCheckpoint._train_time_interval", COMPAT, train_time_interval, "_train_time_interval"),
    Use("lightning", "LearningRateMonitor._extract_stats", COMPAT, extract_stats, "_extract_stats"),
    Use("lightning", "LightningModule._trainer", COMPAT, module_trainer, "_trainer"),
    Use("lightning", "TensorBoardLogger._default_hp_metric", COMPAT, default_hp_metric, "_default_hp_metric"),
    Use("lightning", "TensorBoardLogger._prefix", COMPAT, prefix, "_prefix"),
    Use("lightning", "the checkpoint key _instantiator (lightning.pytorch.core.saving)", COMPAT, instantiator_key),
    Use("lightning", "the module lightning.pytorch.utilities._pytree", COMPAT, pytree_module),
    Use("torch", "torch.nn.Module._apply (torchmetrics overrides it too)", BOOKKEEPING, module_apply, "_apply"),
    Use("optuna-integration", f"{DDP_KEYS}._PRUNED_KEY", COMPAT, ddp_key("_PRUNED_KEY", "PRUNED_KEY")),
    Use("optuna-integration", f"{DDP_KEYS}._EPOCH_KEY", COMPAT, ddp_key("_EPOCH_KEY", "EPOCH_KEY")),
    Use("optuna-integration", f"{DDP_KEYS}._INTERMEDIATE_VALUE", COMPAT,
        ddp_key("_INTERMEDIATE_VALUE", "INTERMEDIATE_KEY")),
]
# fmt: on

# The private names of other packages used outside compat.py, each with why it can't move there.
OUTSIDE_COMPAT = {
    (BOOKKEEPING, "_apply"): "TaskModule overrides torch's Module._apply, the one path of .to(), .cuda(), .double(), "
    "..., so that its metrics, kept outside its module tree (Lightning's model summary lists the network alone), move "
    "with it: an override is written in its class",
}


def installed(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} (not installed)"


@pytest.mark.parametrize("use", USES, ids=[use.name.split(" (")[0] for use in USES])
def test_the_private_name_is_still_where_hyperlab_uses_it(use, tmp_path):
    detail = ""
    try:
        present = use.check(tmp_path)
    except (ImportError, AttributeError, AssertionError, TypeError, ValueError) as error:
        present, detail = False, f": {type(error).__name__}: {error}"
    assert present, f"{installed(use.package)} no longer has {use.name} (used by {use.used_by}){detail}"


def private_names_used(tree: ast.AST) -> set[str]:
    """The private attributes read (`x._name`, `getattr(x, "_name", ...)`) and the private names imported from
    another package (`from lightning... import _NAME`, `from hydra._internal...`) in a module."""
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            used.add(node.attr)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr", "hasattr", "setattr"):
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and is_private(str(node.args[1].value)):
                used.add(str(node.args[1].value))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("hyperlab"):
            used.update(part for part in node.module.split(".") if is_private(part))
            used.update(alias.name for alias in node.names if is_private(alias.name))
        elif isinstance(node, ast.Import):
            used.update(part for alias in node.names for part in alias.name.split(".") if is_private(part))
    return used


def own_private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines itself (functions, classes, module names, attributes it assigns)."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and not isinstance(node, ast.AugAssign):
                        own.add(part.attr)
                    elif isinstance(part, ast.Name):
                        own.add(part.id)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hyperlab"):
            own.update(alias.asname or alias.name for alias in node.names)
    return {name for name in own if is_private(name)}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def source_trees() -> dict[Path, ast.AST]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(SRC.rglob("*.py"))}


def test_every_private_name_in_src_is_listed():
    trees = source_trees()
    own = set().union(*(own_private_names(tree) for tree in trees.values()))
    checked = {use.attribute for use in USES}
    unchecked = {
        f"{name} ({path.relative_to(SRC.parent)})"
        for path, tree in trees.items()
        for name in private_names_used(tree) - own - checked
    }
    assert not unchecked, (
        f"private names of other packages used in src/ that tests/test_private_names.py does not check: "
        f"{sorted(unchecked)}: add a check for each (and the module docstring's list)"
    )


def overridden_names(tree: ast.AST, names: set[str]) -> set[str]:
    """The methods among `names` that a module defines (an override of another package's private method)."""
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name in names}


def test_no_module_but_compat_uses_a_private_name():
    trees = source_trees()
    checked = {use.attribute for use in USES} - {""}
    # hyperlab's own private names, less those that are another package's too (`Task._apply` overrides torch's)
    own = set().union(*(own_private_names(tree) for tree in trees.values())) - checked
    outside = {
        (str(path.relative_to(SRC.parent)), name)
        for path, tree in trees.items()
        if str(path.relative_to(SRC.parent)) != COMPAT
        for name in (private_names_used(tree) | overridden_names(tree, checked)) - own
    }
    unexpected = sorted(f"{name} ({path})" for path, name in outside - OUTSIDE_COMPAT.keys())
    assert not unexpected, (
        f"private names of other packages used outside {COMPAT}: {unexpected}: use them through a public function or "
        "constant of hyperlab.compat (its docstring saying which package's private name it wraps, and why)"
    )
