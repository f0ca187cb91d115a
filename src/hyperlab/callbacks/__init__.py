"""Callbacks of our own: figures, parameter tracking and the best score so far (checkpoints and early stopping are
Lightning's)."""

from hyperlab.callbacks.best_score import BestScore
from hyperlab.callbacks.figures import ClassificationFigures, DecisionRegions, RegressionFigures, publish
from hyperlab.callbacks.parameters import ParameterTracker

__all__ = ["BestScore", "ClassificationFigures", "DecisionRegions", "RegressionFigures", "ParameterTracker", "publish"]
