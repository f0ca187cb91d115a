"""A wrong key, value or option is refused in one line before torch or Lightning is imported (issue 23, point 6):
every command composes and checks its command line first (hyperlab.config.check_declared, reading what hyperlab
declares: its schemas, its networks' and datamodules' options), and imports the heavy libraries only once it has
passed. Behavioural, not timed: each refusal runs in a fresh process that reports the heavy packages it imported
(none); how long a refusal takes is a figure of docs/benchmarks.md (scripts/benchmark.py --section refusal)."""

import importlib.metadata
import inspect
import subprocess
import sys

import pytest
from hydra.utils import get_class

from hyperlab.classes import conf_targets
from hyperlab.options import declared_options
from hyperlab.trainer_arguments import TRAINER_ARGUMENTS, trainer_arguments

# what a refusal must not import: seconds of a command's start (torch alone is 1.7 s on a shared 2-core machine)
HEAVY = {"torch", "lightning", "pytorch_lightning", "lightning_fabric", "torchvision", "torchmetrics", "sklearn",
         "matplotlib", "tensorboard", "pandas", "optuna"}  # fmt: skip
# runs an entry point (`module:function`, the first argument) on the rest of the command line, then says on stdout
# which heavy packages the process imported, whatever way it ends
RUN = f"""
import atexit, importlib, sys
atexit.register(lambda: print("imported:", sorted({{m.split(".")[0] for m in sys.modules}} & {HEAVY!r})))
module, _, function = sys.argv.pop(1).partition(":")
getattr(importlib.import_module(module), function)()
"""
ENTRY_POINTS = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")
                if e.value.startswith("hyperlab.")}  # fmt: skip
REFUSALS = [
    ("hyperlab-train", ["lr=0.01"],
     "lr is not a key of the config: did you mean optimizer.lr? (a new key takes a +: +lr=...)"),
    ("hyperlab-train", ["model.depth=abc"], "model.depth='abc' is not allowed: expected int"),
    ("hyperlab-train", ["model.depth=-1"],
     "model.depth=-1 is not allowed: expected an integer >= 0 (0 = a linear model)"),
    ("hyperlab-train", ["+model.dpeth=3"], "model.dpeth is not an option of MLP: did you mean model.depth? "
     "expected one of ['hidden', 'depth', 'taper', 'dropout', 'activation', 'batchnorm', 'init']"),
    ("hyperlab-train", ["model=foo"],
     "model=foo is not an option of model: expected one of ['cnn', 'line', 'mlp', 'point', 'torchvision']"),
    ("hyperlab-train", ["experiment=mnist_cnn", "model.kernel_size=2"],
     "model.kernel_size=2 is not allowed: expected an odd integer >= 1"),
    ("hyperlab-train", ["data.batch_size=0"], "data.batch_size=0 is not allowed: expected an integer >= 1"),
    ("hyperlab-train", ["experiment=iris", "data.name=irises"],
     "data.name='irises' is not allowed: expected one of ['iris', 'wine', 'breast_cancer', 'diabetes']"),
    ("hyperlab-train", ["data=csv"], "data.path is required: give it on the command line (data.path=...)"),
    ("hyperlab-train", ["trainer.max_epochs=0"], "trainer.max_epochs=0 is not allowed: expected an integer >= 1"),
    ("hyperlab-train", ["trainer.max_epohcs=1"], "trainer.max_epohcs is not an argument of Lightning's Trainer: did "
     "you mean trainer.max_epochs? (see lightning.pytorch.Trainer)"),
    ("hyperlab-train", ["-m", "seed=-1,2"], "seed=-1 is not allowed: expected an integer from 0 to 4294967295"),
    ("hyperlab-finetune", ["finetune.lr_factor=0.5"],
     "fine-tuning starts from a checkpoint: give ckpt_path=<the pretrained checkpoint>"),
    ("hyperlab-finetune", ["ckpt_path=run.ckpt", "finetune.head=old"],
     "finetune.head='old' is not allowed: expected one of ['auto', 'new', 'keep']"),
    ("hyperlab-eval", ["ckpt_path=run.ckpt", "model.hidden=3"], "model.hidden cannot be set for an evaluation, which "
     "tests the checkpoint as it was trained (its model, optimizer and seed come from the file): expected "
     "data=<option>, a key of data., callbacks., trainer. or paths., threads or name"),
    ("hyperlab-eval", ["ckpt_path=run.ckpt", "trainer.max_epohcs=1"], "trainer.max_epohcs is not a key of the config: "
     "did you mean trainer.max_epochs? (a new key takes a +: +trainer.max_epohcs=...)"),
    ("hyperlab-eval", ["ckpt_path=run.ckpt", "data=mnist", "data.batch_size=abc"],
     "data.batch_size='abc' is not allowed: expected int"),
    ("hyperlab-predict", ["ckpt_path=run.ckpt", "images=.", "top_k=0"],
     "top_k=0 is not allowed: expected an integer >= 1"),
    ("hyperlab-predict", ["ckpt_path=run.ckpt", "images=.", "topk=3"],
     "topk is not a key of the config: did you mean top_k? (a new key takes a +: +topk=...)"),
    ("hyperlab-sweep-table", ["folder=.", "metirc=val/acc"],
     "metirc is not a key of the config: did you mean metric? (a new key takes a +: +metirc=...)"),
]  # fmt: skip


