"""The sweep's figures at the homework's size (issue 23): the heatmap's colours span the runs that learned (runs at
chance level, diverged or failed are marked in their cells), and curves.png is small multiples - one panel per
depth, the best runs highlighted, the y-axis set by the runs that learned. On fake sweeps: run folders with their
overrides and metrics.json, as a sweep leaves them (no training)."""

import itertools
import json
import math
import random
from pathlib import Path

import pytest
from matplotlib.text import Text

from hyperlab.sweeps.figures import colour_range, curves, heatmap_figure, levels
from hyperlab.sweeps.runs import load_sweep
from hyperlab.sweeps.table import write_summary

CHANCE_ACC, CHANCE_LOSS = 0.1135, 2.3060  # MNIST: always the most common class; the loss of guessing
HOMEWORK = {"optimizer.lr": ["0.1", "0.01", "0.001", "0.0001"], "model.hidden": ["64", "128", "256", "512"],
            "model.depth": ["1", "2", "3", "4"]}  # fmt: skip


def fake_run(folder: Path, typed: dict[str, str], accuracies: list[float], status: str = "completed",
             note: str = "", name: str = "") -> None:  # fmt: skip
    """A run folder as a classification run leaves it: its overrides and metrics.json, with one validation per epoch
    (val/acc as given, val/loss to match); no accuracies: a run that failed before training."""
    name = name or ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in sorted(typed.items()))
    run = folder / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {key}={value}\n" for key, value in typed.items()))
    history = [{"epoch": float(epoch), "step": 100 * epoch, "val/acc": acc, "val/loss": -math.log(acc) + 0.02}
               for epoch, acc in enumerate(accuracies, start=1)]  # fmt: skip
    best = max(accuracies) if accuracies else None
    record = {"status": status, "error": "RuntimeError: boom" if status == "failed" else None, "note": note,
              "metrics": {"val/acc": accuracies[-1], "test/acc": best} if accuracies else {}, "best_score": best,
              "best_epoch": accuracies.index(best) + 1 if accuracies else None, "monitor": "val/acc",
              "monitor_mode": "max", "kind": "classification", "wall_time_s": 30.0, "history": history,
              "best_checkpoint": ""}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(record))


def learning(final: float, epochs: int = 5, start: float = 0.0) -> list[float]:
    """Validation accuracies rising to `final`."""
    start = start or final - 0.12
    return [round(final - (final - start) * math.exp(-1.2 * (epoch - 1)), 4) for epoch in range(1, epochs + 1)]


def chance_note() -> str:
    return (f"at chance level: val/acc {CHANCE_ACC:.4f} (always answering the most common class: {CHANCE_ACC:.4f}), "
            f"val/loss {CHANCE_LOSS:.4f} (guessing: 2.3019)")  # fmt: skip


def homework_sweep(folder: Path, grid: dict[str, list[str]] = HOMEWORK, epochs: int = 5) -> Path:
    """The homework sweep as MNIST answers it: lr=0.1 at chance level (but the smallest network, which learned a
    little; the biggest diverged), the others between 0.86 and 0.98; one run failed."""
    random.seed(0)
    for combination in itertools.product(*grid.values()):
        typed = dict(zip(grid, combination, strict=True))
        lr, hidden, depth = float(typed["optimizer.lr"]), int(typed["model.hidden"]), int(typed["model.depth"])
        if lr >= 0.1 and (hidden, depth) == (512, 4):
            fake_run(folder, typed, [CHANCE_ACC], "diverged")
        elif lr >= 0.1 and (hidden, depth) != (64, 1):
            fake_run(folder, typed, [CHANCE_ACC + random.uniform(-0.01, 0.001) for _ in range(epochs)],
                     note=chance_note())  # fmt: skip
        elif (lr, hidden, depth) == (0.01, 512, 4):
            fake_run(folder, typed, [], "failed")
        else:
            final = {0.1: 0.62, 0.01: 0.955, 0.001: 0.972, 0.0001: 0.93}.get(lr, 0.95)
            final += 0.004 * math.log2(hidden / 64) - (0.006 * (depth - 1) if lr < 1e-3 else 0.0)
            final = min(final + random.uniform(-0.004, 0.004), 0.985) if lr < 0.1 else 0.62
            fake_run(folder, typed, learning(final, epochs, start=0.5 if lr < 1e-3 else 0.0))
    return folder


