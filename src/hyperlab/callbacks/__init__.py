"""Callbacks of our own: figures, parameter tracking, the best score so far and an Optuna trial's pruning
(checkpoints and early stopping are Lightning's)."""

from hyperlab.callbacks.best_score import BestScore
from hyperlab.callbacks.figures import ClassificationFigures, DecisionRegions, RegressionFigures, publish
from hyperlab.callbacks.parameters import ParameterTracker
from hyperlab.callbacks.pruning import OptunaPruning, pruned_reason

__all__ = [
    "BestScore",
    "ClassificationFigures",
    "DecisionRegions",
    "RegressionFigures",
    "OptunaPruning",
    "ParameterTracker",
    "publish",
    "pruned_reason",
]
