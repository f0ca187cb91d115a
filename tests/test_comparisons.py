"""Comparisons one can trust (issue 26): a sweep with replicates (`repeat`, `data.fold`) is read as configurations,
each with its mean, std and 95% interval, tested against the best (Welch's t-test; a paired t-test over folds), and
summary.md answers in words which configurations cannot be told apart from the best. On fake sweeps: run folders
with their overrides and metrics.json, as a sweep leaves them (no training)."""

import csv
import json
import math
import sys
from pathlib import Path

import commands
import numpy as np
import pytest
from helpers import read_events
from matplotlib.collections import PolyCollection
from scipy import stats
from tensorboard.plugins.hparams import metadata
from torch.utils.tensorboard import SummaryWriter

from hyperlab.loggers.tensorboard import write_session
from hyperlab.sweeps.callback import summary_lines
from hyperlab.sweeps.figures import curves, heatmap_figure
from hyperlab.sweeps.runs import load_sweep
from hyperlab.sweeps.statistics import configurations, p_value, spread
from hyperlab.sweeps.table import write_summary

# (lr, hidden) -> the best val/acc of repeats 0, 1, 2: lr=0.01 at either size alike, lr=0.1 worse in every run
GRID = {
    ("0.01", "64"): [0.950, 0.960, 0.955],
    ("0.01", "128"): [0.951, 0.962, 0.957],
    ("0.1", "64"): [0.500, 0.520, 0.510],
    ("0.1", "128"): [0.600, 0.620, 0.610],
}


def fake_run(folder: Path, typed: dict[str, str], best: float | None, status: str = "completed",
             tensorboard: bool = False) -> Path:  # fmt: skip
    """A run folder as a classification run leaves it: its overrides and metrics.json (test/acc 0.01 below its
    best, val/acc rising to it over 3 epochs); `best` None: a run killed before it wrote metrics.json."""
    run = folder / ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in typed.items())
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {key}={value}\n" for key, value in typed.items()))
    if best is None:
        return run
    history = [{"epoch": float(epoch), "val/acc": best - 0.1 / epoch} for epoch in (1, 2, 3)]
    hparams = {key: float(value) if "." in value else int(value) for key, value in typed.items()}
    record = {"status": status, "error": None, "note": "", "best_score": best, "best_epoch": 3, "monitor": "val/acc",
              "monitor_mode": "max", "kind": "classification", "wall_time_s": 2.0, "history": history,
              "metrics": {"val/acc": best, "test/acc": best - 0.01}, "hparams": hparams,
              "best_checkpoint": ""}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(record))
    if tensorboard:  # (what hyperlab's logger leaves: the curves, and the run's HParams session)
        with SummaryWriter(str(run)) as writer:
            writer.add_scalar("val/acc_best", best, 1)
            writer.add_scalar("test/acc", best - 0.01, 1)
        write_session(run, hparams, status, 0.0, 1.0)
    return run


def grid_sweep(folder: Path, grid: dict = GRID, tensorboard: bool = False) -> Path:
    for (lr, hidden), scores in grid.items():
        for repeat, best in enumerate(scores):
            typed = {"optimizer.lr": lr, "model.hidden": hidden, "repeat": str(repeat)}
            fake_run(folder, typed, best, tensorboard=tensorboard)
    return folder


