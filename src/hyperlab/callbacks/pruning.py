"""Pruning for a run of hyperlab's Optuna search (conf/hparams_search/optuna.yaml): optuna-integration's Lightning
callback, given the run's trial in the study the sweeper keeps (hyperlab.sweeps.optuna). After each validation it
reports the monitored metric to the trial; when the study's pruner finds the trial hopeless, the run stops at that
epoch's end and is recorded as `pruned` (its best checkpoint is kept, not tested). Optuna is imported only by a run
that has a trial.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate


class Pruned(Exception):
    """The study's pruner stopped the run's trial."""


class OptunaPruning(L.Callback):
    """`trial`: the trial's number in the study (null: the run is not one of a search's, and nothing is reported);
    `monitor`: the metric reported."""

    def __init__(self, trial: int | None, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.pruning: Any = None  # optuna_integration's PyTorchLightningPruningCallback, while fitting
        self.reason = ""  # why the trial was pruned, once it was

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.trial is not None and stage == "fit" and self.pruning is None:
            from optuna_integration import PyTorchLightningPruningCallback

            self.pruning = PyTorchLightningPruningCallback(study_trial(self.trial), self.monitor)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruning is not None:
            self.pruning.on_fit_start(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruning is None or trainer.sanity_checking:
            return
        import optuna

        try:
            self.pruning.on_validation_end(trainer, pl_module)
        except optuna.TrialPruned as pruned:  # stop at this epoch's end: its checkpoints are written first
            self.reason = str(pruned)
            trainer.should_stop = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruning is None:
            return
        with as_pruned():  # (with several processes, optuna-integration's callback stops them and says why here)
            self.pruning.check_pruned()
        if self.reason:
            raise Pruned(self.reason)


@contextmanager
def as_pruned() -> Iterator[None]:
    """Optuna's TrialPruned as hyperlab's Pruned (which hyperlab.train records)."""
    import optuna

    try:
        yield
    except optuna.TrialPruned as pruned:
        raise Pruned(str(pruned)) from None


def study_trial(number: int) -> Any:
    """Trial `number` of the study this run's sweeper keeps (its storage, name and pruner: hydra.sweeper)."""
    import optuna

    from hyperlab.sweeps.optuna import default_storage, open_storage

    hydra = HydraConfig.get()
    storage = open_storage(hydra.sweeper.storage or default_storage(hydra.sweep.dir))
    pruner = instantiate(hydra.sweeper.pruner) if hydra.sweeper.get("pruner") else optuna.pruners.NopPruner()
    study = optuna.load_study(study_name=hydra.sweeper.study_name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(hydra.sweeper.study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))
