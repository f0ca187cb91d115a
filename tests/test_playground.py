"""The optimizer playground (experiment=optimizer_playground): SGD on the course's non-convex x^4 + x^3 - 5x^2 from
x = 2, and on Rosenbrock's valley; a run records and draws its path, a sweep draws every run's path in one grid and
tabulates where each ended; a wrong function or start is refused in one line."""

import json
import sys
from pathlib import Path

import commands
import pytest
from helpers import compose_config, read_events
from PIL import Image

from hyperlab.train import train


def run(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    run_dir = tmp_path / "run"
    result = train(compose_config(run_dir, "experiment=optimizer_playground", "logger=tensorboard", *overrides))
    return result, run_dir


def test_a_good_learning_rate_reaches_the_global_minimum_and_the_path_is_recorded(tmp_path):
    result, run_dir = run(tmp_path, "optimizer.lr=0.09")  # (the course notes' own last try)
    assert result["status"] == "completed"
    assert result["metrics"]["val/distance"] < 0.1  # x = -1.95, beside the global minimum at -2
    path = json.loads((run_dir / "path.json").read_text())
    assert path["function"] == "course" and path["options"] == {"lr": 0.09, "momentum": 0.0}
    assert len(path["points"]) == 11 and path["points"][0] == [2.0]  # the start and the 10 steps
    assert path["points"][-1][0] == pytest.approx(result["metrics"]["params/x"], abs=1e-5)
    assert path["losses"][-1] == pytest.approx(result["metrics"]["val/loss"], rel=1e-4)
    assert Image.open(run_dir / "figures" / "path.png").size[0] > 300
    events = read_events(run_dir)
    assert len(events.Scalars("path/x")) == len(events.Scalars("path/loss")) == 11
    assert "figures/path" in events.Tags()["images"]


def test_a_small_learning_rate_stays_in_the_local_minimum_on_the_right(tmp_path):
    result, run_dir = run(tmp_path, "optimizer.lr=0.01", "logger=none")
    assert result["metrics"]["params/x"] == pytest.approx(1.31, abs=0.01)  # the course: "stuck in the first minimum"


def test_rosenbrock_is_a_function_of_two_parameters_drawn_as_contours(tmp_path):
    result, run_dir = run(tmp_path, "data.function=rosenbrock", "optimizer.lr=0.001", "optimizer.momentum=0.9",
                          "trainer.max_steps=100", "logger=none")  # fmt: skip
    path = json.loads((run_dir / "path.json").read_text())
    assert path["points"][0] == [-1.2, 1.0] and len(path["points"]) == 101
    assert path["losses"][-1] < 0.2 < 24 < path["losses"][0]  # down the valley, not yet at (1, 1)
    assert result["metrics"]["val/distance"] < 1.0
    assert (run_dir / "figures" / "path.png").is_file()


def test_a_diverging_run_is_recorded_as_diverged_with_its_path(tmp_path):
    result, run_dir = run(tmp_path, "optimizer.lr=0.1", "optimizer.momentum=0.9", "logger=none")
    assert result["status"] == "diverged"
    path = json.loads((run_dir / "path.json").read_text())
    assert path["status"] == "diverged" and abs(path["points"][-1][0]) > 1e6
    assert (run_dir / "figures" / "path.png").is_file()


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("data.function=sphere", "data.function='sphere' is not allowed: expected one of ['course', 'rosenbrock'"),
        ("data.start=[1.0,2.0]", "data.start=[1.0, 2.0] is not allowed: expected null (the function's own start)"),
    ],
)
def test_a_wrong_function_or_start_is_refused_in_one_line(tmp_path, override, said):
    command = [sys.executable, "-m", "hyperlab", "train", "experiment=optimizer_playground", override,
               f"paths.log_dir={tmp_path}"]  # fmt: skip
    done = commands.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: {said}")
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_course_sweep_draws_every_path_in_one_grid_and_tabulates_where_each_ended(tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={sweep_dir}",
               "experiment=optimizer_playground", "optimizer=sgd", "optimizer.lr=0.001,0.01,0.1",
               "optimizer.momentum=0,0.9", f"paths.log_dir={tmp_path}", "logger=none"]  # fmt: skip
    done = commands.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list(sweep_dir.glob("*/path.json"))) == 6
    grid = Image.open(sweep_dir / "playground.png")
    assert grid.size[1] > grid.size[0]  # three rows (lr) of two columns (momentum)
    summary = (sweep_dir / "summary.md").read_text()
    assert "## The optimizer playground: where each run ended" in summary
    section = summary.split("## The optimizer playground")[1].split("## Runs")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| 0.")}
    assert "loss 0.516, distance 0.19" in rows["0.1"]  # high lr, no momentum: swings into the global basin
    assert "diverged" in rows["0.1"].split(" | ")[2]  # high lr, high momentum: no brakes
    assert "distance 3.31" in rows["0.01"].split(" | ")[1]  # the local minimum on the right