def table(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # (scipy's, on a side without spread)
def test_the_statistics_are_numpys_and_scipys():
    values = [0.91, 0.95, 0.93, 0.96]
    found = spread(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / math.sqrt(4)
    assert found.n == 4 and found.mean == pytest.approx(np.mean(values)) and found.std == pytest.approx(
        np.std(values, ddof=1))  # fmt: skip
    assert (found.low, found.high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    one = spread([0.9])
    assert one.mean == 0.9 and math.isnan(one.std) and math.isnan(one.low) and spread([]).n == 0
    other = [0.90, 0.92, 0.91, 0.97, 0.89]
    assert p_value(values, other, paired=False) == pytest.approx(stats.ttest_ind(values, other, equal_var=False).pvalue)
    assert p_value(values, other[:4], paired=True) == pytest.approx(stats.ttest_rel(values, other[:4]).pvalue)
    # degenerate cases: no spread at all, too few runs
    assert p_value([0.5, 0.5], [0.5, 0.5], paired=False) == 1.0 and p_value([0.5, 0.5], [0.4, 0.4], False) == 0.0
    assert p_value([0.5, 0.6], [0.4, 0.5], paired=True) == 0.0 and p_value([0.5, 0.6], [0.5, 0.6], True) == 1.0
    assert math.isnan(p_value([0.5], [0.4, 0.6], paired=False))
    flat, spread_out = [0.5, 0.5, 0.5], [0.4, 0.45, 0.5]  # one side without spread
    assert p_value(flat, spread_out, False) == pytest.approx(stats.ttest_ind(flat, spread_out, equal_var=False).pvalue)


def test_folds_are_compared_pair_by_pair(tmp_path):
    best, other = [0.90, 0.80, 0.95, 0.85], [0.89, 0.78, 0.94, 0.86]  # fold 3 of `other` never finished
    for fold, (first, second) in enumerate(zip(best, other, strict=True)):
        fake_run(tmp_path, {"model.hidden": "128", "data.fold": str(fold)}, first)
        fake_run(tmp_path, {"model.hidden": "64", "data.fold": str(fold)}, second if fold < 3 else None)
    found = configurations(load_sweep(tmp_path), "best")
    assert [c.values for c in found] == [{"model.hidden": "128"}, {"model.hidden": "64"}]
    assert found[1].p_value == pytest.approx(stats.ttest_rel(best[:3], other[:3]).pvalue)
    summary = write_summary(tmp_path)
    assert "| p vs best (paired t-test) |" in summary.markdown.read_text()
    assert "over 4 folds" in summary.markdown.read_text()


def test_a_sweep_with_repeats_gets_a_row_per_run_and_per_configuration(tmp_path):
    grid_sweep(tmp_path, {key: GRID[key] for key in [("0.01", "64"), ("0.1", "64")]})
    summary = write_summary(tmp_path)
    runs, rows = table(summary.csv), table(summary.configurations)
    assert len(runs) == 6 and len(rows) == 2
    assert [row["configuration"] for row in runs] == ["1"] * 3 + ["2"] * 3  # (a join with configurations.csv)
    assert [(row["configuration"], row["lr"], row["runs"], row["verdict"]) for row in rows] == [
        ("1", "0.01", "3", "best"), ("2", "0.1", "3", "worse")]  # fmt: skip
    assert float(rows[0]["best val/acc mean"]) == pytest.approx(0.955)
    assert float(rows[0]["best val/acc std"]) == pytest.approx(0.005)
    assert float(rows[1]["p_value"]) == pytest.approx(stats.ttest_ind(
        GRID[("0.01", "64")], GRID[("0.1", "64")], equal_var=False).pvalue)  # fmt: skip
    assert rows[1]["test"] == "Welch's t-test" and float(rows[0]["test/acc mean"]) == pytest.approx(0.945)
    assert summary.conclusion.startswith("best configuration: lr=0.01 (best val/acc 0.9550 ± 0.0050 over 3 repeats)")


def test_summary_md_answers_which_configurations_are_alike_and_which_values_lost_everywhere(tmp_path):
    summary = write_summary(grid_sweep(tmp_path))
    markdown = summary.markdown.read_text()
    assert ("Best: lr=0.01, hidden=128 (best val/acc 0.9567 ± 0.0055 over 3 repeats). Cannot be told apart from it at "
            "the 5% level (Welch's t-test): lr=0.01 at hidden 64–128 (1 configuration besides the best). Worse in "
            "every run: lr=0.1.") in markdown  # fmt: skip
    configurations_table = markdown.split("## Configurations\n\n")[1].split("\n\n")[0].splitlines()
    assert configurations_table[0] == ("| lr | hidden | runs | best val/acc mean | std | 95% CI | p vs best (Welch's "
                                       "t-test) | verdict | test/acc mean ± std |")  # fmt: skip
    best = "| 0.01 | 128 | 3 | 0.9567 | 0.0055 | [0.9430, 0.9703] |  | best | 0.9467 ± 0.0055 |"
    assert configurations_table[2] == best
    assert configurations_table[3].startswith("| 0.01 | 64 | 3 | 0.9550 | 0.0050 | [0.9426, 0.9674] | 0.7179 |")
    verdicts = [line.split(" | ")[7] for line in configurations_table[2:]]
    assert verdicts == ["best", "indistinguishable", "worse", "worse"]
    runs = markdown.split("## Runs\n\n")[1].splitlines()
    assert len(runs) == 2 + 12 and runs[0].startswith("| lr | hidden | repeat | status |")  # one row per run
    assert markdown.index("## Configurations") < markdown.index("## The answer") < markdown.index("## Runs")
    lines = summary_lines(summary, tmp_path)
    assert lines[-1] == (f"best configuration: lr=0.01, hidden=128 (best val/acc 0.9567 ± 0.0055 over 3 repeats); 1 "
                         f"configuration indistinguishable from it (see {summary.markdown})")  # fmt: skip


def test_alike_configurations_that_are_no_grid_are_named(tmp_path):
    grid = {**GRID, ("0.1", "128"): [0.95, 0.96, 0.958]}  # alike: lr=0.01,hidden=64 and lr=0.1,hidden=128
    markdown = write_summary(grid_sweep(tmp_path, grid)).markdown.read_text()
    said = (
        "Best: lr=0.01, hidden=128 (best val/acc 0.9567 ± 0.0055 over 3 repeats). Cannot be told apart from it at the "
        "5% level (Welch's t-test): lr=0.1, hidden=128; lr=0.01, hidden=64 (2 configurations).\n"
    )
    assert said in markdown  # (not a grid: named one by one; lr=0.1 won at hidden 128: no value lost everywhere)


def test_a_sweep_that_ran_each_configuration_once_says_it_cannot_tell(tmp_path):
    for lr, best in (("0.1", 0.5), ("0.01", 0.95), ("0.001", 0.94)):
        fake_run(tmp_path, {"optimizer.lr": lr, "seed": "0"}, best)
    summary = write_summary(tmp_path)
    markdown = summary.markdown.read_text()
    assert ("Each configuration ran once, so this sweep cannot tell which differences are noise: run it again with "
            "`repeats=3`") in markdown  # fmt: skip
    assert "## Configurations" not in markdown and "## Runs" in markdown and summary.conclusion == ""
    assert len(table(summary.configurations)) == 3 and "configuration" not in table(summary.csv)[0]


def test_figures_of_replicates_show_each_configurations_mean_and_spread(tmp_path):
    grid = {(lr, hidden, depth): GRID[(lr, hidden)] for lr, hidden in GRID for depth in ("1", "2")}
    for (lr, hidden, depth), scores in grid.items():
        for repeat, best in enumerate(scores):
            typed = {"optimizer.lr": lr, "model.hidden": hidden, "model.depth": depth, "repeat": str(repeat)}
            fake_run(tmp_path, typed, best + 0.001 * int(depth))
    sweep = load_sweep(tmp_path)
    heatmap = heatmap_figure(sweep, "best", True, ("optimizer.lr", "model.hidden"), "model.depth")
    panels = [axes for axes in heatmap.axes if axes.images]
    assert [axes.get_title() for axes in panels] == ["depth=1", "depth=2"]
    texts = [text.get_text() for axes in panels for text in axes.texts]
    assert len(texts) == 8 and all("\n±" in text for text in texts)
    assert "0.958\n±0.006" in texts  # lr=0.01, hidden=128, depth=1: the mean of its 3 repeats and their std
    assert "mean of 3 repeats" in heatmap._suptitle.get_text()
    figure = curves(sweep)
    drawn = [axes for axes in figure.axes if axes.get_visible() and axes.lines]
    assert [axes.get_title() for axes in drawn] == ["depth=1", "depth=2"]  # (depth, not repeat, makes the panels)
    assert sum(len(axes.lines) for axes in drawn) == 8  # a curve per configuration, not per run
    assert all(any(isinstance(c, PolyCollection) for c in axes.collections) for axes in drawn)  # the bands
    assert "band ± 1 std" in figure._suptitle.get_text()
    summary = write_summary(tmp_path)  # the default heatmap: no replicate key as an axis or a panel
    assert summary.heatmap.is_file() and summary.curves.is_file()


def test_tensorboard_gets_a_session_per_configuration(tmp_path):
    write_summary(grid_sweep(tmp_path, tensorboard=True))
    experiment = read_events(tmp_path / "summary").PluginTagToContent(metadata.PLUGIN_NAME)
    record = metadata.parse_experiment_plugin_data(experiment[metadata.EXPERIMENT_TAG])
    columns = [info.name for info in record.hparam_infos]
    assert columns == ["optimizer.lr", "model.hidden", "repeat", "status", "repeats"]
    assert [info.display_name for info in record.metric_infos] == [
        "best val/acc", "test/acc", "test/loss", "best val/acc mean", "best val/acc std", "test/acc mean",
        "test/acc std"]  # fmt: skip
    best = read_events(tmp_path / "summary" / "config-01")
    start = metadata.parse_session_start_info_plugin_data(
        best.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG])  # fmt: skip
    assert start.group_name == "#01 (mean of 3) lr=0.01,hidden=128"
    assert start.hparams["optimizer.lr"].number_value == 0.01 and start.hparams["repeats"].string_value.strip() == "3"
    assert start.hparams["status"].string_value == "configuration"
    assert [event.value for event in best.Scalars("val/acc_best mean")] == [pytest.approx(np.mean(GRID["0.01", "128"]))]
    assert best.Scalars("test/acc std")[0].value == pytest.approx(np.std(GRID["0.01", "128"], ddof=1))
    sessions = sorted(path.name for path in (tmp_path / "summary").glob("config-*"))
    assert sessions == ["config-01", "config-02", "config-03", "config-04"]
    run = read_events(tmp_path / "lr=0.1,hidden=128,repeat=2")
    start = metadata.parse_session_start_info_plugin_data(
        run.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG])  # fmt: skip
    assert start.group_name == "#03 lr=0.1,hidden=128,repeat=2"  # led by its configuration's rank


def test_the_table_of_a_sweep_with_repeats_killed_halfway_has_what_finished(tmp_path):
    plan = {}
    for (lr, hidden), scores in GRID.items():
        for repeat, best in enumerate(scores):
            typed = {"optimizer.lr": lr, "model.hidden": hidden, "repeat": str(repeat)}
            name = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in typed.items())
            plan[name] = [f"{key}={value}" for key, value in typed.items()]
            if lr == "0.1" and repeat == 2:
                continue  # never started
            fake_run(tmp_path, typed, None if (lr, hidden, repeat) == ("0.01", "64", 1) else best)  # (killed)
    (tmp_path / "plan.json").write_text(json.dumps({"sweeper": "grid", "size": len(plan), "runs": plan}))
    executable = Path(sys.executable).parent / "hyperlab-sweep-table"
    done = commands.run([str(executable), f"folder={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"configurations: {tmp_path / 'configurations.csv'}" in done.stdout
    statuses = [row["status"] for row in table(tmp_path / "summary.csv")]
    assert len(statuses) == 12 and statuses.count("not run") == 2 and statuses.count("interrupted") == 1
    rows = {(row["lr"], row["hidden"]): row for row in table(tmp_path / "configurations.csv")}
    assert (rows["0.01", "64"]["runs"], rows["0.01", "64"]["runs listed"]) == ("2", "3")
    assert float(rows["0.01", "64"]["best val/acc mean"]) == pytest.approx(np.mean([0.950, 0.955]))
    assert rows["0.1", "128"]["runs"] == "2" and rows["0.1", "128"]["verdict"] == "worse"
    assert "| 0.01 | 64 | 2 of 3 |" in (tmp_path / "summary.md").read_text()
