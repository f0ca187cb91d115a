"""The code's shape, as a user adding to it meets it: a datamodule and a network are one module and one YAML file
each; a config's values are checked by the class that takes them; the run folder is touched only once the data has
accepted the config; fine-tuning works for any network; a metric's direction is declared once."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import commands
import pytest
from helpers import compose_config
from lightning.pytorch.callbacks import ModelCheckpoint

from hyperlab.config import with_data
from hyperlab.errors import ConfigError
from hyperlab.experiment import build
from hyperlab.schemas import optuna_direction
from hyperlab.sweeps.runs import Sweep, higher_is_better
from hyperlab.tasks import TASKS, ClassificationTask, RegressionTask, metric_mode
from hyperlab.train import train

TOY_MODULE = '''
"""A datamodule and a network of one's own: nothing of hyperlab is edited to use them."""
import torch
from torch import nn

from hyperlab.data.base import TensorDataModule, split_indices


class Rings(TensorDataModule):
    """Points on two rings: inner (class 0) or outer (class 1)."""

    kind = "classification"

    def __init__(self, num_points: int, val_fraction: float, test_fraction: float, **loader):
        super().__init__(**loader)
        self.num_points, self.val_fraction, self.test_fraction = num_points, val_fraction, test_fraction
        self.class_names = ["inner", "outer"]

    @classmethod
    def check_options(cls, options):
        super().check_options(options)
        options.require("num_points", options.num_points >= 20, "an integer >= 20")

    def load(self):
        generator = torch.Generator().manual_seed(self.seed)
        y = torch.randint(0, 2, (self.num_points,), generator=generator)
        angle = torch.rand(self.num_points, generator=generator) * 6.283
        radius = 1.0 + 2.0 * y + 0.1 * torch.randn(self.num_points, generator=generator)
        x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
        index = split_indices(self.num_points, self.val_fraction, self.test_fraction, self.seed, labels=y)
        return {split: (x[i], y[i]) for split, i in index.items()}


class Quadratic(nn.Module):
    """Logits from the squared features: rings are linearly separable in x^2 + y^2."""

    head_name = "head"

    def __init__(self, input_shape, num_outputs: int, width: int):
        super().__init__()
        self.hidden = nn.Linear(2 * input_shape[0], width)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(torch.cat([x, x * x], dim=1))))
