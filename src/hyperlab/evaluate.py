"""`hyperlab-eval ckpt_path=<file> [data=<option>] [data.<key>=<value> ...]`: test a checkpoint in a fresh
process, from the checkpoint alone.

The model is rebuilt from the checkpoint's hyper-parameters and weights. The config is composed from conf/ like
hyperlab-train's: the data option that builds the checkpoint's datamodule, with the data values the checkpoint
stored (checked by the data's schema), then the command line's overrides (`data.root=...`, `data=fashion_mnist`,
`trainer.accelerator=cpu`, `paths.log_dir=...`). Nothing in the file chooses a class to build or a place to write:
the metrics (and the run's figures, if it drew any) go to `<paths.log_dir>/<name>/eval/<time>/`, where `name` is
the stored one reduced to a plain folder name, and data is never downloaded into a folder the file names
(`data.download=true` on the command line allows it).

The command line is checked before the checkpoint is read (or torch imported): its keys, and the values it gives
but the data's, when the data is the checkpoint's (`check_command_line`).
"""

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyperlab.classes import CONF_DIR, OPTION_KEY, stored_option
from hyperlab.config import check_declared, compose_config, validate
from hyperlab.errors import ConfigError, first_line
from hyperlab.run_folder import folder_name
from hyperlab.run_record import RunRecord, scalars, write_config, write_preprocessing

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)
EVAL_KEYS = ("data", "callbacks", "trainer", "paths", "threads", "name")  # what an evaluation's command line may set


def evaluate(ckpt_path: str, overrides: list[str]) -> dict[str, Any]:
    """Test the checkpoint at `ckpt_path` on its run's data (with `overrides`); returns what metrics.json holds."""
    import lightning as L
    import torch

    from hyperlab.checkpoints import data_state, read_checkpoint, stored_config, task_from
    from hyperlab.loggers import TensorBoardLogger

    started = time.perf_counter()
    checkpoint = read_checkpoint(ckpt_path)
    task = task_from(checkpoint, ckpt_path)
    stored = stored_config(checkpoint)
    if not stored:
        raise ConfigError(f"{ckpt_path} carries no run config (it was not written by hyperlab-train)")
    time_stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    cfg = evaluation_config(stored, overrides, time_stamp)
    run_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.load_state_dict(data_state(checkpoint))  # what training fitted
    datamodule.prepare_data()
    datamodule.setup("test")
    check_data_fits(task, datamodule, ckpt_path)
    figures = [instantiate(c) for c in cfg.callbacks.values() if c["_target_"].startswith("hyperlab.callbacks.")]
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=False)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        default_root_dir=str(run_dir),
        logger=TensorBoardLogger(str(run_dir), name="", version="", default_hp_metric=False),
        callbacks=figures,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (metrics,) = trainer.test(task, datamodule=datamodule, verbose=False)
    record = RunRecord(cfg.name, run_dir, started, checkpoint=str(Path(ckpt_path).resolve()), overrides=overrides)
    record.fields["metrics"] = scalars(metrics)
    write_config(run_dir, OmegaConf.to_container(cfg))
    write_preprocessing(run_dir, datamodule.state_dict())  # training's own, not refitted on this data
    return record.write("evaluated")


def evaluation_config(stored: dict[str, Any], overrides: list[str], time_stamp: str) -> DictConfig:
    """conf/train.yaml composed with the data option that builds the checkpoint's datamodule and the callbacks it
    drew figures with, the stored data values (checked by `read_checkpoint`) under the command line's overrides."""
    keys = {override.key_or_group for override in evaluation_overrides(overrides)}
    choices = [] if "data" in keys else [f"data={stored_option('data', stored['data'])}"]
    choices += [] if "callbacks" in keys else [f"callbacks={figure_options(stored)}"]
    composed = compose_config("train", ["~experiment", *choices, *overrides])
    data: dict[str, Any] = {}  # the stored values, under the command line's
    if "data" not in keys:
        given = [OPTION_KEY, "_target_", *(key.removeprefix("data.") for key in keys)]  # (the option: the class)
        data = {key: value for key, value in stored["data"].items() if key not in given}
    if "download" in composed.data and "data.download" not in keys:
        data["download"] = False  # never into a folder a file names ...
    elif "download" in composed.data and "data.root" not in keys:
        data["root"] = composed.paths.data_dir  # ... a download asked for goes where the command line or conf/ say
    name = folder_name(composed.name if "name" in keys else stored["name"])
    output_dir = str(Path(composed.paths.log_dir) / name / "eval" / time_stamp)
    try:  # what the checkpoint and the command line settle, as a new config
        cfg = OmegaConf.merge(
            composed, {"data": data, "name": name, "seed": stored["seed"], "paths": {"output_dir": output_dir}}
        )
    except OmegaConfBaseException as error:
        raise ConfigError(first_line(error)) from None
    validate(cfg)
    return cfg


