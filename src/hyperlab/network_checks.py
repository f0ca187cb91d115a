"""A network too large refused before torch is imported, by the options its class declares
(hyperlab.networks.options; their footprint: hyperlab.networks.footprint): the command line's, whatever the data
(`check_network_on_any_data`), and a checkpoint's, on the inputs it stores and against the file's own size
(`check_stored_network`).
"""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hyperlab.errors import DataError
from hyperlab.networks.footprint import NetworkRefused, blamed_key, check_network, count_text, size_text
from hyperlab.options import Options, declared_options
from hyperlab.schemas import is_int


def check_network_on_any_data(model: dict[str, Any], data: DictConfig) -> None:
    """Refuse a network too large for this machine whatever the data (`networks.footprint.check_network` on the
    smallest inputs it could take, one output, in the data's batches): before torch is imported, and before the data
    is read (each network's constructor checks it again on the data's own inputs)."""
    declared = declared_options(model.get("_target_"))
    if declared is None:
        return
    batch_size = data.get("batch_size")
    batch_size = batch_size if is_int(batch_size) and batch_size >= 1 else 1  # (one's own datamodule: any)
    check_network(declared, model, None, 1, batch_size, "model")


def check_stored_network(network: dict[str, Any], input_shape: list[int], source: str | Path) -> None:
    """A checkpoint's network on the inputs it stores, checked as the command line's is (`check_network_on_any_data`)
    before it is built; and its weights, in the file, must be there: a network whose parameters take more bytes than
    the whole file (2 each at least: float16) is refused, whatever this machine's memory. Raises DataError naming the
    file and the key (`network.<key>`)."""
    declared = declared_options(network.get("_target_"))
    if declared is None:
        return
    options = {key: value for key, value in network.items() if key != "input_shape"}
    file_bytes = Path(source).stat().st_size if Path(source).is_file() else None
    try:
        check_network(declared, options, input_shape, 1, 1, "network")
        if file_bytes is not None:
            check_weights_stored(declared, options, input_shape, file_bytes)
    except NetworkRefused as error:
        raise DataError(f"{source} is refused: {error}") from None


FEWEST_WEIGHT_BYTES = 2  # a checkpoint's weights take 2 bytes each at least (float16, bfloat16)


def check_weights_stored(declared: Any, options: dict[str, Any], input_shape: list[int], file_bytes: int) -> None:
    """Refuse a stored network whose weights could not be in a file of `file_bytes` bytes (NetworkRefused)."""
    values = Options(options)
    parameters = declared.footprint(values, input_shape, 1).parameters
    if parameters * FEWEST_WEIGHT_BYTES <= file_bytes:
        return
    key = blamed_key(declared, values, input_shape, 1, lambda f: f.parameters * FEWEST_WEIGHT_BYTES <= file_bytes)
    subject = f"network.{key}={values[key]!r}" if key else f"network on inputs of shape {input_shape}"
    raise NetworkRefused(f"{subject} is not allowed: its {count_text(parameters)} parameters would not fit in the "
                         f"file's {size_text(file_bytes)} (it holds the weights)")  # fmt: skip
