"""The fast data path: mini-batches cut from tensors held in memory, handed to Lightning a chunk at a time.

Why: the course's loop (`Dataset` + `ToTensor` + `DataLoader`) builds a PIL image and a tensor per sample and
collates them, which costs more than the training step of a small network. Here the whole split is one tensor
(on the device the model trains on) and a batch is a single indexing operation. Lightning's own bookkeeping
costs about 0.3 ms per `training_step` call, which is a third of an MNIST MLP step on a CPU, so `Chunked` hands
it several mini-batches per call and the task steps the optimizer once per mini-batch (see `tasks.base`).
"""

from collections.abc import Callable, Iterable, Iterator, Sized
from math import ceil

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


class EpochShuffle:
    """A seeded permutation per epoch. Lightning calls `set_epoch` before each epoch (as for a
    `DistributedSampler`), so the order depends on (seed, epoch) alone and a resumed run sees the same batches."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def permutation(self, n: int) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(n, generator=generator)


class TensorBatches:
    """Mini-batches of (x, y) sliced from two tensors; `transform` runs on each input batch (on its device)."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle_seed: int | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.sampler = EpochShuffle(shuffle_seed) if shuffle_seed is not None else None
        self.transform = transform

    def __len__(self) -> int:
        return ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.x)
        order = self.sampler.permutation(n).to(self.x.device) if self.sampler else None
        for start in range(0, n, self.batch_size):
            if order is None:
                x, y = self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                x, y = self.x[index], self.y[index]
            yield (self.transform(x) if self.transform else x), y


class Chunked:
    """Groups the batches of any batch iterable (ours or a `DataLoader`) into lists of up to `size` batches."""

    def __init__(self, batches: Iterable[Batch], size: int) -> None:
        self.batches = batches
        self.size = size
        # DataLoader's interface, which Lightning inspects: it calls `sampler.set_epoch` before each epoch.
        self.sampler = getattr(batches, "sampler", None)
        self.batch_sampler = None

    def __len__(self) -> int:
        if not isinstance(self.batches, Sized):
            raise TypeError("the wrapped batches have no length")
        return ceil(len(self.batches) / self.size)

    def __iter__(self) -> Iterator[list[Batch]]:
        chunk: list[Batch] = []
        for batch in self.batches:
            chunk.append(batch)
            if len(chunk) == self.size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