def figure_options(stored: dict[str, Any]) -> str:
    """The options of conf/callbacks/ that define the callbacks the run had (`figures`, `[parameters,figures]`),
    or `default` (checkpoints only, no figures)."""
    had = set(stored.get("callbacks", {}))
    options = []
    for path in sorted((CONF_DIR / "callbacks").glob("*.yaml")):
        defined = set(OmegaConf.load(path)) - {"defaults"}
        if path.stem != "default" and defined & had:
            options.append(path.stem)
    return f"[{','.join(options)}]" if len(options) > 1 else (options or ["default"])[0]


def evaluation_overrides(overrides: list[str]) -> list[Override]:
    """The command line's overrides, parsed; refused if one sets a key an evaluation takes from the checkpoint."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ConfigError(first_line(error)) from None
    for override in parsed:
        key = override.key_or_group
        if key.lstrip("+~").split(".")[0] not in EVAL_KEYS:
            raise ConfigError(
                f"{key} cannot be set for an evaluation, which tests the checkpoint as it was trained (its model, "
                "optimizer and seed come from the file): expected data=<option>, a key of data., callbacks., "
                "trainer. or paths., threads or name"
            )
    return parsed


def check_command_line(overrides: list[str]) -> None:
    """Refuse, before the checkpoint is read (and torch imported), an override an evaluation does not take, and a
    key, option or value the config does not (`check_declared`): all of them, but a value of the data's when the data
    is the checkpoint's (its option is known once the file is read)."""
    parsed = evaluation_overrides(overrides)
    chosen = any(override.key_or_group.lstrip("+~") == "data" for override in parsed)
    known = [text for text, override in zip(overrides, parsed, strict=True)
             if chosen or not override.key_or_group.lstrip("+~").startswith("data.")]  # fmt: skip
    check_declared(compose_config("train", ["~experiment", *known]))


def check_data_fits(task: "L.LightningModule", datamodule: Any, source: str) -> None:
    from hyperlab.checkpoints import check_inputs_fit

    check_inputs_fit(task.hparams.network, datamodule.input_shape, source)
    if datamodule.kind != task.kind:
        raise ConfigError(f"{source} is a {task.kind} model; this data is for {datamodule.kind}")
    if task.kind == "classification" and datamodule.num_classes != task.hparams.num_classes:
        raise ConfigError(
            f"{source} tells {task.hparams.num_classes} classes apart; this data has {datamodule.num_classes}: "
            "fine-tune it for them (hyperlab-finetune)"
        )


def evaluate_command(arguments: list[str]) -> None:
    """hyperlab-eval: `ckpt_path=<file>` and the overrides of the evaluation's config."""
    try:  # (as Hydra reads it: a quoted path is unquoted, see cli.quoted_paths)
        given = [a for a in arguments if a.startswith("ckpt_path=")]
        paths = [str(OverridesParser.create().parse_override(argument).value()) for argument in given]
    except HydraException as error:
        raise ConfigError(first_line(error)) from None
    if len(paths) != 1:
        raise ConfigError("ckpt_path is required: hyperlab-eval ckpt_path=<file.ckpt> [data=<option>] [data.<key>=...]")
    overrides = [a for a in arguments if not a.startswith("ckpt_path=")]
    check_command_line(overrides)
    result = evaluate(paths[0], overrides)
    lines = [f"{key:<20} {value:.4f}" for key, value in result["metrics"].items()]
    print("\n".join([f"evaluated {result['checkpoint']}", *lines, f"results: {result['run_dir']}"]))
