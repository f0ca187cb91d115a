"""Callbacks of our own: figures and parameter tracking (checkpoints and early stopping are Lightning's)."""

from hyperlab.callbacks.figures import ClassificationFigures, DecisionRegions, RegressionFigures, publish
from hyperlab.callbacks.parameters import ParameterTracker

__all__ = ["ClassificationFigures", "DecisionRegions", "RegressionFigures", "ParameterTracker", "publish"]
