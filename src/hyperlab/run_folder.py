"""A run's folder, from its name to its results: every file a run writes into it is written here.

Its life: named (the Hydra resolvers below, used by conf/hydra/default.yaml) -> checked writable, and not another
run's (the Hydra callback `WritableFolders`, before Hydra writes into it) -> made and locked (`locked`: a second
process is refused) -> an earlier attempt set aside (`make_room`, never overwritten) -> the run's outcome recorded
(`RunRecord`: metrics.json, however the run ends, in brief on a full disk) -> its other results written
(`write_config`, `write_preprocessing`). Every JSON file is strict JSON (`json_text`: a NaN is written as null, and
listed), read back as it was written (`read_json`).

The Hydra resolvers of conf/hydra/default.yaml:
- `hyperlab_run_name`: a sweep's run folders are named by the values its sweep varies (`lr=0.01,depth=2`; a key
  typed once for every run, such as `trainer.max_epochs=5`, stays out); TensorBoard names each run by its folder,
  so `tensorboard --logdir <sweep folder>` lists them by what differs;
- `hyperlab_run_dir`: a run resumed from a checkpoint continues in the checkpoint's own run folder;
- `hyperlab_hydra_subdir`: and Hydra's record of the resuming call goes beside the original's, not over it.
"""

import errno
import fcntl
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError, DataError, RecordNotWritten, RunFolderInUse, exit_for

log = logging.getLogger(__name__)
LOCK_FILE = ".hyperlab.lock"  # in a run or sweep folder: locked by the process writing into it


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


class WritableFolders(Callback):
    """Refuses, in one line and with status 2, a run or sweep folder that cannot be made, before Hydra tries to
    make it (Hydra's own failure is a traceback); and a run folder that holds a run or is in use (`refuse_taken`),
    before Hydra writes its record of the call (.hydra/) over that run's. Hydra passes a callback's SystemExit on."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(Path(config.hydra.run.dir))
        try:
            refuse_taken(config)
        except RunFolderInUse as error:
            exit_for(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(Path(config.hydra.sweep.dir))


def refuse_unwritable(folder: Path) -> None:
    existing = next(path for path in [folder.absolute(), *folder.absolute().parents] if path.exists())
    reason = "not a folder" if not existing.is_dir() else unwritable(existing)
    if reason:
        exit_for(ConfigError(f"cannot make the run folder {folder}: {existing} is {reason} (see paths.log_dir)"))


def unwritable(folder: Path) -> str:
    """Why nothing can be made in `folder` ('' when something can). Tried, not read from its permissions: root may
    write anywhere, but not into /proc, nor a read-only or full file system."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hyperlab-check-", dir=folder))
    except OSError as error:
        return f"not writable ({error.strerror})"
    return ""


def refuse_taken(config: DictConfig) -> None:
    """`train`'s first refusals (the folder holds a run, or another process writes into it), made from a config with
    its `hydra` node, where Hydra has not yet written its record of the call into the run folder: a refused call
    leaves that run's .hydra/ as it was (hyperlab.cli checks the command line so; `WritableFolders`, any call)."""
    if process_rank() != 0:  # DDP's other processes, started into the folder rank 0 holds (as `train` says)
        return
    run_dir = Path(config.hydra.run.dir)
    resumes = bool(config.get("ckpt_path")) and not config.get("finetune")  # (as `hydra_subdir` says)
    refuse_in_use(run_dir)
    refuse_overwrite(run_dir, resumes, rerun=bool(config.get("resume")))


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")  # Lightning's rank_zero_only reads these


def process_rank() -> int:
    """This process's rank among a multi-process run's, as Lightning's `rank_zero_only.rank` reads it from the
    environment (read here before Lightning is imported): 0 for a run of one process."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def lock_folder(folder: Path) -> TextIO | None:
    """An exclusive lock on `folder`, held while the returned file stays open; None when another process holds it.
    The operating system drops it with its process, so a killed run leaves no stale lock behind."""
    handle = (folder / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder`, waiting for the process that holds it (for short writes, such as a record that
    several processes rewrite in turn)."""
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ------------------------------------------------------------------------------------------------ made and locked
@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Make the run folder and hold an exclusive lock on it while the run writes into it: a second process given the
    same folder is refused at once."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(run_dir)
    except OSError as error:
        raise ConfigError(f"cannot write the run folder {run_dir}: {error.strerror} (see paths.log_dir)") from None
    if lock is None:
        raise RunFolderInUse(f"{run_dir} is in use by another run (it holds {LOCK_FILE}'s lock)")
    with lock:
        yield


