"""Every precision Lightning offers on this machine (`trainer.precision`) runs on every built-in datamodule, in both
training loops, with the model summary, figures, checkpoints and hyperlab-predict; the ones this machine's
accelerator cannot run are refused in one line before anything is built (hyperlab.tasks.precision)."""

import io
import math
import sys
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import commands
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import SHAPES, draw_shape, glyph, write_animals_csv, write_image_folder, write_salary_csv
from lightning.pytorch.plugins.precision import HalfPrecision, MixedPrecision, Precision
from PIL import Image

from hyperlab.config import compose_config, validate
from hyperlab.data.loaders import Chunk
from hyperlab.errors import ConfigError
from hyperlab.evaluate import evaluate
from hyperlab.experiment import build
from hyperlab.predict import predict_command
from hyperlab.tasks import precision as precisions
from hyperlab.tasks.precision import FLOAT16_EPS, offered_precisions, optimizer_options
from hyperlab.train import train
from hyperlab.trainer_arguments import lightning_precisions

PRECISIONS = lightning_precisions()
OFFERED, WHERE = offered_precisions("auto", PRECISIONS)
ALIASES = ("64", "32", "16", "bf16")  # Lightning's other names of 64-true, 32-true, 16-mixed and bf16-mixed
MATRIX = [precision for precision in OFFERED if precision not in ALIASES]  # on a CPU: 64-true, 32-true, 16-true, ...
REFUSED = [precision for precision in PRECISIONS if precision not in OFFERED]  # on a CPU: 16-mixed, 16, transformer-*
PARAMETER_DTYPES = {"64-true": torch.float64, "16-true": torch.float16, "bf16-true": torch.bfloat16}  # else float32

