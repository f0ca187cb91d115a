"""The two training loops: the fast one and Lightning's train the same weights, the choice between them is
automatic and recorded, and Lightning's per-batch flags mean what Lightning's docs say, in mini-batches."""

import copy
import csv
import logging
import sys

import commands
import lightning as L
import pytest
import torch
from helpers import compose_config, read_events
from torch import nn

from hyperlab.classes import build_trusted
from hyperlab.data.loaders import EpochSampler
from hyperlab.experiment import build
from hyperlab.tasks.fast_loop import FastLoop, use_lightning_loop
from hyperlab.train import train

# digits: 1257 training images in batches of 32 = 40 mini-batches an epoch; the fast loop hands 16 per step
BATCHES = 40


def fit(experiment):
    experiment.trainer.fit(experiment.task, datamodule=experiment.datamodule)
    return {key: value.clone() for key, value in experiment.task.state_dict().items()}


def test_the_fast_loop_and_lightnings_loop_train_the_same_weights(tmp_path):
    """Dropout (the random stream), a scheduler (stepped once an epoch by either) and a partial last chunk."""
    overrides = ("model.dropout=0.2", "scheduler=step", "scheduler.step_size=1", "trainer.max_epochs=3", "logger=none")
    fast = build(compose_config(tmp_path / "fast", *overrides))  # (build seeds the run: build, then fit)
    assert fast.loop.startswith("the fast loop") and isinstance(fast.task, FastLoop)
    assert not fast.task.automatic_optimization and fast.datamodule.serve_chunks
    fast_weights = fit(fast)
    lightning = build(compose_config(tmp_path / "lightning", *overrides))
    use_lightning_loop(lightning.task, lightning.datamodule)  # as choose_loop leaves it when a flag needs it
    assert lightning.task.automatic_optimization and type(lightning.task) is type(fast.task).__bases__[1]
    lightning_weights = fit(lightning)
    assert fast.trainer.global_step == lightning.trainer.global_step == 3 * BATCHES
    for key, value in fast_weights.items():
        torch.testing.assert_close(lightning_weights[key], value, rtol=0, atol=1e-6, msg=key)
    assert fast.trainer.callback_metrics["val/acc"] == lightning.trainer.callback_metrics["val/acc"]


def plain_loop(experiment, epochs, accumulate=1, clip=None):
    """What Lightning's docs say these flags do, written as a plain PyTorch loop over the same batches."""
    task, datamodule = experiment.task, experiment.datamodule
    network = copy.deepcopy(task.net)
    optimizer = build_trusted(task.optimizer_config, "optimizer", params=list(network.parameters()))
    x, y = datamodule.splits["train"]
    sampler = EpochSampler(len(x), datamodule.shuffle_seed)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = sampler.permutation()
        batches = [order[i : i + datamodule.batch_size] for i in range(0, len(order), datamodule.batch_size)]
        for i, index in enumerate(batches):
            loss = task.compute_loss(network(x[index]), y[index]) / accumulate
            loss.backward()
            if (i + 1) % accumulate and i + 1 < len(batches):
                continue  # accumulating; the epoch's last batch steps whatever it has
            if clip == "norm":
                nn.utils.clip_grad_norm_(network.parameters(), 0.05)
            elif clip == "value":
                nn.utils.clip_grad_value_(network.parameters(), 0.002)
            optimizer.step()
            optimizer.zero_grad()
    return network.state_dict()