# ------------------------------------------------------------------------------------------------ earlier attempts
RESULT_FILES = ("metrics.json", "config.yaml", "hparams.yaml", "preprocessing.json", "checkpoints", "figures")
RESULT_FILES += ("events.out.tfevents.*",)  # TensorBoard's: the curves, the figures, the HParams session
SET_ASIDE = "set-aside-events"  # replaces `tfevents` in a set-aside file's name: TensorBoard lists no attempt


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's metrics.json, None when it has none."""
    path = run_dir / "metrics.json"
    return read_json(path) if path.is_file() else None


def refuse_overwrite(run_dir: Path, resumes: bool, rerun: bool) -> None:
    """A new run in a folder that holds a run is refused, unless it resumes that run or is asked to re-run it (`rerun`,
    resume=true). Reads only: checked before anything is built, and again under the lock (`make_room`)."""
    if not resumes and not rerun and ((run_dir / "metrics.json").exists() or (run_dir / "checkpoints").exists()):
        raise RunFolderInUse(f"{run_dir} already holds a run; refusing to overwrite it (resume=true re-runs it)")


def refuse_in_use(run_dir: Path) -> None:
    """A folder another process is writing into is refused (checked before anything is built; `locked` takes it)."""
    lock = lock_folder(run_dir) if (run_dir / LOCK_FILE).exists() else None
    if lock is None and (run_dir / LOCK_FILE).exists():
        raise RunFolderInUse(f"{run_dir} is in use by another run (it holds {LOCK_FILE}'s lock)")
    if lock is not None:
        lock.close()


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


# ------------------------------------------------------------------------------------------------ the outcome
class RunRecord:
    """A run's metrics.json: filled in as the run goes, written once when it ends, however it ends (completed,
    diverged, failed, interrupted; an evaluation's: evaluated). `earlier`: where `make_room` set a resumed run's
    earlier record aside."""

    def __init__(self, name: str, run_dir: Path, started: float, **fields: Any) -> None:
        self.path = run_dir / "metrics.json"
        self.started = started
        self.written = False
        self.earlier: Path | None = None
        self.fields: dict[str, Any] = {"name": name, "metrics": {}, **fields, "run_dir": str(run_dir), **slurm_job()}

    def write(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Write metrics.json (atomically: a kill leaves the old file or the new one); once per attempt, written or
        not (a run that fails for want of room is not recorded again as failed)."""
        result = {"name": self.fields["name"], "status": status, "error": error, **self.fields}
        result["wall_time_s"] = round(time.perf_counter() - self.started, 3)
        if not self.written:
            self.written = True
            self.save(result)
        return result

    def save(self, result: dict[str, Any]) -> None:
        try:
            write_atomically(self.path, json_text(result, indent=2))
        except OSError as refused:
            self.save_brief(result, refused)

    def save_brief(self, result: dict[str, Any], refused: OSError) -> None:
        """On a full disk, the record in brief (`brief`); when even that cannot be written, the earlier attempt's
        record is put back in place, and RecordNotWritten says what was lost."""
        try:
            write_atomically(self.path, json_text(brief(result, refused), indent=2))
        except OSError:
            ended = f"the run ended {result['status']}" + (f": {result['error']}" if result["error"] else "")
            kept = "; the earlier attempt's record is back in place" if self.put_back() else ""
            raise RecordNotWritten(
                f"{self.path.parent}: metrics.json could not be written ({reason_of(refused)}): {ended}{kept}"
            ) from None

    def put_back(self) -> bool:
        """The earlier attempt's record back where this attempt's could not be written (and its attempts/<n>/ gone,
        with attempts/, when that leaves them empty)."""
        if self.earlier is None or not (self.earlier / "metrics.json").is_file() or self.path.exists():
            return False
        (self.earlier / "metrics.json").rename(self.path)  # (a rename takes no room)
        for folder in (self.earlier, self.earlier.parent):
            if any(folder.iterdir()):
                break
            folder.rmdir()
        return True


def brief(result: dict[str, Any], error: OSError) -> dict[str, Any]:
    """A run's record for a disk too full for the whole of it: how the run ended and its final metrics, without its
    lists and tables (history, hparams, ...), and why (`incomplete`)."""
    kept = {key: value for key, value in result.items() if key == "metrics" or not isinstance(value, (list, dict))}
    return {**kept, "incomplete": f"the whole record could not be written ({reason_of(error)}): this is its summary"}


NO_ROOM = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or a user's quota spent


def reason_of(error: OSError) -> str:
    """`ENOSPC: No space left on device`."""
    code = errno.errorcode.get(error.errno or 0)
    return f"{code}: {error.strerror}" if code and error.strerror else str(error)


def slurm_job() -> dict[str, str]:
    """The SLURM job running this run as squeue, sacct and submitit's folders name it (`<array job>_<task>` for a job
    array's task, else the job id): `{"slurm_job": ...}`, or {} outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    return {"slurm_job": job} if job else {}


def record_unstarted(name: str, run_dir: Path, status: str, error: str, monitor: str, monitor_mode: str) -> None:
    """A run that ended before it started training (a sweep's run refused: `failed`; a signal while it was being
    built: `interrupted`), in a folder Hydra made for it: its metrics.json says why, never over an earlier one."""
    lock = lock_folder(run_dir) if run_dir.is_dir() else None
    if lock is None:  # no folder, or another process is writing into it
        return
    with lock:
        if not (run_dir / "metrics.json").exists():
            record = RunRecord(name, run_dir, time.perf_counter(), monitor=monitor, monitor_mode=monitor_mode)
            record.write(status, error)


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in sorted(metrics.items())}


