"""A run's folder: its name, and an earlier attempt set aside in it (never overwritten).

Its life: named (the Hydra resolvers below, used by conf/hydra/default.yaml) -> checked writable, and not another
run's, then made and locked (hyperlab.folder_locks) -> an earlier attempt set aside (`make_room`, into
`attempts/<n>/`) -> the run's outcome and other results written (hyperlab.run_record).

The Hydra resolvers of conf/hydra/default.yaml:
- `hyperlab_run_name`: a sweep's run folders are named by the values its sweep varies (`lr=0.01,depth=2`; a key
  typed once for every run, such as `trainer.max_epochs=5`, stays out); TensorBoard names each run by its folder,
  so `tensorboard --logdir <sweep folder>` lists them by what differs;
- `hyperlab_run_dir`: a run resumed from a checkpoint continues in the checkpoint's own run folder;
- `hyperlab_hydra_subdir`: and Hydra's record of the resuming call goes beside the original's, not over it.
"""

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from hyperlab.errors import ConfigError
from hyperlab.folder_locks import refuse_overwrite
from hyperlab.json_files import reason_of

log = logging.getLogger(__name__)


def run_name(overrides: Sequence[str], sweep_dir: str = "") -> str:
    """The resolver `hyperlab_run_name`: a sweep's run folder, named by its job's `overrides` (Hydra's
    hydra.overrides.task) as the sweep's multirun.yaml in `sweep_dir` says (see `name_of`)."""
    return name_of(list(overrides), *sweep_keys(Path(sweep_dir) / "multirun.yaml" if sweep_dir else None))


def name_of(overrides: list[str], swept: set[str], typed: set[str], excluded: set[str]) -> str:
    """`optimizer.lr=0.01 model.hidden=128` -> `hidden=128,lr=0.01`; a key keeps its group where two would clash.
    Of a sweep's run, every key and group choice the sweep varies (`swept`, whatever `excluded` says: a sweep over
    `experiment=a,b` names its runs by experiment), and those its sweeper sets for each run (not `typed` on the
    command line: an Optuna trial's number); a run of a sweep that varies nothing, or outside a sweep: every key
    typed but the `excluded` ones (where the data is, how many threads). A long number a search drew is shortened
    to 4 significant digits (the run's config has it whole)."""
    items = sorted((key.lstrip("+~"), value) for key, _, value in (o.partition("=") for o in overrides) if _)
    chosen = [(k, v) for k, v in items if k in swept or (typed and k not in typed and k not in excluded)]
    chosen = chosen or [(key, value) for key, value in items if key not in excluded]
    if not chosen:
        return "defaults"
    names = short_names([key for key, _ in chosen])
    return ",".join(f"{names[key]}={short_value(value).replace('/', '_')}" for key, value in chosen)


def short_value(value: str) -> str:
    """`0.0012345678901` -> `0.001235`; anything else as it is."""
    if len(value) <= 8 or not re.fullmatch(r"-?\d+\.\d+(e-?\d+)?|-?\d+(\.\d+)?e-?\d+", value):
        return value
    return f"{float(value):.4g}"


def short_names(keys: list[str]) -> dict[str, str]:
    """`optimizer.lr` -> `lr`, unless two keys would get the same short name (then both keep their group)."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: (name if last.count(name) == 1 else key) for key, name in zip(keys, last, strict=True)}


def sweep_keys(multirun_file: Path | None) -> tuple[set[str], set[str], set[str]]:
    """From a sweep's multirun.yaml: the keys it varies (given several values, `a,b`, `range`, `glob`, ..., on its
    command line or in its sweeper's params), the keys typed on its command line, and those run names leave out
    (empty sets without the file)."""
    if multirun_file is None or not multirun_file.is_file():
        return set(), set(), set()
    hydra = yaml.safe_load(multirun_file.read_text()).get("hydra", {})
    params = hydra.get("sweeper", {}).get("params") or {}
    overrides = parse_overrides(params, hydra.get("overrides", {}).get("task", []))
    swept = {override.key_or_group for override in overrides if override.is_sweep_override()}
    excluded = hydra.get("job", {}).get("config", {}).get("override_dirname", {}).get("exclude_keys", [])
    return swept, {override.key_or_group for override in overrides}, set(excluded)


def parse_overrides(params: Any, arguments: Sequence[str], config_loader: Any = None) -> list[Override]:
    """A sweep's sweeper params and command line, parsed as its sweeper reads them (a glob over a group's options
    is expanded only with Hydra's `config_loader`)."""
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    return OverridesParser.create(config_loader=config_loader).parse_overrides(lines)