'''
TOY_DATA = """
_target_: toy_module.Rings
num_points: 400         # points on the two rings
val_fraction: 0.2       # held out for validation
test_fraction: 0.2      # held out for the test
batch_size: 32          # mini-batch size
eval_batch_size: 400    # batch size for validation and test
batches_per_step: 8     # mini-batches per Lightning call in the fast loop
seed: 0                 # draws the points
shuffle_seed: ${seed}   # the batch order
"""
TOY_MODEL = """
_target_: toy_module.Quadratic
width: 16               # hidden units
"""


def test_a_new_datamodule_and_network_are_one_module_and_one_yaml_each(tmp_path):
    (tmp_path / "toy_module.py").write_text(TOY_MODULE)
    for group, text in (("data", TOY_DATA), ("model", TOY_MODEL)):
        (tmp_path / "conf" / group).mkdir(parents=True)
        (tmp_path / "conf" / group / f"toy_{group}.yaml").write_text(textwrap.dedent(text))
    command = [sys.executable, "-m", "hyperlab", "train", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
               "data=toy_data", "model=toy_model", "callbacks=default", "trainer.max_epochs=15", "optimizer.lr=0.05",
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = commands.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["metrics"]["test/acc"] > 0.9
    # the new classes' own options and ranges are checked as hyperlab's are, naming the key
    refusals = {
        "data.num_points=5": "error: data.num_points=5 is not allowed: expected an integer >= 20",
        "model.width=wide": "error: model.width='wide' is not allowed: expected int",
        "+model.widht=3": "error: model.widht is not an option of Quadratic: did you mean model.width?",
    }
    for override, message in refusals.items():
        refused = commands.run([*command[:-1], override, f"hydra.run.dir={tmp_path / 'refused'}"],
                                 capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 2 and refused.stderr.startswith(message), refused.stderr[-2000:]


def test_a_rerun_the_data_refuses_leaves_the_earlier_attempt_where_it_was(make_config, tmp_path):
    """Item 3: what only the data can refuse (a task of the other kind) is refused before the folder is touched."""
    first = train(make_config("trainer.max_epochs=2", "optimizer.lr=1e9"))  # diverged: resume=true re-runs it
    assert first["status"] == "diverged"
    before = sorted(path.relative_to(tmp_path) for path in (tmp_path / "run").rglob("*"))
    for bad in ("task=regression", "monitor.metric=val/r2"):  # each refused only once the data is known
        with pytest.raises(ConfigError, match="does not fit this data|is not logged for classification"):
            train(make_config("trainer.max_epochs=2", "resume=true", bad))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == first
    assert sorted(path.relative_to(tmp_path) for path in (tmp_path / "run").rglob("*")) == before  # no attempts/


def test_building_leaves_the_composed_config_as_it_was_and_the_callbacks_get_the_settled_metric(make_config):
    """Item 5: the data settles the `auto` values in a new config, which the callbacks are built from."""
    cfg = make_config("trainer.max_epochs=1")
    experiment = build(cfg)
    assert cfg.monitor.metric == "auto" and cfg.monitor.mode == "auto" and cfg.task.kind == "auto"
    assert (experiment.cfg.monitor.metric, experiment.cfg.monitor.mode) == ("val/acc", "max")
    monitored = [c for c in experiment.trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor]
    assert monitored and all(c.monitor == "val/acc" and c.mode == "max" for c in monitored)
    regression = build(make_config("experiment=line", "trainer.max_epochs=1"))
    assert regression.trainer.checkpoint_callback.monitor == "val/loss"


def test_a_network_without_an_output_layer_named_head_can_be_fine_tuned(tmp_path):
    """Item 4: the network names its output layer (`head_name`); the line model has none and keeps its weights."""
    pretrained = train(compose_config(tmp_path / "line", "experiment=line", "trainer.max_epochs=3"))
    tuned = train(
        compose_config(
            tmp_path / "tuned",
            "experiment=line",
            "trainer.max_epochs=2",
            "finetune=default",
            f"ckpt_path={pretrained['best_checkpoint']}",
        )  # fmt: skip
    )
    assert tuned["status"] == "completed"
    with pytest.raises(ConfigError, match="finetune.head=new: LineModel has no separate output layer"):
        train(compose_config(tmp_path / "new", "experiment=line", "finetune=default", "finetune.head=new",
                             f"ckpt_path={pretrained['best_checkpoint']}"))  # fmt: skip


@pytest.mark.parametrize("task", TASKS.values(), ids=list(TASKS))
def test_a_metrics_direction_is_the_one_its_task_declares_everywhere(task, make_config):
    """Item 6: the checkpoint's monitor mode, Optuna's direction and the sweep table's order follow one declaration."""
    sweep = Sweep(Path("."), [], [], {}, "val/loss", "min")
    data = "experiment=digits" if task is ClassificationTask else "experiment=line"
    for name, mode in task.metric_modes.items():
        metric = f"val/{name}"
        assert metric_mode(metric) == mode == metric_mode(f"test/{name}")
        assert optuna_direction(metric, "auto") == f"{mode}imize"
        assert higher_is_better(sweep, metric) == (mode == "max")
        assert with_data(make_config(data, f"monitor.metric={metric}"), task.kind).monitor.mode == mode


def test_a_metric_a_task_adds_gets_its_direction_everywhere(monkeypatch):
    monkeypatch.setattr(ClassificationTask, "metric_modes", {**ClassificationTask.metric_modes, "auroc": "max"})
    monkeypatch.setattr(RegressionTask, "metric_modes", {**RegressionTask.metric_modes, "rmse": "min"})
    sweep = Sweep(Path("."), [], [], {}, "val/loss", "min")
    assert higher_is_better(sweep, "val/auroc") and optuna_direction("val/auroc", "auto") == "maximize"
    assert not higher_is_better(sweep, "val/rmse") and optuna_direction("val/rmse", "auto") == "minimize"


# ------------------------------------------------------------------------------------------------ the layers
# modules that import nothing of hyperlab, so that anything may use them without a cycle
LEAVES = ("hyperlab.errors", "hyperlab.compat", "hyperlab.invocation", "hyperlab.data.loaders", "hyperlab.data.augment",
          "hyperlab.data.functions", "hyperlab.data.messages", "hyperlab.spreadsheet", "hyperlab.tasks.chance",
          "hyperlab.sweeps.curves", "hyperlab.callbacks.parameters")  # fmt: skip
SOURCE = Path(__file__).resolve().parents[1] / "src" / "hyperlab"


def test_the_layers_hold_no_module_imports_one_that_imports_it_and_the_leaves_import_nothing_of_hyperlab():
    linted = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], capture_output=True,
                            text=True, cwd=SOURCE.parents[1])  # fmt: skip
    assert linted.returncode == 0, linted.stdout[-3000:]  # pyproject.toml's [tool.importlinter] contracts
    import grimp

    graph = grimp.build_graph("hyperlab")
    cycles = sorted({
        tuple(sorted((importer, imported)))
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.find_shortest_chain(importer=imported, imported=importer)
    })  # fmt: skip
    assert not cycles, f"modules that import each other (through others, maybe): {cycles}"
    for leaf in LEAVES:
        assert not {m for m in graph.find_modules_directly_imported_by(leaf) if m.startswith("hyperlab")}, leaf


def test_no_module_is_over_350_lines():
    lines = {str(path.relative_to(SOURCE)): len(path.read_text().splitlines()) for path in SOURCE.rglob("*.py")}
    assert not {name: count for name, count in lines.items() if count > 350}
