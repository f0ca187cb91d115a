"""Fixtures shared by the tests."""

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import compose_config
from omegaconf import DictConfig


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """`make_config(*overrides)` -> a composed config whose run folder is `tmp_path / "run"`."""
    return lambda *overrides: compose_config(tmp_path / "run", *overrides)
