"""Session 1's generated data: a noisy line and a noisy linear function of several features (regression), and 2-D
points in a few classes (classification)."""

from typing import Any

import torch
from sklearn.datasets import make_classification

from hyperlab.data.base import Split, TensorDataModule, split_indices
from hyperlab.data.options import BlobsDataModuleOptions, LineDataModuleOptions, MultilinearDataModuleOptions


class LineDataModule(TensorDataModule):
    """`num_points` points of y = gradient * x + intercept + N(0, noise^2), x uniform in [0, x_max]."""

    kind = "regression"
    reference_label = "least-squares fit of the training data"
    options = LineDataModuleOptions

    def load(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.rand(self.num_points, 1, generator=generator) * self.x_max
        y = self.gradient * x + self.intercept + torch.randn(x.shape, generator=generator) * self.noise
        index = split_indices(self.num_points, self.val_fraction, self.test_fraction, self.seed)
        return {split: (x[i], y[i]) for split, i in index.items()}

    def reference_parameters(self) -> dict[str, float]:
        """The least-squares line through the training points: the best a line model can learn from them."""
        x, y = self.splits["train"]
        design = torch.cat([x, torch.ones_like(x)], dim=1).double()
        gradient, intercept = torch.linalg.lstsq(design, y.double()).solution.flatten().tolist()
        return {"gradient": gradient, "intercept": intercept}


class BlobsDataModule(TensorDataModule):
    """scikit-learn's `make_classification` in 2-D: one cluster per class, `class_sep` apart (the session's
    challenge uses 300 points, 3 classes, class_sep=2.0)."""

    kind = "classification"
    options = BlobsDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.class_names = [str(c) for c in range(options["num_classes"])]

    def load(self) -> dict[str, Split]:
        features, labels = make_classification(
            n_samples=self.num_samples,
            n_features=2,
            n_informative=2,
            n_redundant=0,
            n_classes=len(self.class_names),
            n_clusters_per_class=1,
            class_sep=self.class_sep,
            random_state=self.seed,
        )
        x = torch.tensor(features, dtype=torch.float32)
        y = torch.tensor(labels, dtype=torch.long)
        index = split_indices(len(y), self.val_fraction, self.test_fraction, self.seed, labels=y)
        return {split: (x[i], y[i]) for split, i in index.items()}


class MultilinearDataModule(TensorDataModule):
    """Session 1's homework: y = x . weights + bias + N(0, noise^2), x ~ N(0, 1) in `num_features` columns; the
    weights are drawn from U(-2, 2) by the seed unless given."""

    kind = "regression"
    reference_label = "the true value"
    options = MultilinearDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        generator = torch.Generator().manual_seed(self.seed)
        drawn = torch.rand(self.num_features, generator=generator) * 4 - 2
        given = self.weights  # (check_options: num_features of them, or null)
        self.weights = torch.tensor(given, dtype=torch.float32) if given else drawn
        self.generator = generator

    def load(self) -> dict[str, Split]:
        x = torch.randn(self.num_samples, len(self.weights), generator=self.generator)
        y = x @ self.weights + self.bias + torch.randn(self.num_samples, generator=self.generator) * self.noise
        index = split_indices(self.num_samples, self.val_fraction, self.test_fraction, self.seed)
        return {split: (x[i], y[i].unsqueeze(1)) for split, i in index.items()}

    def reference_parameters(self) -> dict[str, float]:
        """The weights the data was drawn with, named as a linear model (`model.depth=0`) names its own."""
        reference = {f"head.weight.{i}": float(w) for i, w in enumerate(self.weights)}
        reference["head.bias"] = float(self.bias)
        return reference
