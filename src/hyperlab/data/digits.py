"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images that need no download."""

from typing import Any

import torch
from sklearn.datasets import load_digits

from hyperlab.data.base import Split, TensorDataModule, split_indices
from hyperlab.data.options import DigitsDataModuleOptions


class DigitsDataModule(TensorDataModule):
    """The UCI digits as 1x8x8 images scaled to [0, 1] (light ink on dark, like MNIST); stratified splits."""

    kind = "classification"
    options = DigitsDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.class_names = [str(digit) for digit in range(10)]

    def load(self) -> dict[str, Split]:
        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).div_(16).unsqueeze(1)
        y = torch.tensor(digits.target, dtype=torch.long)
        index = split_indices(len(y), self.val_fraction, self.test_fraction, self.seed, y, self.folds, self.fold)
        return {split: (x[i], y[i]) for split, i in index.items()}
