"""Figures drawn after testing (so they show the best checkpoint): each is saved as `<run>/figures/<name>.png`
and logged to TensorBoard as the image `figures/<name>`. The test set is predicted once more for them (not
collected during `test_step`), so the task's test loop stays as lean as its training loop.

Figures are drawn with matplotlib's object API (`Figure` + Agg canvas): no pyplot state, no display needed.

A class name is drawn as plain text (`shown`): a `$` in it is a dollar sign, not the start of matplotlib's math
markup. The confusion matrix is drawn for up to `MAX_MATRIX_CLASSES` classes; with more, its figure says it is not
drawn (its cells would be too small to read, the figure too big to hold: 1200 classes took 15 GB), and the
most-confused pairs (counted per pair that occurs, not in a classes x classes matrix) show the mistakes.
"""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib.image
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from hyperlab.data.base import TensorDataModule
from hyperlab.data.loaders import batches_in
from hyperlab.loggers.tensorboard import epoch_end_step

MAX_MATRIX_CLASSES = 50  # the most classes a confusion matrix is drawn for
SHOWN_CHARACTERS = 30  # the most of a class name a figure shows


def shown(name: object) -> str:
    """A class name as figures draw it: at most `SHOWN_CHARACTERS` characters, its `$` escaped (matplotlib would take
    the text between two for math markup, and fail on one such as `$x^$`)."""
    text = str(name)
    text = text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "\u2026"
    return text.replace("$", r"\$")


def publish(trainer: L.Trainer, figure: Figure, name: str) -> Path:
    """Render `figure` once; write it as a PNG in the run folder and log it to every TensorBoard logger."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    path = Path(trainer.default_root_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, rgb)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # at the step the curves end at
            logger.experiment.add_image(f"figures/{name}", rgb, epoch_end_step(trainer), dataformats="HWC")
            logger.experiment.flush()
    return path


class DecisionRegions(L.Callback):
    """2-D classification: the class the model predicts at every point of the plane, under the data points."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        x, y = trainer.datamodule.splits["train"]
        test_x, test_y = trainer.datamodule.splits["test"]
        points = torch.cat([x, test_x])
        low, high = points.min(0).values - 1, points.max(0).values + 1
        grid_x, grid_y = torch.meshgrid(
            torch.linspace(low[0], high[0], self.resolution),
            torch.linspace(low[1], high[1], self.resolution),
            indexing="xy",
        )
        grid = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1).to(pl_module.device)
        pl_module.eval()
        regions = run_model(pl_module, pl_module.predict_proba, grid).argmax(1).reshape(grid_x.shape).cpu()
        num_classes = len(pl_module.hparams.class_names)

        figure = Figure(figsize=(6, 5))
        axes = figure.add_subplot()
        levels = np.arange(num_classes + 1) - 0.5
        axes.contourf(grid_x, grid_y, regions, levels=levels, cmap="viridis", alpha=0.35)
        axes.scatter(
            x[:, 0], x[:, 1], c=y, cmap="viridis", vmin=0, vmax=num_classes - 1, edgecolors="k", s=20, label="train"
        )
        axes.scatter(
            test_x[:, 0],
            test_x[:, 1],
            c=test_y,
            cmap="viridis",
            vmin=0,
            vmax=num_classes - 1,
            edgecolors="r",
            marker="s",
            s=30,
            label="test",
        )
        axes.set(title="Decision regions", xlabel="feature 1", ylabel="feature 2")
        axes.legend(loc="upper right")
        publish(trainer, figure, "decision_regions")


