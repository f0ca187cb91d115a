"""TensorBoard, arranged for comparing many runs (conf/logger/tensorboard.yaml; what each tab shows: README,
"Comparing runs in TensorBoard").

- **One TensorBoard run per run**: a run's curves keep Lightning's names (`train/loss`, `val/acc`, `test/acc`) in the
  run's own folder, with no per-stage sub-runs: TensorBoard selects every run by default only up to 40 runs in its
  Scalars, Images and Text tabs and 500 in Time Series, so a 64-run sweep must be 64 runs, not 4 x 64. Lightning's
  `epoch` counter is not drawn (the step axis is the run's optimizer steps).
- **The folder's own run, `summary/`**: the folder of runs (a sweep's, or an experiment's runs on their own,
  `logs/<name>/`) gets one more run holding its experiment record (the HParams tab's columns: the keys the runs set
  differently, the status, the headline metrics), what every run shares (Text), the sweep's figures (Images) and a
  Custom Scalars layout that puts each run's train and val curves of a metric on one chart.
- **HParams**: each run's session (its hyper-parameters and status) is a small file of its own
  (`events.out.tfevents.*.session`), written at the run's end and rewritten by its sweep at the sweep's end with the
  run's rank in its group name, so the table opens sorted by the headline metric, best first (TensorBoard sorts
  the rows by group name until a column is chosen). A TensorBoard started before the sweep ended keeps the records
  it read first: restart it to see the ranking. Integer values are written as right-aligned text: TensorBoard
  prints every number with five significant digits (`128.00`), and spaces before the digits make text sort as
  numbers (`   64` before `  128`; a browser does not show leading spaces). A column with a fraction among its
  numbers (`dropout=0,0.2`) keeps them all numbers. A sweep with replicates (`repeats`, `data.folds`) adds a session
  per configuration under `summary/` (`summary/config-01/`: its swept values, `repeats`, and its metrics' means and
  stds as scalars of its own, `val/acc_best mean`), and names each run's row after its configuration's rank
  (hyperlab.sweeps.records).

TensorBoard reads one experiment record per log folder: open one sweep (or one experiment's folder) at a time.
"""

import math
import random
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from torch.utils.tensorboard import SummaryWriter

from hyperlab.compat import default_hp_metric, logger_prefix

