"""Weights & Biases (conf/logger/wandb.yaml; the optional extra: pip install -e ".[wandb]").

Lightning's WandbLogger, for hyperlab's runs: named after its run folder, and given the run's end-of-run record like
every logger (`train.record_in_logger`: the hyper-parameters, the final metrics as `hp/...`), then `finish`, which
puts the run's status in its summary and closes the wandb run. Lightning's logger leaves the run open until the
process ends, and a second WandbLogger in the same process (a sweep's next run) would log into it.
"""

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

FINISHED = ("completed", "pruned")  # statuses wandb is told ended well (exit code 0); the others: 1


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger (every argument as Lightning's docs say; the others go to `wandb.init`); `name=None`:
    the run folder's name (`save_dir`, e.g. `2026-01-02_10-00-00-123456`, or a sweep's `lr=0.01,depth=2`)."""

    def __init__(self, *args: Any, name: str | None = None, save_dir: str = ".", **kwargs: Any) -> None:
        super().__init__(*args, name=name or Path(save_dir).resolve().name, save_dir=save_dir, **kwargs)
        finish_unfinished()

    @rank_zero_only
    def finish(self, status: str) -> None:
        """The run's status into its summary, and the wandb run closed (its files complete: wandb-summary.json)."""
        run = self.experiment
        run.summary["status"] = status
        run.finish(exit_code=0 if status in FINISHED else 1)


def finish_unfinished() -> None:
    """A wandb run left open by an earlier run of this process that ended with an error (a sweep goes on after a
    failed run) is closed as failed, so that this run gets a wandb run of its own."""
    import wandb

    if wandb.run is not None:
        wandb.run.finish(exit_code=1)
