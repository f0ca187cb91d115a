"""Lightning's precisions (`trainer.precision`): which a run may ask for on the accelerator it gets, and what a
precision asks of the task, its optimizer and its data.

Every precision Lightning's Trainer accepts runs on every built-in datamodule, in both training loops, with figures,
checkpoints and hyperlab-predict (tests/test_precisions.py), except those the accelerator cannot run, which are
refused in one line before anything is built (`offered_precisions`, called by the config's check):

- on a CPU: `16-mixed` and its alias `16` (float16 autocast is a GPU's: Lightning would quietly run bf16-mixed
  instead) and `transformer-engine*` (NVIDIA's Transformer Engine: a CUDA GPU and its package);
- on Apple's MPS: `64-true` and `64` (no float64 there) and `transformer-engine*`;
- on a CUDA GPU: the bf16 ones where the GPU has no bfloat16 (before Ampere), `transformer-engine*` without its
  package.

The data comes in the model's dtype: Lightning's loops convert each batch's floating tensors with the precision
plugin's `convert_input`, and an in-memory datamodule holds its splits in that dtype already (converted once per run,
`TensorDataModule.split_on_device`), so that conversion costs nothing per step; 32-true converts nothing. The task
keeps its metrics' sums in float32 (`Task.keep_metrics_in_float32`), and its optimizer as a precision needs it
(`optimizer_options`).
"""

import importlib.util
import inspect
import logging
from typing import Any

import torch
from lightning.fabric.accelerators.cuda import CUDAAccelerator
from lightning.fabric.accelerators.mps import MPSAccelerator
from lightning.pytorch.plugins.precision import MixedPrecision, Precision

from hyperlab.classes import config_class

log = logging.getLogger(__name__)

GPU_ONLY = ("16-mixed", "16")  # float16 autocast: Lightning runs bf16-mixed instead on a CPU
TRANSFORMER_ENGINE = ("transformer-engine", "transformer-engine-float16")
BF16 = ("bf16-true", "bf16-mixed", "bf16")
FLOAT64 = ("64-true", "64")
HALF_DTYPES = (torch.float16, torch.bfloat16)

# float16 parameters (16-true) are updated in float16: Adam's and RMSprop's default eps (1e-8) is 0 there, and a
# gradient under ~2e-4 squares to 0, so a step divides by (almost) nothing and the run diverges within a few steps.
# A 16-true run whose optimizer takes an eps and is not given one gets this one (what float16 training uses).
FLOAT16_EPS = 1e-4


def accelerator_kind(accelerator: str) -> str:
    """The kind of device `trainer.accelerator` gives: "cuda", "mps" or "cpu" (auto: as Lightning chooses; gpu: MPS
    on a Mac, else CUDA, which Lightning refuses itself where there is none)."""
    if accelerator == "auto":
        if MPSAccelerator.is_available():
            return "mps"
        return "cuda" if CUDAAccelerator.is_available() else "cpu"
    if accelerator == "gpu":
        return "mps" if MPSAccelerator.is_available() else "cuda"
    return accelerator


def offered_precisions(accelerator: str, known: list[str]) -> tuple[list[str], str]:
    """Which of the precisions `known` (Lightning's) a run on `accelerator` can run, and where it runs (for the
    message that refuses the others)."""
    kind = accelerator_kind(accelerator)
    refused: set[str] = set()
    if kind == "cpu":
        refused.update(GPU_ONLY, TRANSFORMER_ENGINE)
        where = "on the CPU (16 and 16-mixed need a CUDA GPU; transformer-engine a CUDA GPU and its package)"
    elif kind == "mps":
        refused.update(FLOAT64, TRANSFORMER_ENGINE)
        where = "on Apple's MPS (no float64 there; transformer-engine needs a CUDA GPU)"
    else:
        where = "on this CUDA GPU"
        if CUDAAccelerator.is_available() and not has_bfloat16():
            refused.update(BF16)
            where += " (it has no bfloat16)"
        if importlib.util.find_spec("transformer_engine") is None:
            refused.update(TRANSFORMER_ENGINE)
            where += " (transformer-engine needs NVIDIA's transformer_engine package)"
    return [precision for precision in known if precision not in refused], where


def has_bfloat16() -> bool:
    """Whether the CUDA GPU computes in bfloat16 itself (Ampere and later), not emulated."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no emulation to leave out
        return torch.cuda.is_bf16_supported()


def input_dtype(plugin: Precision) -> torch.dtype:
    """The dtype the precision plugin gives floating inputs (float32 for 32-true: the default converts nothing)."""
    return plugin.convert_input(torch.empty(0)).dtype


def optimizer_options(options: dict[str, Any], trainer: Any, parameters: list[torch.nn.Parameter]) -> dict[str, Any]:
    """The optimizer's options (`_target_` and its arguments) as the precision needs them; `options` itself when it
    needs nothing (32-true, 64-true, bf16-true; `trainer` None: a task's optimizer built outside a Trainer):

    - mixed precision with gradient clipping: unfused (Lightning clips gradients under 16-mixed or bf16-mixed only
      when the optimizer's step does not unscale them itself, as a fused one does);
    - float16 parameters (16-true): an eps float16 can hold (`FLOAT16_EPS`), unless the config gives one.
    """
    changed = dict(options)
    clipped = trainer is not None and trainer.gradient_clip_val
    if options.get("fused") and clipped and isinstance(trainer.precision_plugin, MixedPrecision):
        changed["fused"] = False
        log.info(f"optimizer.fused=false: Lightning clips gradients under {trainer.precision} in an unfused step only")
    float16 = any(p.dtype == torch.float16 for p in parameters)
    if float16 and "eps" not in options and takes_eps(options):
        changed["eps"] = FLOAT16_EPS
        log.info(f"optimizer eps={FLOAT16_EPS:g} in float16 (the default 1e-8 is 0 there; +optimizer.eps sets it)")
    return changed if changed != options else options


def takes_eps(options: dict[str, Any]) -> bool:
    """Whether the optimizer class an optimizer config builds (by its option of conf/optimizer/, or a `_target_` one
    of them builds) takes an `eps`."""
    return "eps" in inspect.signature(config_class("optimizer", options)).parameters
