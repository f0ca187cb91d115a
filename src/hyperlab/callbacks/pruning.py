"""Pruning for a run of hyperlab's Optuna search (conf/hparams_search/optuna.yaml): optuna-integration's Lightning
callback, given the run's trial in the study the sweeper keeps (hyperlab.sweeps.optuna). After each validation it
reports the monitored metric to the trial; when the study's pruner finds the trial hopeless, the run stops at that
epoch's end (its checkpoints written) and hyperlab.train records it as `pruned` (`pruned_reason`), its best
checkpoint kept, not tested. Optuna is imported only by a run that has a trial.
"""

from typing import Any

import lightning as L
from hydra.utils import instantiate

from hyperlab.compat import EPOCH_KEY, INTERMEDIATE_KEY, PRUNED_KEY
from hyperlab.errors import ConfigError


class OptunaPruning(L.Callback):
    """`trial`: the trial's number in the study (null: the run is not one of a search's, and nothing is reported);
    `monitor`: the metric reported. The study (its storage, study_name and pruner) is the one the run's sweeper keeps,
    given by `give_study` once the callback is built, as plain values (ddp_spawn's processes get a copy)."""

    def __init__(self, trial: int | None, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.study: dict[str, Any] = {}
        self.pruning: Any = None  # optuna_integration's PyTorchLightningPruningCallback, while fitting
        self.reason = ""  # why the trial was pruned, once it was

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.study and stage == "fit" and self.pruning is None:
            from optuna_integration import PyTorchLightningPruningCallback

            self.pruning = PyTorchLightningPruningCallback(self.open_trial(), self.monitor)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruning is not None:
            self.pruning.on_fit_start(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruning is None or trainer.sanity_checking:
            return
        import optuna

        try:  # (with several processes, optuna-integration stops them all itself and records why: pruned_reason)
            self.pruning.on_validation_end(trainer, pl_module)
        except optuna.TrialPruned as pruned:  # stop at this epoch's end: its checkpoints are written first
            self.reason = str(pruned)
            trainer.should_stop = True

    def pruned_reason(self, trainer: L.Trainer) -> str:
        """Why the trial was pruned ("" if it was not): this process's word, or, with several processes, what
        optuna-integration recorded in the trial (whose values rank 0 then reports, for the pruner to compare with)."""
        if self.reason or not self.study:
            return self.reason
        trial = self.open_trial()
        attributes = trial.storage.get_trial_system_attrs(self.trial_id(trial.storage))  # (as optuna-integration does)
        if trainer.is_global_zero:
            for epoch, score in (attributes.get(INTERMEDIATE_KEY) or {}).items():
                trial.report(score, step=int(epoch))
        return f"Trial was pruned at epoch {attributes.get(EPOCH_KEY)}." if attributes.get(PRUNED_KEY) else ""

    def open_trial(self) -> Any:
        """Trial `self.trial` of the sweeper's study."""
        import optuna

        from hyperlab.sweeps.optuna import open_storage

        storage = open_storage(self.study["storage"])
        pruner = instantiate(self.study["pruner"]) if self.study["pruner"] else optuna.pruners.NopPruner()
        study = optuna.load_study(study_name=self.study["study_name"], storage=storage, pruner=pruner)
        return optuna.trial.Trial(study, self.trial_id(storage))

    def trial_id(self, storage: Any) -> int:
        """The storage's id of trial `self.trial` (its number in the sweeper's study)."""
        study_id = storage.get_study_id_from_name(self.study["study_name"])
        return storage.get_trial_id_from_study_id_trial_number(study_id, self.trial)


def pruned_reason(trainer: L.Trainer) -> str:
    """Why the trainer's run was pruned by its Optuna trial ("" if it was not, or is no trial's)."""
    callback = next((c for c in trainer.callbacks if isinstance(c, OptunaPruning)), None)  # type: ignore[attr-defined]
    return callback.pruned_reason(trainer) if callback is not None else ""


def give_study(callbacks: list[L.Callback], study: dict[str, Any] | None) -> None:
    """Give a search's pruning callback the study its trial is in (`study`: what the command read of hydra.sweeper,
    hyperlab.cli's `search_study`). Handed to the callback, never put in the config: checkpoints and config.yaml keep
    the config, and a study's storage URL may hold a password (conf/hydra/sweeper/optuna.yaml)."""
    for callback in callbacks:
        if isinstance(callback, OptunaPruning) and callback.trial is not None:
            if not study:
                raise ConfigError(
                    f"callbacks.optuna_pruning.trial={callback.trial}: a trial's run needs its study, which "
                    "hyperlab-train -m hparams_search=optuna gives it: run the search with it"
                )
            callback.study = dict(study)
