"""hyperlab's tasks in a Lightning script of your own: any LightningDataModule or plain DataLoader of (x, y)
batches trains, validates, tests and predicts, with Lightning's loop; `trainer.predict` gives class probabilities
or values."""

import lightning as L
import torch
from helpers import compose_config
from torch.utils.data import DataLoader, TensorDataset

from hyperlab.experiment import build
from hyperlab.tasks import ClassificationTask, RegressionTask

NETWORK = {"_target_": "hyperlab.networks.MLP", "input_shape": [2], "hidden": 16, "depth": 1, "taper": 1.0,
           "dropout": 0.0, "activation": "relu", "batchnorm": False, "init": "default"}  # fmt: skip
ADAM = {"_target_": "torch.optim.Adam", "lr": 0.05}


def blobs(n, seed):
    """Three well-separated 2-D clusters."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=generator)
    centres = torch.tensor([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    return centres[y] + torch.randn(n, 2, generator=generator), y


class OwnData(L.LightningDataModule):
    """A datamodule as Lightning's docs write one: TensorDatasets, DataLoaders, the default collation."""

    def setup(self, stage):
        self.train, self.val, self.test = (TensorDataset(*blobs(n, seed)) for n, seed in ((600, 0), (150, 1), (150, 2)))

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=64)

    def predict_dataloader(self):
        return DataLoader(self.test.tensors[0], batch_size=64)  # inputs alone


def trainer(**options):
    return L.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **options)  # fmt: skip


def test_a_task_trains_tests_and_predicts_on_your_own_datamodule():
    L.seed_everything(0)
    task = ClassificationTask(NETWORK, ADAM, {}, num_classes=3, class_names=["a", "b", "c"])
    assert task.automatic_optimization  # Lightning's loop unless hyperlab's entry point chooses the fast one
    run = trainer(gradient_clip_val=1.0, accumulate_grad_batches=2)
    data = OwnData()
    run.fit(task, datamodule=data)
    assert run.global_step == 5 * 10  # 19 batches an epoch, stepped every 2 (and on the last)
    assert run.callback_metrics["val/acc"] > 0.95
    (tested,) = run.test(task, datamodule=data, verbose=False)
    assert tested["test/acc"] > 0.95
    batches = run.predict(task, datamodule=data)
    probabilities = torch.cat(batches)
    assert probabilities.shape == (150, 3) and torch.allclose(probabilities.sum(1), torch.ones(150))
    assert (probabilities.argmax(1) == data.test.tensors[1]).float().mean() > 0.95


def test_a_regression_task_on_plain_dataloaders_predicts_in_the_targets_units():
    L.seed_everything(0)
    x = torch.rand(400, 2) * 10
    y = (3 * x[:, :1] - 2 * x[:, 1:] + 5) * 100 + 1000  # big units: standardised for learning
    mean, std = float(y.mean()), float(y.std())
    task = RegressionTask({**NETWORK, "depth": 0}, ADAM, {}, num_targets=1, loss="mse", target_mean=mean,
                          target_std=std)  # fmt: skip
    train = DataLoader(TensorDataset(x, (y - mean) / std), batch_size=16, shuffle=True)
    run = trainer(max_steps=600)
    run.fit(task, train_dataloaders=train)
    (predicted,) = run.predict(task, dataloaders=DataLoader(TensorDataset(x[:8], y[:8]), batch_size=8))
    torch.testing.assert_close(predicted, y[:8], rtol=0.01, atol=5.0)


def test_trainer_predict_on_hyperlabs_own_datamodule(tmp_path):
    experiment = build(compose_config(tmp_path / "run", "trainer.max_epochs=3", "logger=none"))
    experiment.trainer.fit(experiment.task, datamodule=experiment.datamodule)
    batches = experiment.trainer.predict(experiment.task, datamodule=experiment.datamodule)
    probabilities = torch.cat(batches)
    test_x, test_y = experiment.datamodule.splits["test"]
    assert probabilities.shape == (len(test_x), 10)
    assert (probabilities.argmax(1) == test_y).float().mean() > 0.8
