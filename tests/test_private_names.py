"""The private names of other packages that hyperlab uses, each checked where hyperlab uses it (issue 24): an
upgrade that moves or drops one fails here, naming the package and its installed version, instead of somewhere
in a run. Fast (no training): each check imports the name or builds the smallest real object that has it. They pass
on the newest versions and on the floors (scripts/floors.sh).

Name (package) -> where hyperlab uses it:

- `hydra._internal.utils.get_args_parser` (hydra-core) -> src/hyperlab/cli.py (import: the command line's flags,
  read before Hydra runs)
- the flags of that parser, `HYDRA_ONLY_FLAGS` (hydra-core) -> src/hyperlab/cli.py (`getattr(parsed, flag, None)`:
  a renamed flag would be silently missed)
- `lightning.fabric.connector._PRECISION_INPUT` (lightning) -> src/hyperlab/config.py (import: the precisions the
  config accepts, `lightning_precisions`)
- `lightning.pytorch.strategies.launchers._MultiProcessingLauncher` (lightning) -> src/hyperlab/train.py (import,
  `isinstance(trainer.strategy.launcher, ...)`: ddp_spawn's progress)
- `lightning.pytorch.strategies.launchers._SubprocessScriptLauncher` (lightning) -> src/hyperlab/train.py (import,
  `isinstance`, and its `cluster_environment`: ddp refused in a sweep)
- `Trainer.fit_loop.epoch_loop._batches_that_stepped` (lightning) -> src/hyperlab/tasks/base.py (`+=`: the fast
  loop's step count)
- `Trainer._val_check_time_interval` (lightning) -> src/hyperlab/tasks/loop.py (`getattr(trainer, ...)`:
  val_check_interval as a duration)
- `ModelCheckpoint._every_n_train_steps` (lightning) -> src/hyperlab/tasks/loop.py (`acts_per_batch`)
- `ModelCheckpoint._train_time_interval` (lightning) -> src/hyperlab/tasks/loop.py (`acts_per_batch`)
- `LightningModule._trainer` (lightning) -> src/hyperlab/tasks/base.py (`on_load_checkpoint`: attached or not,
  without `.trainer`'s error)
- `TensorBoardLogger._default_hp_metric` (lightning) -> src/hyperlab/loggers/tensorboard.py (refused when true)
- `TensorBoardLogger._prefix` (lightning) -> src/hyperlab/loggers/tensorboard.py (refused when set)
- the checkpoint key `_instantiator` (lightning: `lightning.pytorch.core.saving` builds a module by it) ->
  src/hyperlab/checkpoints.py (a checkpoint holding it is refused)
- the module `lightning.pytorch.utilities._pytree` (lightning) -> src/hyperlab/quiet.py (the module a warning
  filter names)
- `SummaryWriter._get_file_writer` (torch's `torch.utils.tensorboard`, Lightning's `TensorBoardLogger.experiment`)
  -> src/hyperlab/loggers/tensorboard.py (a run's HParams session, a folder's experiment record)
- `torch.nn.Module._apply` (torch) -> src/hyperlab/tasks/base.py (`Task._apply`: the metrics, kept outside the module
  tree, move with the task)
- `optuna.trial.Trial._trial_id` (optuna) -> src/hyperlab/callbacks/pruning.py (`pruned_reason`)
- `optuna_integration.pytorch_lightning.pytorch_lightning._PRUNED_KEY`, `_EPOCH_KEY` and `_INTERMEDIATE_VALUE`
  (optuna-integration) -> src/hyperlab/callbacks/pruning.py (`PRUNED_KEY`, `EPOCH_KEY`, `INTERMEDIATE_KEY`: the trial
  system attributes its DDP pruning writes)
- `codecs.CodecInfo._is_text_encoding` (Python) -> src/hyperlab/options.py (`is_text_encoding`)

`test_every_private_name_in_src_is_listed` reads src/ and fails on a private attribute or import of another package
that this list does not check, so a new use comes with its check.
"""

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Use:
    package: str  # the distribution whose version the message names ("python": the interpreter)
    name: str  # what hyperlab uses, as the message says it
    used_by: str  # the file(s) using it
    check: Callable[[Path], Any]  # truthy if the name is there, as hyperlab uses it (it may raise)
    attribute: str = ""  # the private name itself (`_kwargs`), as src/ spells it (see the last test)