BEST_SUFFIX = "_best"  # `val/acc_best`: the best value of the monitored metric so far (hyperlab.callbacks.BestScore)
STATUS = "status"  # the hyper-parameter that says how the run ended
# how a session ended, for the tab's status filter (a pruned run stopped as its search meant it to)
SESSION_STATUS = {"completed": "STATUS_SUCCESS", "pruned": "STATUS_SUCCESS", "diverged": "STATUS_FAILURE"}
SESSION = ".session"  # the suffix of a run's session file, replaced when rewritten
SUMMARY_RUN = "summary"  # the folder's own TensorBoard run
INT_WIDTH = 12  # integers as text this wide (see the module's docstring)


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoardLogger (every argument means what Lightning's docs say), without the `epoch` curve and
    with the run's HParams session written by `log_run_record` (see the module's docstring); `default_hp_metric` and
    `prefix` are refused (they would hide the run's HParams metrics)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if default_hp_metric(self):  # (Lightning would write its record, with hp_metric -1, when the fit starts)
            raise ValueError(
                "default_hp_metric=true: hyperlab's TensorBoard writes the run's HParams record at its end, with its "
                "final metrics in place of a placeholder hp_metric; Lightning's own logger keeps the placeholder: "
                "logger.tensorboard._target_=lightning.pytorch.loggers.TensorBoardLogger"
            )
        prefix = logger_prefix(self)
        if prefix:  # (the HParams records name the curves' tags, which a prefix would change)
            raise ValueError(
                f"prefix={prefix}: hyperlab's TensorBoard names its charts by Lightning's metric names, which "
                "the HParams records read; a prefix is Lightning's own logger's: "
                "logger.tensorboard._target_=lightning.pytorch.loggers.TensorBoardLogger"
            )

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = {name: value for name, value in metrics.items() if name != "epoch"}  # (Lightning adds it to all)
        if metrics:
            super().log_metrics(metrics, step)

    @rank_zero_only
    def log_run_record(self, hparams: dict[str, Any], status: str, started: float) -> None:
        """The run's HParams session: its `hparams` and its `status`, started at `started` (a time.time())."""
        self.experiment.flush()
        write_session(Path(self.log_dir), hparams, status, started, time.time())


def write_session(run_dir: Path, hparams: dict[str, Any], status: str, started: float, ended: float,
                  group: str = "", fractional: Collection[str] = (), metrics: dict[str, float] | None = None,
                  ) -> None:  # fmt: skip
    """`run_dir`'s HParams session, in its own file (replacing an earlier one): the run's `hparams` and `status`;
    `group` names the row (the run's folder name when empty); the `fractional` keys' whole numbers are written as
    numbers (their column has fractions too: `all_whole`). `metrics`: scalars of the session's own (a sweep's
    configuration: its means and stds, which the HParams tab reads as any run's metrics)."""
    for old in run_dir.glob(f"events.out.tfevents.*{SESSION}"):
        old.unlink(missing_ok=True)  # (another process rewriting the sweep's record may have got there first)
    values = {key: shown_value(value, as_text=key not in fractional) for key, value in hparams.items()}
    values[STATUS] = status
    start = summary_v2.hparams_pb(values, trial_id=group, start_time_secs=started)  # (trial_id: the group's name)
    writer = SummaryWriter(log_dir=str(run_dir), filename_suffix=SESSION)
    try:
        # (a summary of the HParams plugin's own: SummaryWriter has no method that writes one; its file writer does)
        writer.file_writer.add_summary(start)
        writer.file_writer.add_summary(session_end_summary(SESSION_STATUS.get(status, "STATUS_UNKNOWN"), ended))
        for tag, value in (metrics or {}).items():
            writer.add_scalar(tag, value, 0)
    finally:
        writer.close()


def session_end_summary(status: str, ended: float) -> Summary:
    """A session's end: its `status` (a tensorboard.hparams Status name), at `ended`. Built here, in the form of the
    plugin's own summaries: its one public function for it (`summary.session_end_pb`) imports TensorFlow, which
    hyperlab does not install, and its TensorFlow-free API (`summary_v2`) writes no session end (a row's status)."""
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=ended)
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=end))
    value = Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=content, tensor=metadata.NULL_TENSOR)
    return Summary(value=[value])


def epoch_end_step(trainer: Any) -> int:
    """The step Lightning logs an epoch's metrics at: the epoch's last optimizer step, counted from 0. The figures and
    the best score are logged there too, so every chart of a run ends at the same step."""
    return max(trainer.global_step - 1, 0)


def headline_metrics(monitor: str, test_metric: str) -> list[str]:
    """What a run is judged by: the best of its monitored metric, its test score (`test/acc`, `test/r2`), its test
    loss."""
    return list(dict.fromkeys([monitor + BEST_SUFFIX, test_metric, "test/loss"]))


def hparam_info(name: str, values: list[Any], shown: bool) -> api_pb2.HParamInfo:
    """An HParams column: its type and its values (a discrete domain, which the tab filters by). TensorBoard shows
    the columns marked `differs` first and ticks the first five."""
    shown_values = [shown_value(value, as_text=all_whole(values)) for value in values]
    kinds = {bool if isinstance(value, bool) else str if isinstance(value, str) else float for value in shown_values}
    types = {bool: "DATA_TYPE_BOOL", float: "DATA_TYPE_FLOAT64"}
    kind = types.get(kinds.pop(), "DATA_TYPE_STRING") if len(kinds) == 1 else "DATA_TYPE_STRING"
    info = api_pb2.HParamInfo(name=name, type=kind, differs=shown)
    info.domain_discrete.extend(shown_values)
    return info