def optuna_search(folder: Path, trials: int = 30) -> Path:
    """A search's trials: lr drawn on a log scale, dropout continuous, hidden and depth from a few choices."""
    random.seed(1)
    for trial in range(trials):
        lr = 10 ** random.uniform(-4, -1)
        typed = {
            "optimizer.lr": f"{lr:.6g}",
            "model.hidden": random.choice(["64", "128", "256", "512"]),
            "model.depth": random.choice(["1", "2", "3"]),
            "model.dropout": f"{random.uniform(0, 0.5):.6g}",
        }
        if lr > 0.05:
            fake_run(folder, typed, [CHANCE_ACC] * 3, note=chance_note(), name=str(trial))
        else:
            fake_run(folder, typed, learning(0.97 - 0.05 * abs(math.log10(lr) + 3) / 2, 3), name=str(trial))
    return folder


def test_the_colour_range_leaves_out_values_far_on_the_bad_side():
    learned = [0.95, 0.96, 0.97, 0.98, 0.965, 0.955]
    assert (colour_range(learned, True).low, colour_range(learned, True).high) == (0.95, 0.98)
    scale = colour_range([*learned, 0.3], higher_is_better=True)  # a run that barely learned
    assert (scale.low, scale.high, scale.left_out) == (0.95, 0.98, 1)
    assert colour_range([*learned, 1.5], higher_is_better=True).high == 1.5  # far on the good side: kept
    losses = [0.1, 0.12, 0.11, 0.09, 0.1, 3.0]
    assert (colour_range(losses, False).high, colour_range(losses, False).left_out) == (0.12, 1)
    assert colour_range([0.5, 0.9], True).low == 0.5  # fewer than 5 values: all of them
    assert colour_range([0.98] * 6 + [0.97], True).low == 0.97  # (never a scale of one value)
    same = colour_range([0.5, 0.5], True)
    assert same.low < 0.5 < same.high and colour_range([], True).low < colour_range([], True).high


def test_continuous_values_are_shown_in_a_few_ranges_and_a_grids_values_as_they_are():
    grid = ["0.1", "0.01", "0.001"]
    assert levels(grid, 12, 6) == (["0.001", "0.01", "0.1"], {value: value for value in grid})
    names, level_of = levels([f"{0.01 * i:.2f}" for i in range(1, 31)], 12, 6)
    assert len(names) == 6 and names[0] == "0.01-0.05" and level_of["0.03"] == names[0]
    assert levels([f"name{i}" for i in range(20)], 12, 6)[0][0] == "name0"  # text: every value its own


@pytest.fixture(scope="module")
def homework(tmp_path_factory):
    return load_sweep(homework_sweep(tmp_path_factory.mktemp("homework")))


def test_the_heatmaps_colours_span_the_runs_that_learned(homework):
    figure = heatmap_figure(homework, "best", True, ("optimizer.lr", "model.hidden"), "model.depth")
    panels = [axes for axes in figure.axes if axes.images]
    assert [axes.get_title() for axes in panels] == [f"depth={depth}" for depth in range(1, 5)]
    learned = [run.metric("best") for run in homework.runs
               if run.status == "completed" and not run.result["note"] and run.metric("best") > 0.8]  # fmt: skip
    norm = panels[0].images[0].norm
    assert math.isclose(norm.vmin, min(learned)) and math.isclose(norm.vmax, max(learned))  # not from 0.11
    texts = [text.get_text() for axes in panels for text in axes.texts]
    assert sum(text.startswith("at chance\n0.1") for text in texts) == 14  # marked, with its value
    assert texts.count("failed") == 1 and sum(text.startswith("diverged") for text in texts) == 1
    little = [text for axes in panels for text in axes.texts if text.get_text().startswith("0.6")]
    assert len(little) == 1  # lr=0.1 with the smallest network learned a little: its value, in the end colour
    colour_bar = next(axes for axes in figure.axes if not axes.images and axes.get_ylabel())
    assert "colours: the runs that learned" in colour_bar.get_ylabel() and "1 far below" in colour_bar.get_ylabel()
    title = " ".join(text.get_text() for text in figure.findobj(Text) if "outlined" in text.get_text())
    assert "outlined: the best" in title and "hatched" in title  # (the suptitle: Figure.get_suptitle is matplotlib 3.8)
    assert little[0].get_color() == "white"  # readable on the dark end of the scale; black on the light end:
    best = [text for axes in panels for text in axes.texts if text.get_text() == f"{max(learned):.3f}"]
    assert best[0].get_color() == "black"