def quiet_trainer(**kwargs: Any) -> Any:
    import lightning as L

    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    return L.Trainer(**options, enable_model_summary=False, accelerator="cpu", **kwargs)


def hydra_args_parser(tmp_path: Path) -> bool:
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_known_args(["a=1"])[0].overrides == ["a=1"]


def hydra_only_flags(tmp_path: Path) -> bool:
    from hydra._internal.utils import get_args_parser

    from hyperlab.cli import HYDRA_ONLY_FLAGS

    flags = {action.dest for action in get_args_parser()._actions}  # (--version exits as it is parsed: no value)
    missing = [flag for flag in HYDRA_ONLY_FLAGS if flag not in flags]
    assert not missing, f"its parser has no flag {missing}"
    return True


def precision_input(tmp_path: Path) -> bool:
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT

    values = {str(value) for kind in typing.get_args(_PRECISION_INPUT) for value in typing.get_args(kind)}
    return {"32-true", "64-true", "bf16-mixed", "16-mixed", "64", "32"} <= values


def multiprocessing_launcher(tmp_path: Path) -> bool:
    from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

    return isinstance(quiet_trainer(devices=2, strategy="ddp_spawn").strategy.launcher, _MultiProcessingLauncher)


def subprocess_script_launcher(tmp_path: Path) -> bool:
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    launcher = quiet_trainer(devices=2, strategy="ddp").strategy.launcher
    return isinstance(launcher, _SubprocessScriptLauncher) and isinstance(
        launcher.cluster_environment.creates_processes_externally, bool
    )


def batches_that_stepped(tmp_path: Path) -> bool:
    return isinstance(quiet_trainer().fit_loop.epoch_loop._batches_that_stepped, int)


def val_check_time_interval(tmp_path: Path) -> bool:
    # (hyperlab reads it with getattr(..., None): gone, a duration would pass for "no duration" unseen)
    return quiet_trainer(val_check_interval=timedelta(seconds=90))._val_check_time_interval == 90


def every_n_train_steps(tmp_path: Path) -> bool:
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(every_n_train_steps=3)._every_n_train_steps == 3


def train_time_interval(tmp_path: Path) -> bool:
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(train_time_interval=timedelta(minutes=2))._train_time_interval == timedelta(minutes=2)


def module_trainer(tmp_path: Path) -> bool:
    import lightning as L

    module = L.LightningModule()
    detached = module._trainer is None
    module.trainer = trainer = quiet_trainer()  # (as fit attaches it)
    return detached and module._trainer is trainer


def tensorboard_logger(tmp_path: Path, **kwargs: Any) -> Any:
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(tmp_path), **kwargs)


def default_hp_metric(tmp_path: Path) -> bool:
    return tensorboard_logger(tmp_path)._default_hp_metric is True and (
        tensorboard_logger(tmp_path, default_hp_metric=False)._default_hp_metric is False
    )


def prefix(tmp_path: Path) -> bool:
    return tensorboard_logger(tmp_path, prefix="p")._prefix == "p" and not tensorboard_logger(tmp_path)._prefix


def module_apply(tmp_path: Path) -> bool:
    import inspect as inspection

    import torch

    parameters = list(inspection.signature(torch.nn.Module._apply).parameters)
    moved = torch.nn.Linear(1, 1)._apply(lambda tensor: tensor.double())  # (what .double() calls)
    return parameters[:3] == ["self", "fn", "recurse"] and moved.weight.dtype == torch.float64


def instantiator_key(tmp_path: Path) -> bool:
    from lightning.pytorch.core import saving

    return '"_instantiator"' in inspect.getsource(saving)


def pytree_module(tmp_path: Path) -> bool:
    return importlib.util.find_spec("lightning.pytorch.utilities._pytree") is not None


def file_writer(tmp_path: Path) -> bool:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "own"))
    try:
        return callable(writer._get_file_writer().add_summary)  # write_session, write_folder_record
    finally:
        writer.close()


def trial_id(tmp_path: Path) -> bool:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = optuna.trial.Trial(study, study.ask()._trial_id)  # (as pruning.open_trial builds it)
    return isinstance(trial.storage.get_trial_system_attrs(trial._trial_id), dict)


def ddp_key(private: str, ours: str) -> Callable[[Path], bool]:
    def check(tmp_path: Path) -> bool:
        from optuna_integration.pytorch_lightning import pytorch_lightning

        from hyperlab.callbacks import pruning

        theirs = getattr(pytorch_lightning, private)
        assert theirs == getattr(pruning, ours), f"it is {theirs!r}, hyperlab's {ours} is {getattr(pruning, ours)!r}"
        return True

    return check


