"""Classification: cross-entropy over `num_classes` logits, or one logit with BCE when there are two classes."""

import math
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryF1Score, MulticlassAccuracy, MulticlassF1Score

from hyperlab.tasks.base import Task


class ClassificationTask(Task):
    """Logs loss, accuracy and macro F1 per epoch for train, val and test."""

    kind = "classification"
    metric_modes = {"loss": "min", "acc": "max", "f1": "max"}
    default_monitor = "acc"
    headline = "acc"

    def __init__(self, network: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any],
                 num_classes: int, class_names: list[str]) -> None:  # fmt: skip
        binary = num_classes == 2
        if binary:
            metrics = MetricCollection(
                {"acc": BinaryAccuracy(validate_args=False), "f1": BinaryF1Score(validate_args=False)}
            )
        else:
            metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False),
                    "f1": MulticlassF1Score(num_classes, average="macro", validate_args=False),
                }
            )
        super().__init__(network, optimizer, scheduler, num_outputs=1 if binary else num_classes, metrics=metrics)
        self.save_hyperparameters()
        self.binary = binary
        self.set_aside(loss_fn=nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss())

    @staticmethod
    def data_arguments(datamodule: Any) -> dict[str, Any]:
        """The task's arguments that come from the data."""
        return {"num_classes": datamodule.num_classes, "class_names": datamodule.class_names}

    def compute_loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.binary:
            return self.loss_fn(output.squeeze(-1), target.float())
        return self.loss_fn(output, target)

    def guess_loss(self) -> float:
        """Cross-entropy of the same probability for every class."""
        return math.log(self.hparams.num_classes)

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return (output.squeeze(-1).sigmoid() if self.binary else output), target

    def predictions(self, x: Tensor) -> Tensor:
        return self.predict_proba(x)

    @torch.no_grad()
    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities, one column per class (two for a binary task)."""
        output = self(x)
        if self.binary:
            positive = output.squeeze(-1).sigmoid()
            return torch.stack([1 - positive, positive], dim=1)
        return output.softmax(dim=1)
