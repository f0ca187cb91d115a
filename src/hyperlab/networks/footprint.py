"""How large a network is and whether it may train here, without torch: each network's options count its
`Footprint` on given inputs (parameters, the activations one sample keeps for the backward pass, layers;
hyperlab.networks.options), and `check_network` refuses a network that does not fit the data (`DoesNotFit`), or would
take more than `1/MEMORY_SHARE` of this machine's memory to train, before anything is allocated, naming the option to
change."""

import os
from dataclasses import dataclass
from typing import Any

from hyperlab.errors import ConfigError
from hyperlab.options import Options, OutOfRange

# What a network may take to train: a quarter of this machine's memory (the process itself, the data and a second
# copy of the weights in a checkpoint being saved need the rest), counted as float32 numbers: its parameters 4 times
# (weights, gradients, an optimizer's two moments: Adam's), one batch's activations twice (kept for the backward
# pass, and their gradients), and each layer's Python objects and autograd nodes (measured: ~6 KB for a Linear and
# its activation, ~12 KB once a batch went forward and backward through them).
MEMORY_SHARE = 4
NUMBER_BYTES = 4
PARAMETER_COPIES = 4
ACTIVATION_COPIES = 2
LAYER_BYTES = 12_000


@dataclass(frozen=True)
class Footprint:
    """A network's size: its `parameters`, the `activations` (numbers) one sample's forward pass keeps, its `layers`."""

    parameters: int = 0
    activations: int = 0
    layers: int = 0

    def __add__(self, other: "Footprint") -> "Footprint":
        return Footprint(self.parameters + other.parameters, self.activations + other.activations,
                         self.layers + other.layers)  # fmt: skip

    def bytes(self, batch_size: int) -> int:
        """The memory it takes to train on batches of `batch_size` (see MEMORY_SHARE)."""
        numbers = PARAMETER_COPIES * self.parameters + ACTIVATION_COPIES * batch_size * self.activations
        return NUMBER_BYTES * numbers + LAYER_BYTES * self.layers


def physical_memory() -> int:
    """This machine's memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_limit() -> int:
    """The most memory a network may take to train (`Footprint.bytes`): 1/MEMORY_SHARE of this machine's."""
    return physical_memory() // MEMORY_SHARE


def past_limit(footprint: Footprint) -> bool:
    """Whether a network counted so far already takes more than the limit on batches of one: a footprint stops counting
    there (so that a network of a million layers is not walked through)."""
    return footprint.bytes(1) > memory_limit()


class DoesNotFit(ValueError):
    """A network that cannot take the data's inputs or give its outputs (the message says why, and what would)."""


class NetworkRefused(ConfigError, ValueError):
    """A network refused for the inputs it is built for, in one line naming the key: a ConfigError that the commands
    report, and a ValueError, which a checkpoint's rebuild reports with the file's name."""


def check_network(declared: Any, options: dict[str, Any], input_shape: list[int] | None, num_outputs: int,
                  batch_size: int, where: str) -> None:  # fmt: skip
    """Refuse (NetworkRefused, naming `<where>.<key>`) a network whose options (`declared`: its options dataclass) do
    not fit `input_shape` (None: the smallest it takes, whatever the data) and `num_outputs`, or that would take more
    than `memory_limit()` to train on batches of `batch_size`."""
    values = Options({key: value for key, value in options.items() if key != "_target_"})
    try:
        footprint = declared.footprint(values, input_shape or declared.smallest_input(values), num_outputs)
    except OutOfRange as error:
        raise NetworkRefused(f"{where}.{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None
    except DoesNotFit as error:
        raise NetworkRefused(f"{where}: {error}") from None
    needed, limit = footprint.bytes(batch_size), memory_limit()
    if needed <= limit:
        return
    key = blamed_key(declared, values, input_shape, num_outputs, lambda f: f.bytes(batch_size) <= limit)
    subject = f"{where}.{key}={values[key]!r}" if key else f"{where} on inputs of shape {input_shape}"
    raise NetworkRefused(
        f"{subject} is not allowed: the network would take at least {size_text(needed)} to train "
        f"({count_text(footprint.parameters)} parameters in {count_text(footprint.layers)} layers, "
        f"{count_text(footprint.activations)} activations a sample, batches of {batch_size}), over the limit of "
        f"{size_text(limit)} (1/{MEMORY_SHARE} of this machine's {size_text(physical_memory())} of memory)"
    )


def blamed_key(declared: Any, values: Options, input_shape: list[int] | None, num_outputs: int,
               fits: Any) -> str | None:  # fmt: skip
    """The option that makes a network too large: the first of its `SMALLEST` (in the order they are named) which alone,
    at its smallest, makes it `fits`. None when none does and it fits on the smallest inputs: the inputs are too large;
    else its first option (an architecture, say)."""
    for key, smallest in getattr(declared, "SMALLEST", {}).items():
        low = [smallest] * len(values[key]) if isinstance(values[key], list) else smallest
        if values[key] == low:
            continue
        changed = Options({**values, key: low})
        try:
            if fits(declared.footprint(changed, input_shape or declared.smallest_input(changed), num_outputs)):
                return key
        except (OutOfRange, DoesNotFit):
            continue
    if input_shape is not None and fits(declared.footprint(values, declared.smallest_input(values), 1)):
        return None
    return next(iter(values), None)


def size_text(n_bytes: int) -> str:
    """`5.8 GB`: a size in bytes, as people read it."""
    if n_bytes >= 10**30:  # (beyond what a float prints)
        return "over 1e+15 PB"
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1000
    raise AssertionError("unreachable")


def count_text(count: int) -> str:
    """`1,234,567`, or `1.2e+14` past a billion."""
    if count >= 10**30:  # (beyond what a float prints)
        return "over 1e+30"
    return f"{count:,}" if count < 10**9 else f"{count:.2g}"
