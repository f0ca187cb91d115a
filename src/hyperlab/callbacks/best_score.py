"""The best value of the monitored metric so far, as a curve (`val/acc_best`): what the best checkpoint scored after
each validation, which TensorBoard's HParams tab reads as the run's result (the curve's last value)."""

import math

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from hyperlab.loggers.tensorboard import BEST_SUFFIX, epoch_end_step


class BestScore(L.Callback):
    """Logs `<monitor>_best` after every validation of the fit, for the run's first checkpoint callback that
    monitors a metric (conf/callbacks/default.yaml's model_checkpoint); nothing without one.

    The value is the better of that callback's best so far and this validation's score: the callback itself takes
    the new score in later (at the epoch's end), and a resumed run starts from the best its checkpoint restored."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        checkpoint = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)
        if checkpoint is None or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        score = trainer.callback_metrics.get(checkpoint.monitor)
        if score is None:
            return
        best = float(score)  # (one device sync per validation)
        if not math.isfinite(best):  # (a diverging run: its best so far stays the last finite one)
            return
        if checkpoint.best_model_score is not None:
            better = max if checkpoint.mode == "max" else min
            best = better(best, float(checkpoint.best_model_score))
        for logger in trainer.loggers:  # straight to the loggers: a curve, not one of the run's metrics
            logger.log_metrics({checkpoint.monitor + BEST_SUFFIX: best}, step=epoch_end_step(trainer))
