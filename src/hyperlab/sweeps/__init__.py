"""Sweeps: run-folder names made of the swept values, the homework table, and the callback that writes it."""

from hyperlab.sweeps.callback import SweepSummary
from hyperlab.sweeps.naming import register_resolver, run_name
from hyperlab.sweeps.table import write_summary

__all__ = ["SweepSummary", "register_resolver", "run_name", "write_summary"]
