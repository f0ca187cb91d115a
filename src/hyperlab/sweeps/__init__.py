"""Sweeps: the homework table of a sweep (table.py), the callback that writes it (callback.py), hyperlab's Optuna
sweeper (optuna.py). Nothing is imported here: Hydra imports the sweeper whenever it starts (run folders:
hyperlab.run_folder)."""