# ------------------------------------------------------------------------------------------------ other results
def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """config.yaml: the run's resolved config."""
    write_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(config))


def write_preprocessing(run_dir: Path, state: dict[str, Any]) -> None:
    """`preprocessing.json`: what a table's datamodule fitted on the training rows and applied (also in every
    checkpoint); nothing for data without fitted state."""
    if state:
        write_atomically(run_dir / "preprocessing.json", json_text(state, indent=2))


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it: readers see the old file or the new one, and
    a write that fails (a full disk) leaves no temporary file behind."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------ strict JSON
NON_FINITE = "non_finite"  # a JSON file's list of the numbers JSON cannot hold, written as null: where, and what


def json_text(data: dict[str, Any], indent: int | None = None) -> str:
    """`data` as strict JSON: each NaN or infinite number becomes null, and `non_finite` lists where it was and what
    it was (`{"at": ["metrics", "val/loss"], "was": "NaN"}`), which `read_json` puts back."""
    found: list[dict[str, Any]] = []
    plain = finite(data, [], found)
    if found:
        plain[NON_FINITE] = found
    return json.dumps(plain, indent=indent, allow_nan=False) + "\n"


def finite(value: Any, at: list[Any], found: list[dict[str, Any]]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found.append({"at": at, "was": json.dumps(value)})  # NaN, Infinity or -Infinity
        return None
    if isinstance(value, dict):
        return {key: finite(item, [*at, key], found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item, [*at, index], found) for index, item in enumerate(value)]
    return value


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file hyperlab wrote (an object), with the numbers `json_text` wrote as null put back; a file that is
    not one is refused."""
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as error:  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
        raise DataError(f"{path} is refused: it is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is refused: expected a JSON object, not {type(data).__name__}")
    listed = data.pop(NON_FINITE, None)
    for entry in listed if isinstance(listed, list) else []:
        with suppress(LookupError, TypeError, ValueError):  # (an entry that does not fit the file: left as null)
            put_back_number(data, entry["at"], float(entry["was"]))
    return data


def put_back_number(data: dict[str, Any], at: list[Any], number: float) -> None:
    """The null at `at` (keys and list indices) becomes `number`, a non-finite one."""
    node: Any = data
    for key in at[:-1]:
        node = node[index_in(node, key)]
    last = index_in(node, at[-1])
    if node[last] is None and not math.isfinite(number):
        node[last] = number


def index_in(node: Any, key: Any) -> Any:
    return key if isinstance(node, list) else str(key)  # (JSON's keys are text)
