"""Figures drawn after testing (so they show the best checkpoint): each is saved as `<run>/figures/<name>.png`
and logged to TensorBoard as the image `figures/<name>`.

Figures are drawn with matplotlib's object API (`Figure` + Agg canvas): no pyplot state, no display needed.
"""

from pathlib import Path

import lightning as L
import matplotlib.image
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def publish(trainer: L.Trainer, figure: Figure, name: str) -> Path:
    """Render `figure` once; write it as a PNG in the run folder and log it to every TensorBoard logger."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    path = Path(trainer.default_root_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, rgb)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"figures/{name}", rgb, trainer.global_step, dataformats="HWC")
            logger.experiment.flush()
    return path


class DecisionRegions(L.Callback):
    """2-D classification: the class the model predicts at every point of the plane, under the data points."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
        regions = pl_module.predict_proba(grid).argmax(1).reshape(grid_x.shape).cpu()
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
