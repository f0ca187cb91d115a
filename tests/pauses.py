"""Hooks that hold a run at one phase until a test sends it a signal (no timing luck): `HYPERLAB_PAUSE_AT` names
the phase (setup, fit, test, figures, record) and the hook touches the file `HYPERLAB_PAUSE_FILE` once it is
there. Used by tests/test_run_record.py through the config (`data._target_=pauses.PausingDigits`, ...)."""

import os
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from hyperlab.data import DigitsDataModule


def pause(phase: str, module: L.LightningModule | None = None) -> None:
    if os.environ.get("HYPERLAB_PAUSE_AT") != phase:
        return
    Path(os.environ["HYPERLAB_PAUSE_FILE"]).touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (module is not None and module.stop.signal):
        time.sleep(0.02)  # a signal's handler runs here (and raises, outside training)


class PausingDigits(DigitsDataModule):
    def setup(self, stage: str) -> None:
        pause("setup")
        super().setup(stage)


class Pause(L.Callback):
    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 0:
            pause("fit", module)

    def on_test_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        pause("test")

    def on_test_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        pause("figures")  # after the figures callbacks' own on_test_end (this one is listed last)


class PausingTensorBoardLogger(TensorBoardLogger):
    def log_hyperparams(self, *args, **kwargs) -> None:
        if kwargs.get("metrics"):  # hyperlab's end-of-run record (Lightning's own call at the start has none)
            pause("record")
        super().log_hyperparams(*args, **kwargs)
