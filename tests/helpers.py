"""Helpers of the tests: the real config tree composed into a temporary run folder, TensorBoard event readers."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from hyperlab.config import CONF_DIR

EXPERIMENTS = sorted(path.stem for path in (CONF_DIR / "experiment").glob("*.yaml"))


def compose_config(run_dir: Path, *overrides: str) -> DictConfig:
    """Compose `train.yaml` as the command line would, with the run writing into `run_dir`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                *overrides,
                f"paths.log_dir={run_dir.parent}",
                f"paths.output_dir={run_dir}",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
            ],
        )


def read_events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def scalar_values(run_dir: Path, tag: str) -> list[float]:
    return [event.value for event in read_events(run_dir).Scalars(tag)]


def hparams_session(run_dir: Path) -> tuple[dict[str, object], list[str]]:
    """The hyper-parameters of the run's HParams session and the metric tags its experiment lists."""
    content = read_events(run_dir).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    hparams = {}
    for key, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind)
    metric_tags = [info.name.tag for info in experiment.experiment.metric_infos]
    return hparams, metric_tags