def text_encoding(tmp_path: Path) -> bool:
    import codecs

    return codecs.lookup("latin-1")._is_text_encoding is True and codecs.lookup("base64")._is_text_encoding is False


CLI, CONFIG, TRAIN = "src/hyperlab/cli.py", "src/hyperlab/config.py", "src/hyperlab/train.py"
BASE, LOOP, PRUNING = "src/hyperlab/tasks/base.py", "src/hyperlab/tasks/loop.py", "src/hyperlab/callbacks/pruning.py"
LOGGER, LAUNCHERS = "src/hyperlab/loggers/tensorboard.py", "lightning.pytorch.strategies.launchers"
DDP_KEYS = "optuna_integration.pytorch_lightning.pytorch_lightning"
# fmt: off
USES = [
    Use("hydra-core", "hydra._internal.utils.get_args_parser", CLI, hydra_args_parser, "_internal"),
    Use("hydra-core", "the flags of hydra._internal.utils.get_args_parser (HYDRA_ONLY_FLAGS)", CLI, hydra_only_flags),
    Use("lightning", "lightning.fabric.connector._PRECISION_INPUT", CONFIG, precision_input, "_PRECISION_INPUT"),
    Use("lightning", f"{LAUNCHERS}._MultiProcessingLauncher", TRAIN, multiprocessing_launcher,
        "_MultiProcessingLauncher"),
    Use("lightning", f"{LAUNCHERS}._SubprocessScriptLauncher (and its cluster_environment)", TRAIN,
        subprocess_script_launcher, "_SubprocessScriptLauncher"),
    Use("lightning", "Trainer.fit_loop.epoch_loop._batches_that_stepped", BASE, batches_that_stepped,
        "_batches_that_stepped"),
    Use("lightning", "Trainer._val_check_time_interval", LOOP, val_check_time_interval, "_val_check_time_interval"),
    Use("lightning", "ModelCheckpoint._every_n_train_steps", LOOP, every_n_train_steps, "_every_n_train_steps"),
    Use("lightning", "ModelCheckpoint._train_time_interval", LOOP, train_time_interval, "_train_time_interval"),
    Use("lightning", "LightningModule._trainer", BASE, module_trainer, "_trainer"),
    Use("lightning", "TensorBoardLogger._default_hp_metric", LOGGER, default_hp_metric, "_default_hp_metric"),
    Use("lightning", "TensorBoardLogger._prefix", LOGGER, prefix, "_prefix"),
    Use("lightning", "the checkpoint key _instantiator (lightning.pytorch.core.saving)", "src/hyperlab/checkpoints.py",
        instantiator_key),
    Use("lightning", "the module lightning.pytorch.utilities._pytree", "src/hyperlab/quiet.py", pytree_module),
    Use("torch", "torch.utils.tensorboard.SummaryWriter._get_file_writer", LOGGER,
        file_writer, "_get_file_writer"),
    Use("torch", "torch.nn.Module._apply (torchmetrics overrides it too)", BASE, module_apply, "_apply"),
    Use("optuna", "optuna.trial.Trial._trial_id", PRUNING, trial_id, "_trial_id"),
    Use("optuna-integration", f"{DDP_KEYS}._PRUNED_KEY", PRUNING, ddp_key("_PRUNED_KEY", "PRUNED_KEY")),
    Use("optuna-integration", f"{DDP_KEYS}._EPOCH_KEY", PRUNING, ddp_key("_EPOCH_KEY", "EPOCH_KEY")),
    Use("optuna-integration", f"{DDP_KEYS}._INTERMEDIATE_VALUE", PRUNING,
        ddp_key("_INTERMEDIATE_VALUE", "INTERMEDIATE_KEY")),
    Use("python", "codecs.CodecInfo._is_text_encoding", "src/hyperlab/options.py", text_encoding, "_is_text_encoding"),
]
# fmt: on


def installed(package: str) -> str:
    if package == "python":
        return f"Python {platform.python_version()}"
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
    if use.package == "torch":  # (torch.utils.tensorboard writes through the tensorboard package)
        detail += f" (with {installed('tensorboard')})"
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


def test_every_private_name_in_src_is_listed():
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sorted(SRC.rglob("*.py"))}
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
