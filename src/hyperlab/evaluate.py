"""`hyperlab-eval ckpt_path=<file> [data=<option>] [data.<key>=<value> ...]`: test a checkpoint in a fresh
process, from the checkpoint alone.

The model is rebuilt from the checkpoint's hyper-parameters and weights, the data from the run's config it
carries. The data may be overridden (`data.root=...`, `data=fashion_mnist`): a group choice is composed from
conf/data/, a key must be one the run's config has. The metrics (and the run's figures, if it drew any) go to
a new folder, `<log_dir>/<name>/eval/<time>/`.
"""

import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from hyperlab.checkpoints import data_state, read_checkpoint, task_from
from hyperlab.config import CONF_DIR
from hyperlab.errors import ConfigError, HyperlabError
from hyperlab.train import save_preprocessing, scalars

log = logging.getLogger(__name__)


def evaluate(ckpt_path: str, overrides: list[str]) -> dict[str, Any]:
    """Test the checkpoint at `ckpt_path` on its run's data (with `overrides`); returns what metrics.json holds."""
    started = time.perf_counter()
    checkpoint = read_checkpoint(ckpt_path)
    task = task_from(checkpoint, ckpt_path)
    cfg = OmegaConf.create(task.run_config)
    if not cfg:
        raise ConfigError(f"{ckpt_path} carries no run config (it was not written by hyperlab-train)")
    apply_overrides(cfg, overrides)
    run_dir = Path(cfg.paths.log_dir) / cfg.name / "eval" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    run_dir.mkdir(parents=True, exist_ok=False)

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.load_state_dict(data_state(checkpoint))  # what training fitted
    datamodule.prepare_data()
    datamodule.setup("test")
    check_data_fits(task, datamodule, ckpt_path)
    figures = [instantiate(c) for c in cfg.callbacks.values() if c["_target_"].startswith("hyperlab.callbacks.")]
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
    result = {
        "status": "evaluated",
        "checkpoint": str(Path(ckpt_path).resolve()),
        "overrides": overrides,
        "metrics": scalars(metrics),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(run_dir),
    }
    OmegaConf.save(cfg, run_dir / "config.yaml")
    save_preprocessing(datamodule, run_dir)  # training's own, not refitted on this data
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """`data=<option>` recomposes the data group from conf/data/; `a.b=value` sets a key the config has."""
    OmegaConf.set_struct(cfg, True)
    for override in OverridesParser.create().parse_overrides(overrides):
        key, value = override.key_or_group, override.value()
        if key == "data" and isinstance(value, str):
            cfg.data = compose_data(cfg, value)
            continue
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except Exception:  # noqa: BLE001 - OmegaConf's errors for a key that isn't there vary
            raise ConfigError(f"{key} is not a key of this run's config (the data's keys: {list(cfg.data)})") from None


def compose_data(cfg: DictConfig, option: str) -> dict[str, Any]:
    """The data group's `option` from conf/data/, resolved against the run's seed and paths."""
    if not (CONF_DIR / "data" / f"{option}.yaml").is_file():
        options = sorted(path.stem for path in (CONF_DIR / "data").glob("*.yaml"))
        raise ConfigError(f"data={option} is not a data option: expected one of {options}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose(
            "train",
            overrides=[f"data={option}", f"seed={cfg.seed}", f"paths.data_dir={cfg.paths.data_dir}"],
        )
    return OmegaConf.to_container(composed.data, resolve=True)  # type: ignore[return-value]


def check_data_fits(task: L.LightningModule, datamodule: Any, source: str) -> None:
    network = task.hparams.network
    if list(network["input_shape"]) != list(datamodule.input_shape):
        raise ConfigError(
            f"{source} was trained on inputs of shape {network['input_shape']}; this data's are "
            f"{datamodule.input_shape}"
        )
    if datamodule.kind != task.kind:
        raise ConfigError(f"{source} is a {task.kind} model; this data is for {datamodule.kind}")
    if task.kind == "classification" and datamodule.num_classes != task.hparams.num_classes:
        raise ConfigError(
            f"{source} tells {task.hparams.num_classes} classes apart; this data has {datamodule.num_classes}: "
            "fine-tune it for them (hyperlab-finetune)"
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    arguments = sys.argv[1:]
    paths = [a.split("=", 1)[1] for a in arguments if a.startswith("ckpt_path=")]
    if len(paths) != 1 or any("=" not in a for a in arguments):
        print("usage: hyperlab-eval ckpt_path=<file.ckpt> [data=<option>] [data.<key>=<value> ...]", file=sys.stderr)
        sys.exit(2)
    try:
        result = evaluate(paths[0], [a for a in arguments if not a.startswith("ckpt_path=")])
    except HyperlabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    lines = [f"{key:<20} {value:.4f}" for key, value in result["metrics"].items()]
    print("\n".join([f"evaluated {result['checkpoint']}", *lines, f"results: {result['run_dir']}"]))


if __name__ == "__main__":
    main()