@pytest.mark.parametrize(
    ("overrides", "accumulate", "clip"),
    [
        (["trainer.gradient_clip_val=0.05"], 1, "norm"),
        (["trainer.gradient_clip_val=0.002", "trainer.gradient_clip_algorithm=value"], 1, "value"),
        (["trainer.accumulate_grad_batches=3"], 3, None),
        (["trainer.accumulate_grad_batches=3", "trainer.gradient_clip_val=0.05"], 3, "norm"),
    ],
)
def test_clipping_and_accumulation_match_a_plain_pytorch_loop(tmp_path, overrides, accumulate, clip):
    experiment = build(compose_config(tmp_path / "run", "trainer.max_epochs=2", "logger=none", *overrides))
    assert experiment.loop.startswith("Lightning's loop") and overrides[0] in experiment.loop
    expected = plain_loop(experiment, epochs=2, accumulate=accumulate, clip=clip)
    trained = fit(experiment)
    steps = 2 * -(-BATCHES // accumulate)  # 14 optimizer steps an epoch when accumulating 3
    assert experiment.trainer.global_step == steps
    for key, value in expected.items():
        torch.testing.assert_close(trained[f"net.{key}"], value, rtol=0, atol=1e-6, msg=key)
    unclipped = plain_loop(experiment, epochs=2, accumulate=accumulate)
    assert clip is None or not torch.allclose(unclipped["head.weight"], expected["head.weight"], atol=1e-4)


class CountBatches(L.Callback):
    def __init__(self):
        self.train = self.val = self.test = self.validations = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.train += len(batch[1])

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.val += len(batch[1])

    def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.test += len(batch[1])

    def on_validation_epoch_end(self, trainer, module):
        self.validations += not trainer.sanity_checking


def counted(tmp_path, *overrides):
    """Fit and test with a callback that counts the samples each stage saw (through Lightning's own hooks)."""
    experiment = build(compose_config(tmp_path / "run", "logger=none", "data.eval_batch_size=64", *overrides))
    counter = CountBatches()
    experiment.trainer.callbacks.append(counter)
    experiment.trainer.fit(experiment.task, datamodule=experiment.datamodule)
    experiment.trainer.test(experiment.task, datamodule=experiment.datamodule, verbose=False)
    return experiment, counter


@pytest.mark.parametrize(
    ("overrides", "steps", "train", "val", "test", "validations"),
    [
        # a quarter of 40 mini-batches of 32, then a share of the 270 validation / test images in batches of 64
        (["trainer.limit_train_batches=0.25", "trainer.limit_val_batches=2", "trainer.limit_test_batches=0.5"],
         10, 320, 128, 128, 1),
        (["trainer.limit_train_batches=3", "trainer.val_check_interval=1"], 3, 96, 3 * 270, 270, 3),
        (["trainer.val_check_interval=0.5"], BATCHES, 1257, 2 * 270, 270, 2),
        (["trainer.fast_dev_run=true"], 1, 32, 64, 64, 1),
        (["trainer.fast_dev_run=3"], 3, 96, 192, 192, 1),
        (["trainer.overfit_batches=2"], 2, 64, 128, 270, 1),
        (["trainer.max_steps=7"], 7, 224, 0, 270, 0),
    ],
)  # fmt: skip
def test_batch_counting_flags_count_mini_batches(tmp_path, overrides, steps, train, val, test, validations):
    experiment, counter = counted(tmp_path, "trainer.max_epochs=1", *overrides)
    assert experiment.loop.startswith("Lightning's loop")
    assert experiment.trainer.global_step == steps
    assert (counter.train, counter.val, counter.test, counter.validations) == (train, val, test, validations)


def test_the_sanity_check_counts_validation_mini_batches(tmp_path):
    experiment, counter = counted(tmp_path, "trainer.max_epochs=1", "trainer.num_sanity_val_steps=2")
    assert "num_sanity_val_steps=2" in experiment.loop
    assert counter.val == 2 * 64 + 270 and counter.validations == 1


def test_overfit_batches_trains_on_the_same_batches_every_epoch(tmp_path):
    experiment = build(compose_config(tmp_path / "run", "logger=none", "trainer.max_epochs=30",
                                      "trainer.overfit_batches=1", "optimizer.lr=0.01"))  # fmt: skip
    fit(experiment)
    assert experiment.trainer.callback_metrics["train/acc"] == 1.0  # 32 images learnt by heart
    assert experiment.trainer.callback_metrics["val/acc"] < 0.9  # and validated on those (overfit_batches=1) alone


@pytest.mark.parametrize("loop", ["fast", "lightning"])
def test_log_every_n_steps_gives_a_per_step_loss_curve_in_either_loop(tmp_path, loop):
    overrides = ["trainer.max_epochs=2", "trainer.log_every_n_steps=5", "logger=[tensorboard,csv]"]
    if loop == "lightning":
        overrides.append("trainer.max_steps=1000")  # more than 2 epochs take: no change but Lightning's loop
    result = train(compose_config(tmp_path / "run", *overrides))
    assert result["loop"].startswith("the fast loop" if loop == "fast" else "Lightning's loop")
    steps = [event.step for event in read_events(tmp_path / "run").Scalars("train/loss_step")]
    assert steps == list(range(4, 2 * BATCHES, 5))  # Lightning logs step n-1, 2n-1, ... (counted from 0)
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows if row["train/loss_step"]] == steps
    # the test metrics after the mini-batches trained, where Lightning's loop logs them, in either loop
    assert [int(row["step"]) for row in rows if row["test/acc"]] == [2 * BATCHES]
    assert "step" not in result["metrics"] and "test/acc" in result["metrics"]


