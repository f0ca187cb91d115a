"""Short real trainings of the session-1 presets reach the course's numbers and write the whole run folder."""

import json
import sys

import commands
import lightning as L
import pytest
import torch
from helpers import compose_config, curve, read_events, scalar_values

from hyperlab.experiment import build
from hyperlab.tasks import ClassificationTask
from hyperlab.train import train


def test_line_learns_the_least_squares_gradient_and_intercept(make_config, tmp_path):
    result = train(make_config("experiment=line"))
    learned = result["metrics"]
    reference = result["reference_parameters"]
    assert abs(learned["params/gradient"] - reference["gradient"]) < 0.2
    assert abs(learned["params/intercept"] - reference["intercept"]) < 1.0
    # and the fit is close to the line the data was drawn from
    assert abs(reference["gradient"] - 2) < 0.5 and abs(reference["intercept"] - 10) < 2
    # the convergence curve is in TensorBoard: one value per epoch, ending at the printed value
    gradients = scalar_values(tmp_path / "run", "params/gradient")
    assert len(gradients) == 150
    assert gradients[-1] == pytest.approx(learned["params/gradient"], abs=1e-4)
    intercepts = scalar_values(tmp_path / "run", "params/intercept")
    assert abs(intercepts[0] - reference["intercept"]) > 5 > abs(intercepts[-1] - reference["intercept"])
    # exactly the two parameters of the course's model
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert sorted(checkpoint["state_dict"]) == ["net.gradient", "net.intercept"]


def test_blobs_reaches_95_percent_validation_accuracy_and_draws_the_regions(make_config, tmp_path):
    result = train(make_config("experiment=blobs"))
    assert result["metrics"]["val/acc"] >= 0.95
    assert result["metrics"]["test/acc"] >= 0.95
    png = tmp_path / "run" / "figures" / "decision_regions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "figures/decision_regions" in read_events(tmp_path / "run").Tags()["images"]


def test_digits_reaches_95_percent_and_writes_the_run_folder(make_config, tmp_path):
    run = tmp_path / "run"
    result = train(make_config())  # the default experiment
    assert result["name"] == "digits"
    assert result["metrics"]["test/acc"] >= 0.95
    assert result["wall_time_s"] < 60

    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert result["best_checkpoint"] == str(run / "checkpoints" / "best.ckpt")
    assert 1 <= result["best_epoch"] <= result["epochs"] == 30
    written = json.loads((run / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result))
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "test/loss", "test/acc", "test/f1"):
        assert key in written["metrics"]
    assert "model:" in (run / "config.yaml").read_text()

    for metric in ("train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "test/acc", "test/loss"):
        assert curve(run, metric)
    assert len(curve(run, "val/acc")) == 30  # once per epoch
    assert curve(run, "test/acc") == [pytest.approx(result["metrics"]["test/acc"], abs=1e-5)]
    assert [row["epoch"] for row in result["history"]] == [float(epoch) for epoch in range(1, 31)]
    assert [row["val/acc"] for row in result["history"]] == pytest.approx(curve(run, "val/acc"), abs=1e-5)
    assert result["hparams"]["optimizer"] == "Adam" and result["hparams"]["model.hidden"] == 128


def test_the_same_seed_gives_the_same_metrics(tmp_path):
    def metrics(folder, seed):
        cfg = compose_config(tmp_path / folder, f"seed={seed}", "trainer.max_epochs=3", "logger=none")
        return train(cfg)["metrics"]

    first, again, other = metrics("a", 3), metrics("b", 3), metrics("c", 4)
    assert first == again
    assert first != other


def test_two_classes_use_one_logit_and_bce(make_config):
    result = train(make_config("experiment=blobs", "data.num_classes=2", "trainer.max_epochs=20"))
    task = ClassificationTask.load_from_checkpoint(result["best_checkpoint"], weights_only=True)
    assert task.net.head.out_features == 1
    assert isinstance(task.loss_fn, torch.nn.BCEWithLogitsLoss)
    assert result["metrics"]["test/acc"] >= 0.9
    probabilities = task.predict_proba(torch.zeros(4, 2))
    assert probabilities.shape == (4, 2) and torch.allclose(probabilities.sum(1), torch.ones(4))


def test_l1_loss_and_a_linear_mlp_fit_the_line(make_config):
    result = train(make_config("experiment=line", "task.loss=l1", "model=mlp", "model.depth=0"))
    assert result["metrics"]["test/r2"] > 0.8


def test_a_checkpoint_rebuilds_its_task_from_plain_hyper_parameters(make_config):
    result = train(make_config("trainer.max_epochs=2"))
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["network"]["option"] == "mlp"  # (an option of conf/model/, not a class)
    task = ClassificationTask.load_from_checkpoint(result["best_checkpoint"], weights_only=True)
    assert task.hparams.class_names == [str(digit) for digit in range(10)]
    assert task(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_the_command_line_prints_where_to_look_and_never_shares_a_folder(tmp_path):
    def run():
        return commands.run(
            [sys.executable, "-m", "hyperlab", "train", "trainer.max_epochs=2", f"paths.log_dir={tmp_path}"],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip

    output = run().stdout
    run()
    assert "test/acc" in output and "best checkpoint" in output and "tensorboard --logdir" in output
    runs = sorted(path.parent for path in (tmp_path / "digits").glob("*/metrics.json"))
    assert len(runs) == 2 and (tmp_path / "digits" / "summary").is_dir()  # (and the folder's TensorBoard record)
    for folder in runs:
        for name in (".hydra/config.yaml", "config.yaml", "metrics.json", "checkpoints/best.ckpt", "train.log"):
            assert (folder / name).is_file(), name
    assert str(runs[0]) not in output or str(runs[1]) not in output


def test_a_callback_with_a_backward_hook_still_gets_every_call(tmp_path):
    """The inner loop calls loss.backward() directly only when Lightning's hooks have nobody listening."""

    class CountBackward(L.Callback):
        def __init__(self):
            self.calls = 0

        def on_after_backward(self, trainer, pl_module):
            self.calls += 1

    quiet = build(compose_config(tmp_path / "quiet", "trainer.max_epochs=1", "logger=none"))
    quiet.trainer.fit(quiet.task, datamodule=quiet.datamodule)
    assert quiet.task.direct_backward

    built = build(compose_config(tmp_path / "hooked", "trainer.max_epochs=1", "logger=none"))
    counter = CountBackward()
    built.trainer.callbacks.append(counter)
    built.trainer.fit(built.task, datamodule=built.datamodule)
    assert not built.task.direct_backward
    assert counter.calls == 40 == built.trainer.global_step  # the fast loop: a backward per mini-batch
