"""Callbacks of our own: figures and parameter tracking (checkpoints and early stopping are Lightning's)."""

from hyperlab.callbacks.figures import DecisionRegions, publish
from hyperlab.callbacks.parameters import ParameterTracker

__all__ = ["DecisionRegions", "ParameterTracker", "publish"]
