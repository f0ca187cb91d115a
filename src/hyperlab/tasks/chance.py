"""Whether a run learned anything: a classifier whose validation accuracy is no better than always answering the
most common class, or whose loss is what guessing gives; a regression whose R² is no better than predicting the
mean. Such a run completed, but its table row must say that it is at chance level (a learning rate too high or too
low, typically), not look like a result.

A leaf: torch only.
"""

import math
from typing import Any

import torch
from torch import Tensor

MARGIN = 0.02  # how close to chance counts as chance (accuracy points; R²; a fraction of the guessing loss)


def chance_note(kind: str, labels: Tensor | None, history: list[dict[str, Any]]) -> str:
    """A note for a run at chance level ('' otherwise): judged by its best validation (`history`: every validation's
    metrics) against the validation split's `labels` (None: unknown)."""
    if kind == "regression":
        r2 = best(history, "val/r2", max)
        if r2 is not None and r2 <= MARGIN:
            return f"at chance level: val/r2 {r2:.4f}, no better than predicting the mean (0)"
        return ""
    if kind != "classification" or labels is None or labels.numel() == 0:
        return ""
    counts = torch.bincount(labels.flatten().long()).double()
    shares = counts[counts > 0] / counts.sum()
    majority = float(shares.max())
    guessing = float(-(shares * shares.log()).sum())  # the loss of predicting every class's share
    accuracy, loss = best(history, "val/acc", max), best(history, "val/loss", min)
    low_accuracy = accuracy is not None and accuracy <= majority + MARGIN
    guessing_loss = loss is not None and math.isfinite(loss) and loss >= guessing * (1 - MARGIN)
    if not (low_accuracy or guessing_loss):
        return ""
    said = []
    if accuracy is not None:
        said.append(f"val/acc {accuracy:.4f} (always answering the most common class: {majority:.4f})")
    if loss is not None:
        said.append(f"val/loss {loss:.4f} (guessing: {guessing:.4f})")
    return "at chance level: " + ", ".join(said)


def best(history: list[dict[str, Any]], metric: str, better: Any) -> float | None:
    values = [row[metric] for row in history if isinstance(row.get(metric), (int, float))]
    values = [value for value in values if math.isfinite(value)]
    return float(better(values)) if values else None