class ClassificationFigures(L.Callback):
    """After testing, for any classifier: the confusion matrix and the most-confused class pairs; for image
    data also a grid of test images with true/predicted labels (right in green, wrong in red), the most
    confidently wrong test images, and the first layer's weights (MLP) or filters (CNN) as images."""

    def __init__(self, grid_size: int, num_errors: int, num_pairs: int, num_filters: int) -> None:
        self.grid_size = grid_size
        self.num_errors = num_errors
        self.num_pairs = num_pairs
        self.num_filters = num_filters

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.kind != "classification" or not trainer.is_global_zero:
            return
        inputs, targets, probabilities = predict_all(pl_module, test_batches(trainer), pl_module.predict_proba)
        predictions = probabilities.argmax(1)
        names = list(pl_module.hparams.class_names)
        publish(trainer, confusion_matrix_figure(targets, predictions, names), "confusion_matrix")
        publish(trainer, confused_pairs_figure(targets, predictions, names, self.num_pairs), "confused_pairs")
        if inputs.dim() != 4:  # not images
            return
        grid = list(zip(targets[: self.grid_size].tolist(), predictions[: self.grid_size].tolist(), strict=True))
        titles = [f"{shown(names[t])} / {shown(names[p])}" for t, p in grid]
        colors = ["green" if t == p else "red" for t, p in grid]
        figure = image_grid(inputs[: self.grid_size], titles, colors, "Test images: true / predicted")
        publish(trainer, figure, "predictions")
        publish(trainer, errors_figure(inputs, targets, probabilities, names, self.num_errors), "errors")
        publish(trainer, first_layer_figure(pl_module.net, inputs.shape[1:], self.num_filters), "first_layer")


class RegressionFigures(L.Callback):
    """After testing a regression: each test point's predicted value against its actual one, in the target's own
    units, with the line where they are equal."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.kind != "regression" or not trainer.is_global_zero:
            return
        _, targets, predicted = predict_all(pl_module, test_batches(trainer), pl_module.predict_values)
        predicted = predicted[: self.max_points, 0]
        actual = pl_module.original_units(targets.float())[: self.max_points, 0]
        figure = Figure(figsize=(5.5, 5), layout="constrained")
        axes = figure.add_subplot()
        axes.scatter(actual, predicted, s=10, alpha=0.6)
        low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
        axes.plot([low, high], [low, high], color="tab:red", label="predicted = actual")
        axes.set(title="Test set: predicted against actual", xlabel="actual", ylabel="predicted")
        axes.legend()
        publish(trainer, figure, "predicted_vs_actual")


def test_batches(trainer: L.Trainer) -> Iterable[Any]:
    """The whole test set: with several processes, the test loader each one gets is its own share, so rank 0
    (which alone draws) reads an in-memory datamodule's test split whole."""
    if trainer.world_size > 1 and isinstance(trainer.datamodule, TensorDataModule):
        return trainer.datamodule.predict_dataloader()
    return trainer.test_dataloaders


@torch.no_grad()
def predict_all(
    pl_module: L.LightningModule, loader: Iterable[Any], predict: Callable[[Tensor], Tensor]
) -> tuple[Tensor, ...]:
    """Inputs, targets and `predict(inputs)` (class probabilities, or values) of every batch `loader` gives (the
    fast loop's chunks, or mini-batches), on the CPU."""
    pl_module.eval()
    inputs, targets, outputs = [], [], []
    for item in loader:
        for x, y in batches_in(item):
            inputs.append(x.cpu())
            targets.append(y.cpu())
            outputs.append(run_model(pl_module, predict, x).float().cpu())
    return torch.cat(inputs), torch.cat(targets), torch.cat(outputs)


