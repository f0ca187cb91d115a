"""Lightning's contract: every Trainer argument by its own name, every precision, any Lightning logger, Lightning's
callbacks (the flags that count batches: tests/test_training_loops.py; several processes: tests/test_ddp.py)."""

import csv
import sys

import commands
import pytest
from helpers import compose_config, read_events
from lightning.pytorch.callbacks import Timer

from hyperlab.config import validate
from hyperlab.errors import ConfigError
from hyperlab.experiment import build
from hyperlab.train import train
from hyperlab.trainer_arguments import TRAINER_ARGUMENTS


def test_every_trainer_argument_is_a_key_without_plus(make_config):
    assert {"gradient_clip_val", "max_time", "detect_anomaly", "min_epochs", "benchmark"} <= set(TRAINER_ARGUMENTS)
    cfg = make_config("trainer.min_epochs=2", "trainer.max_time=00:00:10:00", "trainer.benchmark=false")
    validate(cfg)
    trainer = build(cfg).trainer
    assert trainer.fit_loop.min_epochs == 2 and any(isinstance(c, Timer) for c in trainer.callbacks)  # max_time


def test_a_misspelt_trainer_argument_is_refused_naming_the_nearest(tmp_path):
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "train", "trainer.gradient_clip_vall=1", f"paths.log_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 2 and not list(tmp_path.iterdir())
    assert process.stderr.strip() == (
        "error: trainer.gradient_clip_vall is not an argument of Lightning's Trainer: did you mean "
        "trainer.gradient_clip_val? (see lightning.pytorch.Trainer)"
    )


def test_several_devices_and_strategies_are_lightnings_to_take(make_config):
    for overrides in (["trainer.strategy=ddp", "trainer.devices=2"], ["trainer=ddp"], ["trainer.devices=auto"]):
        validate(make_config(*overrides))  # (trainer=ddp is trained in tests/test_ddp.py)
    assert make_config("trainer=ddp").trainer.strategy == "ddp"


@pytest.mark.parametrize("precision", ["32-true", "64-true", "64", "bf16-mixed", "bf16-true", "16-true"])
def test_every_precision_runs_end_to_end_with_figures(make_config, tmp_path, precision):
    result = train(make_config(f"trainer.precision={precision}", "trainer.max_epochs=2", "callbacks=figures"))
    assert result["status"] == "completed" and result["metrics"]["test/acc"] > 0.5
    assert (tmp_path / "run" / "figures" / "confusion_matrix.png").is_file()


def test_one_device_is_accepted_however_it_is_named(make_config):
    for devices in ("trainer.devices=1", "trainer.devices=[0]"):
        validate(make_config(devices))
    validate(make_config("trainer.accelerator=cpu", "trainer.devices=auto"))  # one CPU device


def test_a_lightning_trainer_refusal_is_one_line(make_config):
    with pytest.raises(ConfigError, match="^trainer: Lightning refuses these settings: .*transformer_engine"):
        build(make_config("trainer.precision=transformer-engine"))


@pytest.mark.parametrize("loggers", ["csv", "[tensorboard,csv]"])
def test_any_lightning_logger_gets_the_hyper_parameters_and_the_final_metrics(tmp_path, loggers):
    result = train(compose_config(tmp_path / "run", f"logger={loggers}", "trainer.max_epochs=2"))
    assert result["status"] == "completed"
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    final = [row for row in rows if row.get("hp/test/acc")]
    assert final and float(final[-1]["hp/test/acc"]) == pytest.approx(result["metrics"]["test/acc"], abs=1e-6)
    assert "optimizer.lr: 0.001" in (tmp_path / "run" / "csv" / "hparams.yaml").read_text()
    events = list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert bool(events) == ("tensorboard" in loggers)


def test_lightnings_own_tensorboard_logger_keeps_lightnings_layout(tmp_path):
    stock = "logger.tensorboard._target_=lightning.pytorch.loggers.TensorBoardLogger"
    result = train(compose_config(tmp_path / "run", stock, "trainer.max_epochs=2"))
    events = read_events(tmp_path / "run")
    tags = events.Tags()["scalars"]
    assert {"val/acc", "train/loss", "epoch", "hp/test/acc"} <= set(tags)  # as Lightning writes them, all in the run
    assert events.Scalars("hp/test/acc")[-1].value == pytest.approx(result["metrics"]["test/acc"], abs=1e-6)
    assert not (tmp_path / "run" / "val").exists()


def test_callbacks_compose_with_lightnings_own(tmp_path):
    result = train(compose_config(tmp_path / "run", "callbacks=[figures,early_stopping,lr_monitor,rich_summary]",
                                  "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5",
                                  "trainer.max_epochs=10"))  # fmt: skip
    assert result["status"] == "completed" and result["epochs"] == 2  # no val/acc gain of 0.5: stopped early
    assert (tmp_path / "run" / "figures" / "confusion_matrix.png").is_file()
    assert "lr-Adam" in read_events(tmp_path / "run").Tags()["scalars"]


def test_no_callbacks(tmp_path):
    result = train(compose_config(tmp_path / "run", "callbacks=none", "trainer.max_epochs=2",
                                  "trainer.enable_checkpointing=false"))  # fmt: skip
    assert result["status"] == "completed" and "test/acc" in result["metrics"] and not result["best_checkpoint"]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_mlflow_gets_the_hyper_parameters_and_the_final_metrics_in_a_local_store(tmp_path):
    pytest.importorskip("mlflow", reason="the optional extra: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    result = train(compose_config(tmp_path / "run", "logger=mlflow", "trainer.max_epochs=2"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("digits").experiment_id])
    assert run.data.params["optimizer.lr"] == "0.001"
    assert run.data.metrics["hp/test/acc"] == pytest.approx(result["metrics"]["test/acc"], abs=1e-6)
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2  # one value per epoch


def test_a_logger_whose_package_is_missing_is_one_line(make_config):
    try:
        import mlflow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"^logger.mlflow: .*mlflow.* \(hyperlab's extra: pip install -e"):
            build(make_config("logger=mlflow"))
    else:
        pytest.skip("mlflow is installed")


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("logger.tensorboard.default_hp_metric=true", "default_hp_metric=true: .*in place of a placeholder hp_metric"),
        ("+logger.tensorboard.prefix=p", "prefix=p: .*names its charts by Lightning"),
    ],
)
def test_tensorboard_settings_that_would_hide_the_hparams_metrics_are_refused_in_one_line(make_config, override, why):
    with pytest.raises(ConfigError, match=rf"^logger.tensorboard: {why}.*lightning.pytorch.loggers.TensorBoardLogger$"):
        build(make_config(override))


def test_hyperlabs_tensorboard_draws_a_dict_of_values_as_lightnings_does(tmp_path):
    from hyperlab.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), name="", version="", default_hp_metric=False)
    logger.log_metrics({"val/loss": 0.5, "val/parts": {"a": 1.0, "b": 2.0}}, step=3)
    logger.finalize("success")
    assert read_events(tmp_path).Scalars("val/loss")[0].value == 0.5
    # add_scalars, as Lightning's own logger: one line per key on the chart `val/parts`
    assert read_events(tmp_path / "val_parts_a").Scalars("val/parts")[0].value == 1.0