@pytest.mark.parametrize("loop", ["fast", "lightning"])
def test_the_learning_rate_monitor_logs_at_the_mini_batches_trained_in_either_loop(tmp_path, loop):
    overrides = ["trainer.max_epochs=2", "logger=csv", "callbacks=[default,lr_monitor]", "scheduler=step",
                 "scheduler.step_size=1"]  # fmt: skip
    if loop == "lightning":
        overrides.append("trainer.max_steps=1000")  # more than 2 epochs take: no change but Lightning's loop
    result = train(compose_config(tmp_path / "run", *overrides))
    assert result["loop"].startswith("the fast loop" if loop == "fast" else "Lightning's loop")
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as handle:
        rates = [(int(row["step"]), float(row["lr-Adam"])) for row in csv.DictReader(handle) if row.get("lr-Adam")]
    assert [step for step, _ in rates] == [0, BATCHES]  # each epoch's start, in mini-batches
    assert rates[1][1] == pytest.approx(rates[0][1] * 0.1)  # (the step scheduler's gamma)


def test_a_callback_acting_on_every_batch_gets_lightnings_loop(tmp_path):
    experiment = build(compose_config(tmp_path / "run", "logger=none", "trainer.max_epochs=1"))
    assert experiment.loop.startswith("the fast loop")
    cfg = compose_config(tmp_path / "run2", "logger=none", "trainer.max_epochs=1", "callbacks=[figures,lr_monitor]",
                         "+callbacks.checkpoint_steps._target_=lightning.pytorch.callbacks.ModelCheckpoint",
                         "+callbacks.checkpoint_steps.every_n_train_steps=10")  # fmt: skip
    assert "the ModelCheckpoint callback acts on every batch" in build(cfg).loop


@pytest.mark.parametrize(
    ("option", "epochs", "steps"), [("fdr", 1, 1), ("limit", 3, 3 * 4), ("overfit", 50, 50 * 3), ("profiler", 1, 40)]
)
def test_the_debug_options_run_end_to_end(tmp_path, caplog, option, epochs, steps):
    caplog.set_level(logging.INFO)
    result = train(compose_config(tmp_path / "run", f"debug={option}", "logger=csv"))
    assert result["status"] == "completed" and result["loop"].startswith("Lightning's loop")
    assert result["epochs"] == epochs and "test/acc" in result["metrics"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if option == "fdr":  # Lightning writes no checkpoint and no logs; tested on the last weights
        assert not last.exists() and not (tmp_path / "run" / "csv" / "metrics.csv").exists()
    else:
        assert torch.load(last, weights_only=True)["global_step"] == steps
    if option == "overfit":
        assert result["metrics"]["train/acc"] == 1.0  # 3 mini-batches learnt by heart
    if option == "profiler":
        assert "FIT Profiler Report" in caplog.text


def test_a_share_lightning_refuses_once_it_sees_the_data_is_one_line(tmp_path):
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "train", f"hydra.run.dir={tmp_path / 'run'}",
         "trainer.limit_val_batches=0.1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert (
        process.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: trainer: Lightning refuses these settings: You requested to check 0.1 of the `val_dataloader`"
        )
    )