# Lightning's loop, forced by gradient clipping (which mixed precision asks an unfused optimizer step for)
LOOPS = {"fast": [], "lightning": ["trainer.gradient_clip_val=0.5"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Small tables and an image folder, written once for the module."""
    folder = tmp_path_factory.mktemp("precision_data")
    write_animals_csv(folder / "animals.csv", rows=90)
    write_salary_csv(folder / "salary.csv")  # (300 rows: fewer make its 64 countries an id column)
    write_image_folder(folder / "shapes", per_class=10)
    new = folder / "new_shapes"
    new.mkdir()
    rng = np.random.default_rng(3)
    for i, shape in enumerate(SHAPES):
        draw_shape(shape, rng, (30, 24)).save(new / f"{i}_{shape}.png")
    digits = folder / "my_digits"
    digits.mkdir()
    for label in (3, 7):
        Image.fromarray(255 - glyph(label, rng)).save(digits / f"{label}.png")  # dark ink on light paper
    return folder


# datamodule -> (its overrides, the figure it draws, what hyperlab-predict is given: images=... or table=...)
def datamodules(files: Path, mnist_root: Path) -> dict[str, tuple[list[str], str | None, str | None]]:
    return {
        "digits": ([], "confusion_matrix", None),
        "line": (["experiment=line"], None, None),  # (callbacks: parameters, logged per epoch)
        "blobs": (["experiment=blobs"], "decision_regions", None),
        "multilinear": (["experiment=multilinear"], "predicted_vs_actual", None),
        "mnist": (["experiment=mnist_mlp", f"data.root={mnist_root}", "data.download=false"], "first_layer",
                  f"images={files / 'my_digits'}"),
        "csv_classes": (["experiment=animals", f"data.path={files / 'animals.csv'}"], "confusion_matrix",
                        f"table={files / 'animals.csv'}"),
        "csv_values": (["experiment=salary", f"data.path={files / 'salary.csv'}"], "predicted_vs_actual",
                       f"table={files / 'salary.csv'}"),
        "sklearn": (["experiment=breast_cancer"], "confusion_matrix", None),
        "image_folder": (["data=image_folder", f"data.path={files / 'shapes'}", "data.image_size=12",
                          "data.channels=3", "model=cnn", "callbacks=figures", "data.batch_size=8"], "errors",
                         f"images={files / 'new_shapes'}"),
    }  # fmt: skip


DATAMODULES = ["digits", "line", "blobs", "multilinear", "mnist", "csv_classes", "csv_values", "sklearn",
               "image_folder"]  # fmt: skip


@pytest.mark.parametrize("loop", list(LOOPS))
@pytest.mark.parametrize("precision", MATRIX)
@pytest.mark.parametrize("data", DATAMODULES)
def test_every_offered_precision_trains_every_datamodule_in_both_loops(
    make_config, tmp_path, files, mnist_root, data, precision, loop
):
    overrides, figure, predict_input = datamodules(files, mnist_root)[data]
    cfg = make_config(*overrides, f"trainer.precision={precision}", "trainer.max_epochs=1", "threads=1", *LOOPS[loop])
    cfg.trainer.enable_model_summary = True  # it runs an example through the network (64-true's first failure)
    result = train(cfg)

    assert result["status"] == "completed", result.get("error")
    assert result["loop"].startswith("the fast loop" if loop == "fast" else "Lightning's loop"), result["loop"]
    metrics = result["metrics"]
    assert any(key.startswith("test/") for key in metrics) and "val/loss" in metrics
    assert all(math.isfinite(value) for value in metrics.values()), metrics
    if figure:
        assert (tmp_path / "run" / "figures" / f"{figure}.png").is_file()
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)  # trained in the precision asked for
    dtypes = {value.dtype for value in checkpoint["state_dict"].values() if value.is_floating_point()}
    assert dtypes == {PARAMETER_DTYPES.get(precision, torch.float32)}
    if predict_input:  # hyperlab-predict reads the checkpoint (any precision) and predicts in float32
        output = run_predict(result["best_checkpoint"], predict_input)
        if predict_input.startswith("table="):
            predicted = pd.read_csv(io.StringIO(output))["predicted"]
            assert len(predicted) > 50 and predicted.notna().all(), output
            numbers = pd.api.types.is_numeric_dtype(predicted)  # (a regression's values, or a class's names)
            assert not numbers or np.isfinite(predicted).all(), output
        else:
            lines = output.strip().splitlines()
            assert lines and all("%" in line and "nan" not in line for line in lines), output


def run_predict(checkpoint: str, *options: str) -> str:
    """hyperlab-predict's command in this process: what it prints."""
    cfg = compose_config("predict", [f"ckpt_path={checkpoint}", *options])
    printed = io.StringIO()
    with redirect_stdout(printed):
        predict_command(cfg)
    return printed.getvalue()


def test_a_checkpoint_of_another_precision_is_evaluated_in_any_offered_one(make_config, tmp_path):
    trained = "64-true" if "64-true" in OFFERED else MATRIX[0]
    result = train(make_config(f"trainer.precision={trained}", "trainer.max_epochs=1", "threads=1"))
    for precision in MATRIX:
        overrides = [f"paths.log_dir={tmp_path / 'eval'}", f"trainer.precision={precision}", "callbacks=figures"]
        evaluated = evaluate(result["best_checkpoint"], overrides)
        assert evaluated["metrics"]["test/acc"] == pytest.approx(result["metrics"]["test/acc"], abs=0.03), precision


@pytest.mark.parametrize("precision", [p for p in ("16-true", "bf16-true", "64-true") if p in MATRIX])
def test_a_run_resumes_in_its_precision_with_its_optimizer_state(make_config, tmp_path, precision):
    overrides = (f"trainer.precision={precision}", "threads=1", "logger=none")
    first = train(make_config(*overrides, "trainer.max_epochs=1"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = train(make_config(*overrides, "trainer.max_epochs=2", f"ckpt_path={last}"))
    assert resumed["status"] == "completed" and resumed["epochs"] == 2
    assert resumed["metrics"]["val/loss"] < first["metrics"]["val/loss"]  # trained on from where it was
    (state,) = torch.load(last, weights_only=True)["optimizer_states"]
    assert {group["eps"] for group in state["param_groups"]} == {FLOAT16_EPS if precision == "16-true" else 1e-8}


@pytest.mark.parametrize("precision", REFUSED)
def test_a_precision_this_machine_cannot_run_is_refused_before_anything_is_built(make_config, precision):
    with pytest.raises(ConfigError) as refused:
        validate(make_config(f"trainer.precision={precision}"))
    message = str(refused.value)
    value = precision if precision.isdigit() else repr(precision)  # (YAML reads 16 as a number)
    assert message.startswith(f"trainer.precision={value} is not allowed: expected one of {OFFERED} {WHERE}")
    assert "\n" not in message


def test_16_mixed_on_the_cpu_is_one_line_and_status_2(tmp_path):
    """Lightning would run bf16-mixed instead (with a warning), under the name 16-mixed."""
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "train", "trainer.accelerator=cpu", "trainer.precision=16-mixed",
         f"paths.log_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 2, process.stderr[-2000:]
    (line,) = process.stderr.strip().splitlines()
    assert line.startswith("error: trainer.precision='16-mixed' is not allowed: expected one of ['64', '32', ")
    assert "'bf16-mixed'" in line and "on the CPU (16 and 16-mixed need a CUDA GPU" in line
    written = [path.name for path in tmp_path.rglob("*") if path.is_file()]  # (Hydra's own: .hydra/, train.log)
    assert not [name for name in written if name.endswith(".ckpt") or name.startswith(("events.", "metrics."))]


def test_each_accelerator_offers_what_it_can_run(monkeypatch):
    def machine(cuda: bool, mps: bool = False, bf16: bool = True, transformer_engine: bool = False) -> None:
        monkeypatch.setattr(precisions.CUDAAccelerator, "is_available", staticmethod(lambda: cuda))
        monkeypatch.setattr(precisions.MPSAccelerator, "is_available", staticmethod(lambda: mps))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
        found = object() if transformer_engine else None
        monkeypatch.setattr(precisions.importlib.util, "find_spec", lambda name: found)

    def refused(accelerator: str) -> set[str]:
        return set(PRECISIONS) - set(offered_precisions(accelerator, PRECISIONS)[0])

    machine(cuda=False)
    cpu_refuses = {"16-mixed", "16", "transformer-engine", "transformer-engine-float16"}
    assert refused("auto") == refused("cpu") == cpu_refuses
    machine(cuda=True)
    assert refused("auto") == refused("gpu") == refused("cuda") == {"transformer-engine", "transformer-engine-float16"}
    assert refused("cpu") == cpu_refuses  # a GPU machine told to train on its CPU
    machine(cuda=True, bf16=False, transformer_engine=True)
    assert refused("auto") == {"bf16-true", "bf16-mixed", "bf16"}
    machine(cuda=False, mps=True)
    assert refused("auto") == refused("gpu") == {"64-true", "64", "transformer-engine", "transformer-engine-float16"}


def test_the_aliases_are_offered_with_what_they_stand_for():
    import lightning as L

    for alias in [precision for precision in OFFERED if precision in ALIASES]:
        trainer = L.Trainer(precision=alias, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)  # fmt: skip
        assert trainer.precision in MATRIX, alias


def test_lightnings_conversion_of_a_batch_keeps_the_fast_loops_chunks():
    """Lightning's loops convert every batch with the plugin's `convert_input`, the fast loop's chunks (a list of
    mini-batches, whatever their number: two must not pass for one (inputs, targets) pair) included."""
    chunk = Chunk([(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), (torch.zeros(2, 3), torch.ones(2))])
    converted = HalfPrecision("bf16-true").convert_input(chunk)
    assert type(converted) is Chunk and [(x.dtype, y.dtype) for x, y in converted] == [
        (torch.bfloat16, torch.long),
        (torch.bfloat16, torch.bfloat16),
    ]


def test_the_metrics_sum_in_float32_whatever_the_parameters(make_config):
    """16-true and bf16-true convert the task with `.to(dtype)`, which reaches torchmetrics' sums: a bfloat16 sum
    stops counting at 256, a float16 one overflows past 65504."""
    task = build(make_config("logger=none", "callbacks=none")).task
    for dtype in (torch.bfloat16, torch.float16):
        task.to(dtype=dtype)
        task.keep_metrics_in_float32()
        for _ in range(100):  # 100 batches of 1000 losses of 0.7 (a float16 sum: inf; a bfloat16 weight: 256)
            task.val_loss.update(torch.full((1,), 0.7, dtype=dtype), torch.tensor([1000.0]))
        assert float(task.val_loss.compute()) == pytest.approx(0.7, abs=1e-3)
        task.val_loss.reset()


def test_the_optimizer_is_changed_only_where_a_precision_needs_it():
    adam = {"_target_": "torch.optim.Adam", "lr": 0.001, "fused": True}
    float32 = [torch.nn.Parameter(torch.zeros(2))]
    float16 = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))]
    plain = SimpleNamespace(gradient_clip_val=0.5, precision_plugin=Precision(), precision="32-true")
    assert optimizer_options(adam, plain, float32) is adam  # 32-true: nothing to do (no copy)
    assert optimizer_options(adam, None, float32) is adam  # (a task's optimizer built outside a Trainer)
    mixed = SimpleNamespace(gradient_clip_val=0.5, precision_plugin=MixedPrecision("bf16-mixed", "cpu"),
                            precision="bf16-mixed")  # fmt: skip
    assert optimizer_options(adam, mixed, float32) == {**adam, "fused": False}  # clipped under mixed precision
    mixed.gradient_clip_val = None
    assert optimizer_options(adam, mixed, float32) is adam
    assert optimizer_options(adam, plain, float16) == {**adam, "eps": FLOAT16_EPS}  # 16-true
    assert optimizer_options({**adam, "eps": 1e-3}, plain, float16)["eps"] == 1e-3  # as the config gives it
    sgd = {"_target_": "torch.optim.SGD", "lr": 0.1}
    assert optimizer_options(sgd, plain, float16) is sgd  # (no eps to take)
