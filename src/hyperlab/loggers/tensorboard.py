"""TensorBoard, arranged for comparing runs (conf/logger/tensorboard.yaml).

- **Scalars**: a metric's stages share one chart. `train/loss`, `val/loss` and `test/loss` are written as the tag
  `curves/loss` of the sub-runs `<run>/train`, `<run>/val` and `<run>/test`, so TensorBoard overlays train and
  validation (the course's over- and underfitting picture) and puts the test score at the curve's end. Lightning's
  `epoch` counter is not drawn (the step axis is the run's optimizer steps). Any other metric (`lr-Adam`,
  `params/...`) stays in the run itself, as Lightning writes it.
- **HParams**: at its end a run writes its session: its hyper-parameters and its status (completed, diverged), whose
  headline metrics TensorBoard reads from the curves (the best value of the monitored metric, the test accuracy or
  R² and the test loss). Which columns the tab shows first is the folder's experiment record, written for the
  folder the runs share (`write_folder_record`, from hyperlab.sweeps): a sweep's, or an experiment's runs on
  their own (`logs/<name>/`).

TensorBoard reads one experiment record per log folder: open one sweep (or one experiment's folder) at a time.
"""

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import struct_pb2
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

STAGES = ("train", "val", "test")  # the sub-runs a run's curves are written to
CURVES = "curves"  # the tag group of the curves: one chart group, before `figures` (TensorBoard sorts by name)
BEST_SUFFIX = "_best"  # `val/acc_best`: the best value of the monitored metric so far (hyperlab.callbacks.BestScore)
STATUS = "status"  # the hyper-parameter that says how the run ended
FILES = ("events.out.tfevents.*", *STAGES)  # what a run's TensorBoard record is made of (set aside on a re-run)
# how a session ended, for the tab's status filter (a pruned run stopped as its search meant it to)
SESSION_STATUS = {"completed": "STATUS_SUCCESS", "pruned": "STATUS_SUCCESS", "diverged": "STATUS_FAILURE"}
FOLDER_RECORD = ".sweep"  # the suffix of a folder's own event file (its experiment record), replaced when rewritten


def curve_run_and_tag(metric: str) -> tuple[str, str]:
    """`val/acc` -> (`val`, `curves/acc`): the sub-run and the tag a metric is drawn in; ("", metric) for others."""
    stage, _, name = metric.partition("/")
    return (stage, f"{CURVES}/{name}") if stage in STAGES and name else ("", metric)


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoardLogger (every argument means what Lightning's docs say), with the curves drawn by stage
    and the run's HParams session written by `log_run_record` (see the module's docstring); `default_hp_metric` and
    `prefix` are refused (they would hide the run's HParams metrics)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._default_hp_metric:  # (Lightning would write its record, with hp_metric -1, when the fit starts)
            raise ValueError(
                "default_hp_metric=true: hyperlab's TensorBoard writes the run's HParams record at its end, with its "
                "final metrics in place of a placeholder hp_metric; Lightning's own logger keeps the placeholder: "
                "logger.tensorboard._target_=lightning.pytorch.loggers.TensorBoardLogger"
            )
        if self._prefix:  # (the HParams records name the curves' tags, which a prefix would change)
            raise ValueError(
                f"prefix={self._prefix}: hyperlab's TensorBoard names its charts curves/<metric>, which the HParams "
                "records read; a prefix is Lightning's own logger's: "
                "logger.tensorboard._target_=lightning.pytorch.loggers.TensorBoardLogger"
            )
        self._stage_writers: dict[str, SummaryWriter] = {}

    def __getstate__(self) -> dict[str, Any]:  # (ddp_spawn sends the logger to its processes: writers stay here)
        state = super().__getstate__()
        state["_stage_writers"] = {}
        return state

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        others = {}
        for name, value in metrics.items():
            if name == "epoch":  # Lightning adds its epoch counter to every logged row
                continue
            stage, tag = curve_run_and_tag(name)
            if not stage or isinstance(value, dict):  # (a dict of values is Lightning's several lines on one chart)
                others[name] = value
                continue
            self.stage_writer(stage).add_scalar(tag, value.item() if isinstance(value, Tensor) else value, step)
        if others:
            super().log_metrics(others, step)

    def stage_writer(self, stage: str) -> SummaryWriter:
        if stage not in self._stage_writers:
            self._stage_writers[stage] = SummaryWriter(log_dir=os.path.join(self.log_dir, stage), **self._kwargs)
        return self._stage_writers[stage]

    @rank_zero_only
    def save(self) -> None:
        super().save()
        for writer in self._stage_writers.values():
            writer.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        for writer in self._stage_writers.values():
            writer.close()
        self._stage_writers = {}

    @rank_zero_only
    def log_run_record(self, hparams: dict[str, Any], status: str, started: float) -> None:
        """The run's HParams session: its `hparams` and its `status`, started at `started` (a time.time())."""
        writer = self.experiment._get_file_writer()
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=started)
        for key, value in {**hparams, STATUS: status}.items():
            start.hparams[key].CopyFrom(proto_value(value))
        writer.add_summary(hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start))
        ended = SESSION_STATUS.get(status, "STATUS_UNKNOWN")
        end = plugin_data_pb2.SessionEndInfo(status=ended, end_time_secs=time.time())
        writer.add_summary(hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))
        self.experiment.flush()


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
    kind = {bool: "DATA_TYPE_BOOL", str: "DATA_TYPE_STRING"}.get(type(values[0]), "DATA_TYPE_FLOAT64")
    domain = struct_pb2.ListValue(values=[proto_value(value) for value in values])
    return api_pb2.HParamInfo(name=name, type=kind, domain_discrete=domain, differs=shown)


def proto_value(value: Any) -> struct_pb2.Value:
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, (int, float)):
        return struct_pb2.Value(number_value=value)
    return struct_pb2.Value(string_value=str(value))


def experiment_summary(hparam_infos: list[api_pb2.HParamInfo], headline: list[str]) -> Summary:
    metric_infos = []
    for metric in headline:
        stage, tag = curve_run_and_tag(metric)
        title = f"best {metric.removesuffix(BEST_SUFFIX)}" if metric.endswith(BEST_SUFFIX) else metric
        metric_infos.append(api_pb2.MetricInfo(name=api_pb2.MetricName(group=stage, tag=tag), display_name=title))
    experiment = api_pb2.Experiment(hparam_infos=hparam_infos, metric_infos=metric_infos)
    return hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment)


def hparams_summary(tag: str, **data: Any) -> Summary:
    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data).SerializeToString()
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content)
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def write_folder_record(folder: Path, shown: dict[str, list[Any]], headline: list[str], same: str,
                        images: dict[str, np.ndarray]) -> None:  # fmt: skip
    """The folder's own TensorBoard run (a sweep's, or an experiment's single runs'): the experiment record (the
    `shown` keys and the status, with their values, and the `headline` metrics: the HParams tab opens on the homework
    table), what every run shares (`same`, markdown for the Text tab) and the figures (Images tab). Written anew each
    time: TensorBoard reads a record's first version."""
    for old in folder.glob(f"events.out.tfevents.*{FOLDER_RECORD}"):
        old.unlink()
    writer = SummaryWriter(log_dir=str(folder), filename_suffix=FOLDER_RECORD)
    try:
        infos = [hparam_info(key, values, shown=True) for key, values in shown.items() if values]
        writer._get_file_writer().add_summary(experiment_summary(infos, headline))
        if same:
            writer.add_text("sweep/same in every run", same)
        for name, rgb in images.items():
            writer.add_image(f"sweep/{name}", rgb, dataformats="HWC")
    finally:
        writer.close()
