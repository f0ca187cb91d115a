"""The dependency floors (issue 24): constraints-floors.txt, which scripts/floors.sh installs in a second environment
to run the README's default command and the fast tests on, pins exactly the floors (`>=`) that pyproject.toml
declares for its dependencies and its `dev` extra; and in that environment (HYPERLAB_FLOORS=1, set by the script)
those are the versions installed."""

import importlib.metadata
import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints-floors.txt"


def pyproject_floors() -> dict[str, Version]:
    """{name: floor} of pyproject.toml's dependencies and its dev extra (each has exactly one `>=`)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        if requirement.name == project["name"]:  # another extra of hyperlab's (`hyperlab[cluster]`): not a floor
            continue
        lows = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(lows) == 1, f"pyproject.toml: {text!r} has no floor (>=): every direct dependency needs one"
        floors[canonicalize_name(requirement.name)] = Version(lows[0])
    return floors


def pinned_floors() -> dict[str, Version]:
    """{name: version} of constraints-floors.txt's `name==version` lines."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        specs = list(Requirement(line).specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{CONSTRAINTS.name}: {line!r} is not `name==version`"
        name = canonicalize_name(Requirement(line).name)
        assert name not in pins, f"{CONSTRAINTS.name}: {name} is pinned twice"
        pins[name] = Version(specs[0].version)
    return pins


def test_the_floor_constraints_are_pyprojects_floors():
    declared, pinned = pyproject_floors(), pinned_floors()
    differ = {name: (str(declared.get(name)), str(pinned.get(name))) for name in declared.keys() | pinned.keys()
              if declared.get(name) != pinned.get(name)}  # fmt: skip
    assert not differ, (
        f"pyproject.toml's floors and {CONSTRAINTS.name} differ (name: (pyproject, constraints)): {differ}; "
        "change both together"
    )


@pytest.mark.skipif(not os.environ.get("HYPERLAB_FLOORS"), reason="in scripts/floors.sh's environment only")
def test_the_floor_environment_has_the_floors_installed():
    installed = {name: Version(importlib.metadata.version(name)) for name in pinned_floors()}
    # (a local label, as torch's +cpu, is the same release)
    wrong = {name: str(found) for name, found in installed.items() if Version(found.public) != pinned_floors()[name]}
    assert not wrong, f"the floor environment has other versions than {CONSTRAINTS.name}: {wrong}"
