"""--help: what a user chooses from, not Hydra's internals."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def test_train_help_lists_presets_groups_a_sweep_and_the_commands():
    process = subprocess.run([str(BIN / "hyperlab-train"), "--help"], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    text = process.stdout
    assert "schema/" not in text and "_target_" not in text  # (Hydra's dump of the config and its schema groups)
    assert "mnist_mlp" in text and "fashion_cnn" in text  # the presets
    assert "  optimizer      adam | adamw | rmsprop | sgd  [adam]" in text  # a group, its options and its default
    assert "hyperlab-train -m experiment=mnist_mlp sweep=homework data.root=../shared/data" in text
    for command in ("hyperlab-finetune", "hyperlab-eval", "hyperlab-predict", "hyperlab-sweep-table"):
        assert f"    {command} " in text


@pytest.mark.parametrize(("command", "said"), [("hyperlab-eval", "ckpt_path=<file>"), ("hyperlab-predict", "top_k:"),
                                               ("hyperlab-sweep-table", "folder: ???")])  # fmt: skip
def test_the_other_commands_say_what_they_take(command, said):
    process = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0 and said in process.stdout and "hyperlab-train [-m]" in process.stdout