def test_curves_are_one_panel_per_depth_with_the_best_runs_highlighted(homework):
    figure = curves(homework)
    panels = [axes for axes in figure.axes if axes.get_visible() and axes.lines]
    assert [axes.get_title() for axes in panels] == [f"depth={depth}" for depth in range(1, 5)]
    low, high = panels[0].get_ylim()
    assert 0.3 < low < 0.6 and high < 1.01  # the runs that learned; not stretched down to chance (0.11)
    assert all(axes.get_ylim() == (low, high) for axes in panels)  # panels compare on one axis
    thick = [line for axes in panels for line in axes.lines if line.get_linewidth() > 2]
    assert len(thick) == 3
    best = max((run for run in homework.runs if run.status == "completed"), key=lambda run: run.metric("best"))
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert f"1: {best.metric('best'):.4f}" in "\n".join(legend)
    assert {"lr=0.1", "lr=0.0001", "hidden=64", "hidden=512"} <= set(legend)
    notes = "\n".join(text.get_text() for axes in panels for text in axes.texts)
    assert "3 at chance level: below (val/acc 0.1" in notes  # their curves, dimmed, are off the axis: it says so
    assert "1 failed: no validation" in notes  # a run without a curve is counted too


def test_a_search_on_continuous_values_gets_a_colour_bar_and_ranges(tmp_path):
    sweep = load_sweep(optuna_search(tmp_path))
    figure = curves(sweep)
    colour_bars = [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1 and colour_bars[0].get_yscale() == "log"  # lr spans 3 decades
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert not any(text.startswith("lr=") for text in legend)  # no colour per drawn value
    assert len([axes for axes in figure.axes if axes.get_visible() and axes.lines]) == 3  # depth: 1, 2, 3
    heatmap = heatmap_figure(sweep, "best", True, ("optimizer.lr", "model.dropout"), "model.hidden")
    rows = heatmap.axes[0].get_yticklabels()
    assert 1 < len(rows) <= 6 and "-" in rows[0].get_text()  # ranges of lr, not one row per trial


@pytest.mark.parametrize("keys", [1, 2])
def test_curves_of_a_sweep_of_one_or_two_keys_are_one_panel(tmp_path, keys):
    grid = dict(list(HOMEWORK.items())[:keys])
    for combination in itertools.product(*grid.values()):
        fake_run(tmp_path, dict(zip(grid, combination, strict=True)), learning(0.9 + 0.01 * len(combination[0])))
    figure = curves(load_sweep(tmp_path))
    panels = [axes for axes in figure.axes if axes.lines]
    assert len(panels) == 1 and panels[0].get_title() == ""
    styles = {line.get_linestyle() for line in panels[0].lines}
    assert len(styles) == (4 if keys == 2 else 1)


def test_runs_pruned_after_one_validation_show_as_points(tmp_path):
    for lr in ("1e-06", "1e-07"):  # (an Optuna search's hopeless trials: none learned)
        fake_run(tmp_path, {"optimizer.lr": lr}, [CHANCE_ACC], "pruned", note=chance_note())
    axes = next(axes for axes in curves(load_sweep(tmp_path)).axes if axes.lines)
    assert [line.get_marker() for line in axes.lines] == ["o", "o"]
    assert axes.get_xlim()[0] < 1.0 < axes.get_xlim()[1] and axes.get_ylim()[0] < CHANCE_ACC < axes.get_ylim()[1]


def test_write_summary_draws_both_figures_of_a_200_run_sweep(tmp_path):
    grid = {**HOMEWORK, "optimizer.lr": ["0.1", "0.03", "0.01", "0.001", "0.0001"], "model.hidden": [
        "32", "64", "128", "256", "512"], "model.dropout": ["0.0", "0.3"]}  # fmt: skip
    summary = write_summary(homework_sweep(tmp_path, grid))
    assert summary.heatmap.read_bytes()[:4] == b"\x89PNG" and summary.curves.read_bytes()[:4] == b"\x89PNG"