def test_callbacks_and_task_hooks_that_act_per_batch_or_count_steps_get_lightnings_loop(tmp_path):
    from lightning.pytorch.callbacks import GradientAccumulationScheduler, LambdaCallback, LearningRateMonitor

    from hyperlab.tasks import ClassificationTask
    from hyperlab.tasks.loop import lightning_loop_reasons, trainer_values

    experiment = build(compose_config(tmp_path / "run", "logger=none", "trainer.max_epochs=1"))
    task, data = experiment.task, experiment.datamodule
    values = trainer_values(experiment.cfg.trainer)
    assert lightning_loop_reasons(values, [], task, data) == []
    for callback in (LambdaCallback(on_train_batch_end=print), GradientAccumulationScheduler({0: 2}),
                     LearningRateMonitor(logging_interval="step")):  # fmt: skip
        assert lightning_loop_reasons(values, [callback], task, data) == [
            f"the {type(callback).__name__} callback acts on every batch"
        ]
    assert lightning_loop_reasons(values, [LearningRateMonitor(logging_interval="epoch")], task, data) == []

    class Hooked(ClassificationTask):
        def on_train_batch_end(self, outputs, batch, batch_idx):
            pass

    hooked = Hooked(task.hparams.network, task.hparams.optimizer, {}, 10, task.hparams.class_names)
    assert lightning_loop_reasons(values, [], hooked, data) == ["Hooked.on_train_batch_end"]

    class OwnStep(ClassificationTask):  # (the fast loop's training_step would replace it, unseen)
        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx)

    own = OwnStep(task.hparams.network, task.hparams.optimizer, {}, 10, task.hparams.class_names)
    assert lightning_loop_reasons(values, [], own, data) == ["OwnStep.training_step"]


def test_the_epoch_metrics_share_one_step_axis_in_either_loop(tmp_path):
    """Epoch metrics are logged at the step count of mini-batches in both loops, the figures at the curves' end."""
    steps = {}
    for loop, extra in (("fast", []), ("lightning", ["trainer.max_steps=1000"])):
        train(compose_config(tmp_path / loop, "trainer.max_epochs=2", "callbacks=figures", *extra))
        steps[loop] = (
            [event.step for event in read_events(tmp_path / loop).Scalars("val/acc")],
            read_events(tmp_path / loop).Images("figures/confusion_matrix")[0].step,
        )
    assert steps["fast"] == steps["lightning"] == ([BATCHES - 1, 2 * BATCHES - 1], 2 * BATCHES - 1)


@pytest.mark.parametrize("loop", ["fast", "lightning"])
def test_a_resumed_run_ends_with_the_weights_and_schedule_of_an_uninterrupted_one(tmp_path, loop):
    common = ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5", "logger=none"]
    common += ["trainer.gradient_clip_val=1e9"] if loop == "lightning" else []  # (clipping nothing)
    assert train(compose_config(tmp_path / "whole", "trainer.max_epochs=4", *common))["loop"].startswith(
        "Lightning's" if loop == "lightning" else "the fast"
    )
    train(compose_config(tmp_path / "parts", "trainer.max_epochs=2", *common))
    train(compose_config(tmp_path / "parts", "trainer.max_epochs=4", "ckpt_path=last", *common))
    whole, parts = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True) for run in ("whole", "parts")
    )
    assert parts["global_step"] == whole["global_step"] == 4 * BATCHES
    assert parts["lr_schedulers"][0]["_last_lr"] == whole["lr_schedulers"][0]["_last_lr"] == [0.001 / 16]
    for key, value in whole["state_dict"].items():
        assert torch.equal(parts["state_dict"][key], value), key


def test_with_augmentation_and_dropout_the_two_loops_still_train_the_same_weights(tmp_path, mnist_root):
    """Augmentation draws from a stream of its own (seeded per epoch), dropout from torch's."""
    overrides = ("experiment=mnist_mlp", f"data.root={mnist_root}", "data.download=false", "data.augment=true",
                 "model.dropout=0.3", "trainer.max_epochs=2", "logger=none", "callbacks=default")  # fmt: skip
    fast = build(compose_config(tmp_path / "fast", *overrides))
    fast_weights = fit(fast)
    lightning = build(compose_config(tmp_path / "lightning", *overrides))
    use_lightning_loop(lightning.task, lightning.datamodule)
    lightning_weights = fit(lightning)
    for key, value in fast_weights.items():
        torch.testing.assert_close(lightning_weights[key], value, rtol=0, atol=1e-6, msg=key)
