"""What a run shows while it trains: Lightning's model summary lists the network alone (not the task's metrics and
loss function), and the progress bar counts mini-batches, with a true rate, in the fast loop as in Lightning's."""

import math

import pytest
from helpers import compose_config
from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn
from lightning.pytorch.utilities.model_summary import summarize
from rich.progress import Progress
from torchmetrics import Metric

from hyperlab.callbacks.progress import MiniBatchRichProgressBar, MiniBatchTQDMProgressBar, SpeedColumn
from hyperlab.experiment import build

TQDM = "+callbacks.bar._target_=lightning.pytorch.callbacks.TQDMProgressBar"


def built(tmp_path, *overrides):
    """A digits run (1 epoch) with Lightning's default progress bar on (compose_config turns it off)."""
    cfg = compose_config(tmp_path / "run", "logger=none", "trainer.max_epochs=1", *overrides)
    cfg.trainer.enable_progress_bar = True
    return build(cfg)


def test_the_model_summary_lists_the_network_alone(tmp_path):
    task = built(tmp_path).task
    assert summarize(task, max_depth=1).layer_names == ["net"]
    deep = summarize(task, max_depth=-1)
    assert all(name.startswith("net") for name in deep.layer_names)
    assert sum(deep.total_training_modes.values()) == len(list(task.net.modules()))  # "Modules in train mode"
    assert all(key.startswith("net.") for key in task.state_dict())  # (checkpoints hold what they held)
    # the metrics, outside the module tree, still go where the task goes (as Lightning moves it to its device)
    metrics = [part for module in task.aside.values() for part in module.modules() if isinstance(part, Metric)]
    assert len(metrics) == 9  # the three losses, and accuracy and F1 for each stage
    task.to("meta")
    assert all(metric.device.type == "meta" for metric in metrics)
    assert task.val_loss.mean_value.device.type == "meta"


def mini_batches(datamodule, split, batch_size):
    return math.ceil(len(datamodule.splits[split][0]) / batch_size)


@pytest.mark.parametrize(
    ("overrides", "bar_class", "loop"),
    [
        ((), MiniBatchRichProgressBar, "the fast loop"),  # Lightning's default bar where rich is installed
        ((TQDM,), MiniBatchTQDMProgressBar, "the fast loop"),  # Lightning's other bar, named in the config
        (("trainer.gradient_clip_val=0.5",), MiniBatchRichProgressBar, "Lightning's loop"),
    ],
)
def test_the_progress_bar_counts_mini_batches_in_either_loop(tmp_path, overrides, bar_class, loop):
    # 40 training mini-batches (chunks of 16, 16, 8) and 17 of validation and of test (chunks of 16 and 1)
    experiment = built(tmp_path, "data.eval_batch_size=16", *overrides)
    assert experiment.loop.startswith(loop)
    trainer, datamodule = experiment.trainer, experiment.datamodule
    bar = trainer.progress_bar_callback
    assert type(bar) is bar_class
    trainer.fit(experiment.task, datamodule=datamodule)
    train, val = mini_batches(datamodule, "train", 32), mini_batches(datamodule, "val", 16)
    assert (train, val) == (40, 17)
    assert counts(bar.train_progress_bar) == (train, train)
    assert counts(bar.val_progress_bar) == (val, val)
    trainer.test(experiment.task, datamodule=datamodule, verbose=False)
    test = mini_batches(datamodule, "test", 16)
    assert counts(bar.test_progress_bar) == (test, test)


def counts(progress_bar):
    """(done, total) of a rich task or a tqdm bar."""
    if hasattr(progress_bar, "completed"):
        return progress_bar.completed, progress_bar.total
    return progress_bar.n, progress_bar.total


def test_a_bar_done_in_one_step_shows_its_true_rate():
    """Rich estimates a rate from two updates or more: a test set done in one chunk read 0.00it/s."""
    now = [0.0]
    progress = Progress(get_time=lambda: now[0])
    task_id = progress.add_task("Testing", total=10)
    now[0] = 0.5
    progress.update(task_id, completed=10)
    now[0] = 3.0  # (the bar is drawn again later: the rate is the one it finished at)
    (task,) = progress.tasks
    assert ProcessingSpeedColumn(style="").render(task).plain == "0.00it/s"  # Lightning's column
    assert SpeedColumn(style="").render(task).plain == "20.00it/s"
    progress.add_task("Validation", total=10, start=False)
    assert SpeedColumn(style="").render(progress.tasks[-1]).plain == ""  # not started: no rate
