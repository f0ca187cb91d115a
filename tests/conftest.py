"""Fixtures shared by the tests."""

import os

# The suite runs on one worker per core (pyproject.toml's addopts): one torch thread each, in each worker and in the
# commands its tests start, or two workers with two threads each would slow each other many times over on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path

import pytest
from helpers import compose_config, write_cifar, write_mnist_files
from omegaconf import DictConfig


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """`make_config(*overrides)` -> a composed config whose run folder is `tmp_path / "run"`."""
    return lambda *overrides: compose_config(tmp_path / "run", *overrides)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """A data root holding small MNIST and Fashion-MNIST files in the official format (700 drawn digits each), and a
    tiny CIFAR-10 in torchvision's python layout."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_files(root, "MNIST", seed=0)
    write_mnist_files(root, "FashionMNIST", seed=1)
    write_cifar(root)
    return root


def pytest_terminal_summary(terminalreporter) -> None:
    """A line per cluster test (tests/test_cluster.py, against the real SLURM and PostgreSQL of scripts/services.sh)
    and how it ended: CI's log shows that they ran, not only a count of dots."""
    outcomes = ("passed", "failed", "skipped", "error")
    ran = [(outcome, report) for outcome in outcomes for report in terminalreporter.stats.get(outcome, [])
           if "cluster" in getattr(report, "keywords", {}) and report.when in ("call", "setup")]  # fmt: skip
    if ran:
        terminalreporter.write_sep("-", "cluster tests (real SLURM and PostgreSQL, scripts/services.sh)")
        for outcome, report in ran:
            if outcome != "passed" or report.when == "call":
                terminalreporter.write_line(f"{outcome.upper()} {report.nodeid} ({report.duration:.0f} s)")


def pytest_configure(config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # (pytest-xdist 3.8+) the files in the order set below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items) -> None:
    """The order in which pytest-xdist hands the files to its workers: the cluster tests first (most of their time is
    SLURM's jobs starting, which overlaps the other worker's tests best at the start: last, as xdist's own order of
    most tests first put them, CI waited five minutes for them alone), then the files with the most tests."""
    tests_in = Counter(item.nodeid.split("::")[0] for item in items)
    items.sort(key=lambda item: (item.get_closest_marker("cluster") is None, -tests_in[item.nodeid.split("::")[0]]))
