"""Sweeps: the homework table of a sweep, and the callback that writes it (run folders: hyperlab.run_folder)."""

from hyperlab.sweeps.callback import SweepSummary
from hyperlab.sweeps.table import write_summary

__all__ = ["SweepSummary", "write_summary"]