def run_model(pl_module: L.LightningModule, predict: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """`predict(x)` as the Trainer runs the model: on its device, in its precision (64-true: doubles; the mixed
    precisions: under their autocast)."""
    precision = pl_module.trainer.precision_plugin
    with precision.forward_context():
        return predict(precision.convert_input(x.to(pl_module.device)))


def confusion_matrix_figure(targets: Tensor, predictions: Tensor, names: list[str]) -> Figure:
    """How often each class (a row) is predicted as each (a column), with the counts; for more than
    `MAX_MATRIX_CLASSES` classes, a figure that says it is not drawn."""
    if len(names) > MAX_MATRIX_CLASSES:
        figure = Figure(figsize=(6, 1.5))
        figure.text(0.5, 0.5, f"{len(names):,} classes: too many for a confusion matrix (drawn for at most "
                              f"{MAX_MATRIX_CLASSES})\nthe most-confused class pairs: confused_pairs.png",
                    ha="center", va="center")  # fmt: skip
        return figure
    matrix = MulticlassConfusionMatrix(len(names), sync_on_compute=False)  # rank 0's own, whole test set
    matrix.update(predictions, targets)
    size = max(5.0, 0.6 * len(names) + 2)
    figure = Figure(figsize=(size, size), layout="constrained")
    axes = figure.add_subplot()
    matrix.plot(ax=axes, labels=[shown(name) for name in names])
    axes.set_title("Confusion matrix (test set)")
    return figure


def confused_pairs_figure(targets: Tensor, predictions: Tensor, names: list[str], num_pairs: int) -> Figure:
    """The `num_pairs` most frequent mistakes: which true class is most often taken for which (counted per pair that
    occurs: no classes x classes matrix)."""
    wrong = predictions != targets
    cells, counts = torch.unique(targets[wrong] * len(names) + predictions[wrong], return_counts=True)
    order = counts.argsort(descending=True, stable=True)[:num_pairs]
    pairs = [divmod(int(cells[i]), len(names)) + (int(counts[i]),) for i in order]
    figure = Figure(figsize=(6, 0.4 * max(len(pairs), 1) + 1.5), layout="constrained")
    axes = figure.add_subplot()
    labels = [f"{shown(names[true])} taken for {shown(names[predicted])}" for true, predicted, _ in pairs]
    axes.barh(range(len(pairs)), [count for *_, count in pairs], color="tab:red")
    axes.set_yticks(range(len(pairs)), labels)  # (by position: two names cut to the same text stay two bars)
    axes.invert_yaxis()  # the most frequent at the top
    axes.set(title="Most-confused class pairs (test set)", xlabel="test images")
    if not pairs:
        axes.text(0.5, 0.5, "no mistakes", ha="center", va="center", transform=axes.transAxes)
    return figure


def image_grid(
    images: Tensor,
    titles: list[str],
    colors: list[str],
    title: str,
    cmap: str = "gray",
    limits: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """Images (N, C, H, W) with values within `limits`, in a grid of up to 8 columns, each with a coloured title.

    The grid is one picture (tiles with a margin for the titles) on a single Axes: drawing 32 separate Axes
    takes matplotlib about ten times as long.
    """
    columns = min(8, len(images))
    rows = max(1, -(-len(images) // columns))
    height, width = images.shape[-2:]
    gap, title_band = max(2, width // 8), max(6, height // 3)
    cell_height, cell_width = height + title_band, width + gap
    color_images = images.shape[1] == 3
    canvas = np.full((rows * cell_height, columns * cell_width, *((3,) if color_images else ())), np.nan)
    figure = Figure(figsize=(1.6 * columns, 1.8 * rows + 0.4), layout="constrained")
    axes = figure.add_subplot()
    for i, image in enumerate(images):
        top, left = (i // columns) * cell_height + title_band, (i % columns) * cell_width
        pixels = image[0] if not color_images else image.permute(1, 2, 0)
        canvas[top : top + height, left : left + width] = pixels.float().numpy()
    axes.imshow(canvas, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    for i, (label, color) in enumerate(zip(titles, colors, strict=True)):
        row, column = divmod(i, columns)
        x, y = column * cell_width + width / 2, row * cell_height + title_band - 1
        axes.text(x, y, label, color=color, fontsize=9, ha="center", va="bottom")
    axes.axis("off")  # the gaps (NaN) show the white figure behind
    figure.suptitle(title)
    return figure


def errors_figure(inputs: Tensor, targets: Tensor, probabilities: Tensor, names: list[str], count: int) -> Figure:
    """The test images the model got wrong with the highest confidence."""
    confidence, predictions = probabilities.max(1)
    wrong = (predictions != targets).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:count]
    titles = [f"{shown(names[targets[i]])} -> {shown(names[predictions[i]])} ({confidence[i]:.2f})" for i in worst]
    if len(worst) == 0:
        figure = Figure(figsize=(4, 2))
        figure.text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center")
        return figure
    return image_grid(inputs[worst], titles, ["red"] * len(worst), "Most confidently wrong: true -> predicted (p)")


def first_layer_figure(network: nn.Module, input_shape: torch.Size, count: int) -> Figure:
    """What the first layer looks for: conv filters, or each hidden unit's weights over the input image."""
    first = next(m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    weights = first.weight.detach().float().cpu()[:count]
    if isinstance(first, nn.Conv2d):
        images, title = weights[:, :1], f"First convolution's filters ({first.kernel_size[0]}x{first.kernel_size[1]})"
    else:
        images, title = weights.reshape(len(weights), *input_shape)[:, :1], "First layer's weights per hidden unit"
    limit = images.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    names = [f"#{i}" for i in range(len(images))]
    return image_grid(images / limit, names, ["black"] * len(images), title, cmap="RdBu_r", limits=(-1.0, 1.0))
