"""The README's two set-up commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    (ci_command,) = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.endswith("pytest")]
    assert f"\n{ci_command}\n" in (ROOT / "README.md").read_text()  # (then the floors: scripts/floors.sh)


def test_the_readme_main_command_installs_and_runs_the_default_experiment():
    assert (
        "\npython3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/hyperlab-train\n"
        in (ROOT / "README.md").read_text()
    )