def excluded_keys(hydra_file: Path) -> list[str]:
    """The keys a run's name leaves out (where the data is, how many threads, ...): not what a sweep compares."""
    if not hydra_file.is_file():
        return []
    hydra = yaml.safe_load(hydra_file.read_text()).get("hydra", {})
    return hydra.get("job", {}).get("config", {}).get("override_dirname", {}).get("exclude_keys", [])


def folder_name(name: str) -> str:
    """`name` as one plain folder name: the characters of run names are kept, any other (a `/`) becomes `_`, and
    leading dots go (a name read from a file must never lead out of the folder it is put in)."""
    return re.sub(r"[^\w.=,+-]", "_", name).lstrip(".") or "run"


def resumed_run_dir(ckpt_path: str | None, finetune: Any, new_run_dir: str) -> str:
    """A resumed run's folder: that of `ckpt_path` when the file is in one (`<run>/checkpoints/<file>`).
    Otherwise `new_run_dir`: for `last` (with hydra.run.dir given), a fine-tune (which starts a new run from the
    checkpoint), or a file elsewhere (which hyperlab-train refuses unless hydra.run.dir names the folder)."""
    if not ckpt_path or ckpt_path == "last" or finetune:
        return new_run_dir
    try:
        checkpoints = Path(ckpt_path).resolve().parent
    except (OSError, RuntimeError):  # (a symlink loop: hyperlab-train refuses the file in one line, how_it_starts)
        return new_run_dir
    return str(checkpoints.parent) if checkpoints.name == "checkpoints" else new_run_dir


def hydra_subdir(ckpt_path: str | None, finetune: Any) -> str:
    return ".hydra/resumed" if ckpt_path and not finetune else ".hydra"


RESOLVERS = {"hyperlab_run_name": run_name, "hyperlab_run_dir": resumed_run_dir, "hyperlab_hydra_subdir": hydra_subdir}


# ------------------------------------------------------------------------------------------------ earlier attempts
RESULT_FILES = ("metrics.json", "config.yaml", "hparams.yaml", "preprocessing.json", "checkpoints", "figures")
RESULT_FILES += ("events.out.tfevents.*",)  # TensorBoard's: the curves, the figures, the HParams session
SET_ASIDE = "set-aside-events"  # replaces `tfevents` in a set-aside file's name: TensorBoard lists no attempt


def make_room(run_dir: Path, resumes: bool, rerun: bool) -> Path | None:
    """Keep an earlier attempt's results (the folder is locked): a resumed run (`resumes`) continues the run, and the
    earlier attempt's record alone is set aside; a re-run (`rerun`) sets all of the earlier attempt's results aside.
    Returns where a resumed run's earlier record went (`RunRecord.earlier`: put back if the new one cannot be
    written)."""
    refuse_overwrite(run_dir, resumes, rerun)
    previous = (run_dir / "metrics.json").exists()
    try:
        if resumes:
            return set_aside(run_dir, ("metrics.json",)) if previous else None
        if previous or (run_dir / "checkpoints").exists():
            set_aside(run_dir, RESULT_FILES)
    except OSError as error:  # (a full disk: no room for attempts/<n>/)
        raise ConfigError(f"cannot set the earlier attempt aside in {run_dir}/attempts: {reason_of(error)}") from None
    return None


def set_aside(run_dir: Path, patterns: tuple[str, ...]) -> Path:
    """Move an earlier attempt's results (the files matching `patterns`) into `<run>/attempts/<n>/`; its TensorBoard
    files renamed (`events.out.set-aside-events.*`) so that TensorBoard does not list the attempt as one more run
    (renamed back, `tensorboard --logdir <run>/attempts/<n>` shows it)."""
    attempts = run_dir / "attempts"
    target = attempts / str(len(list(attempts.glob("*"))) + 1 if attempts.is_dir() else 1)
    target.mkdir(parents=True)
    for pattern in patterns:
        for path in run_dir.glob(pattern):
            path.rename(target / path.name.replace("tfevents", SET_ASIDE))
    log.info(f"the earlier attempt's results are kept in {target}")
    return target