class ColumnDomain(summary_v2.Domain):
    """An HParams column for the plugin's `hparams_config_pb`, written as `hparam_info` made it: the plugin's own
    `Discrete` domain takes values of one type only and sorts them, and none of its domains marks a column
    `differs`; this one keeps a bool beside text, the values' order and the mark."""

    def __init__(self, info: api_pb2.HParamInfo) -> None:
        self.info = info

    @property
    def dtype(self) -> type:
        return {"DATA_TYPE_BOOL": bool, "DATA_TYPE_FLOAT64": float}.get(api_pb2.DataType.Name(self.info.type), str)

    def sample_uniform(self, rng: Any = random) -> Any:
        """A value of the column's, at random (the Domain interface's; hyperlab samples none)."""
        return rng.choice(list(self.info.domain_discrete.values))

    def update_hparam_info(self, hparam_info: api_pb2.HParamInfo) -> None:
        hparam_info.type = self.info.type
        hparam_info.domain_discrete.CopyFrom(self.info.domain_discrete)
        hparam_info.differs = self.info.differs


def is_whole(value: Any) -> bool:
    """A value written as right-aligned text (module docstring): a whole number TensorBoard would print as `128.00`."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**INT_WIDTH


def all_whole(values: Iterable[Any]) -> bool:
    """Whether a column's numbers are all whole: one fraction among them (`dropout=0,0.2`) makes every number a
    number, so that the column sorts as one kind."""
    return all(is_whole(value) for value in values if isinstance(value, (int, float)) and not isinstance(value, bool))


def shown_value(value: Any, as_text: bool = True) -> bool | int | float | str:
    """A hyper-parameter's value as TensorBoard stores it: a whole number as right-aligned text (`as_text`: its
    column's numbers are all whole), NaN and infinities as text (TensorBoard's JSON has no such numbers)."""
    if isinstance(value, bool):
        return value
    if as_text and is_whole(value):
        return str(value).rjust(INT_WIDTH)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return str(value)


def metric_title(tag: str) -> str:
    """A metric column's name: `val/acc_best` -> `best val/acc`; `val/acc_best mean` -> `best val/acc mean`."""
    metric, _, statistic = tag.partition(" ")
    title = f"best {metric.removesuffix(BEST_SUFFIX)}" if metric.endswith(BEST_SUFFIX) else metric
    return f"{title} {statistic}" if statistic else title


def experiment_summary(hparam_infos: list[api_pb2.HParamInfo], headline: list[str]) -> Summary:
    """The folder's experiment record: its columns (`hparam_info`) and its `headline` metrics, by title. (The HParams
    plugin's public summaries that need no TensorFlow are `summary_v2`'s: its `api` and `summary` import it.)"""
    hparams = [summary_v2.HParam(info.name, ColumnDomain(info)) for info in hparam_infos]
    metrics = [summary_v2.Metric(tag, display_name=metric_title(tag)) for tag in headline]
    return summary_v2.hparams_config_pb(hparams, metrics)


def train_vs_val_layout(metrics: list[str]) -> dict[str, Any]:
    """Custom Scalars: one chart per metric with each selected run's train and val curves (over- and underfitting,
    the course's picture)."""
    return {"train vs val": {f"{name}: train vs val": ["Multiline", [rf"^(train|val)/{name}$"]] for name in metrics}}


def write_folder_record(folder: Path, shown: dict[str, list[Any]], headline: list[str], texts: dict[str, str],
                        images: dict[str, np.ndarray], compared: list[str]) -> None:  # fmt: skip
    """The folder's own TensorBoard run, `summary/` (a sweep's, or an experiment's single runs'): the experiment
    record (the `shown` keys and the status, with their values, and the `headline` metrics: the HParams tab opens on
    the homework table), the `texts` (markdown for the Text tab: the table, what every run shares), the figures
    (Images tab) and the train-vs-val charts of the `compared` metrics (Custom Scalars). Written anew each time:
    TensorBoard reads a record's first version."""
    run = folder / SUMMARY_RUN
    for old in run.glob("events.out.tfevents.*"):
        old.unlink(missing_ok=True)
    writer = SummaryWriter(log_dir=str(run))
    try:
        infos = [hparam_info(key, values, shown=True) for key, values in shown.items() if values]
        writer.file_writer.add_summary(experiment_summary(infos, headline))
        if compared:
            writer.add_custom_scalars(train_vs_val_layout(compared))
        for name, markdown in texts.items():
            writer.add_text(f"sweep/{name}", markdown)
        for name, rgb in images.items():
            writer.add_image(f"sweep/{name}", rgb, dataformats="HWC")
    finally:
        writer.close()