def refuse(tmp_path, command: str, arguments: list[str]) -> subprocess.CompletedProcess:
    run = [sys.executable, "-c", RUN, ENTRY_POINTS[command], *arguments]
    return subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(("command", "arguments", "message"), REFUSALS, ids=[" ".join([r[0], *r[1]]) for r in REFUSALS])
def test_a_wrong_key_value_or_option_is_refused_in_one_line_before_torch_is_imported(
    tmp_path, command, arguments, message
):
    refused = refuse(tmp_path, command, arguments)
    assert (refused.returncode, refused.stderr.strip()) == (2, f"error: {message}"), refused.stderr[-3000:]
    assert refused.stdout.strip().splitlines()[-1] == "imported: []"
    assert not list(tmp_path.iterdir())  # (nothing written: no run folder, no log)


def test_every_command_is_checked_here():
    assert set(ENTRY_POINTS) == {command for command, _, _ in REFUSALS}


def test_a_valid_command_line_goes_on_to_import_torch(tmp_path):
    """(The check above is that of a process which would have imported them: here a config passes, and torch comes.)"""
    done = refuse(tmp_path, "hyperlab-train", ["--cfg", "job", "experiment=blobs"])  # (Hydra's: prints, runs nothing)
    assert done.returncode == 0 and "_target_: hyperlab.data.BlobsDataModule" in done.stdout, done.stderr[-3000:]
    checked = refuse(tmp_path, "hyperlab-train", ["optimizer.lr=-1", f"paths.log_dir={tmp_path / 'logs'}"])
    assert checked.stderr.strip() == "error: optimizer.lr=-1 is not allowed: expected a number > 0"  # torch's class
    assert "torch" in checked.stdout.strip().splitlines()[-1]


def test_lightnings_trainer_arguments_are_read_from_its_source_as_its_signature_has_them():
    import lightning as L

    signature = inspect.signature(L.Trainer.__init__).parameters.items()
    expected = {name: p.default for name, p in signature if name not in ("self", "logger", "callbacks")}
    assert TRAINER_ARGUMENTS == trainer_arguments() == expected
    assert list(TRAINER_ARGUMENTS) == list(expected)


@pytest.mark.parametrize("group", ["data", "model"])
def test_hyperlabs_own_classes_are_built_from_the_options_the_check_reads(group):
    """One declaration: the dataclass the check finds by the `_target_` alone is the one the class builds from."""
    for target in conf_targets(group):
        assert declared_options(target) is vars(get_class(target))["options"], target
