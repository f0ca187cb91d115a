"""The homework journey as a user types it: a sweep whose run folders have `=` and `,` in their names, the best
checkpoint it prints pasted into hyperlab-finetune and hyperlab-eval exactly as printed, then hyperlab-predict."""

import shlex
import subprocess
import sys
from pathlib import Path

import commands
from PIL import Image, ImageDraw

BIN = Path(sys.executable).parent


def command(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """A command line as printed (`hyperlab-... key=value ...`), run as a shell would split it (in a process of its own
    forked from tests/commands.py's server: the words as printed, without the interpreter's start)."""
    words = shlex.split(line)
    return commands.run([str(BIN / words[0]), *words[1:]], capture_output=True, text=True, timeout=600, cwd=cwd)


def printed(output: str, label: str) -> str:
    return next(line.split(label, 1)[1].strip() for line in output.splitlines() if label in line)


def test_sweep_then_finetune_evaluate_and_predict_the_best_run_as_printed(tmp_path):
    sweep = command(
        f"hyperlab-train -m optimizer.lr=0.01,0.001 model.depth=1,2 trainer.max_epochs=2 threads=1 "
        f"trainer.enable_progress_bar=false paths.log_dir={tmp_path / 'logs'} hydra.sweep.dir={tmp_path / 'sweep'}",
        tmp_path,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    output = sweep.stdout + sweep.stderr
    best = printed(output, "best checkpoint:")
    assert "=" in Path(best).parent.parent.name and "," in Path(best).parent.parent.name
    assert Path(best).is_file()

    finetune = command(printed(output, "fine-tune it:") + " trainer.max_epochs=1 threads=1", tmp_path)
    assert finetune.returncode == 0, finetune.stderr[-3000:]
    assert f"started from {best}" in finetune.stdout + finetune.stderr

    evaluate = command(printed(output, "evaluate it:") + " threads=1", tmp_path)  # (its CPU threads: its own)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert f"evaluated {best}" in evaluate.stdout and "test/acc" in evaluate.stdout

    images = tmp_path / "drawn"
    images.mkdir()
    drawing = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(drawing).text((22, 14), "3", fill="black", font_size=36)
    drawing.save(images / "three.png")
    predict = command(f"hyperlab-predict ckpt_path={best} images={images}", tmp_path)
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert "three.png:" in predict.stdout
