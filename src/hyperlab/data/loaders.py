"""Mini-batches cut from tensors held in memory, served two ways: Lightning's way, or hyperlab's fast loop's.

Why: the course's loop (`Dataset` + `ToTensor` + `DataLoader`) builds a PIL image and a tensor per sample and
collates them, which costs more than the training step of a small network. Here the whole split is one tensor
(on the device the model trains on) and a batch is a single indexing operation, either way:

- `batch_loader`: a standard `DataLoader` of (x, y) mini-batches, one per `training_step`, with every Lightning
  promise (`limit_*_batches`, `overfit_batches`, gradient accumulation, DDP sharding through its sampler, ...).
  `TensorPairs` hands it a whole batch at once (`__getitems__`), so it never touches single samples.
- `Chunked(TensorBatches(...))`: the fast loop's chunks of mini-batches. Lightning's own bookkeeping costs about
  0.3 ms per `training_step` call, which is a third of an MNIST MLP step on a CPU, so the fast loop hands it
  several mini-batches per call and the task steps the optimizer once per mini-batch (see `tasks.fast_loop`).
Both draw the same batches in the same order (`EpochSampler`), so both train the same weights.
"""

from collections.abc import Callable, Iterator
from math import ceil
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

Batch = tuple[Tensor, Tensor]
Transform = Callable[[Tensor], Tensor]


class EpochSampler(DistributedSampler):
    """A seeded permutation per epoch, as a `DistributedSampler`: Lightning calls `set_epoch` before each epoch, so
    the order depends on (seed, epoch) alone and a resumed run sees the same batches. With several processes
    (`num_replicas`), each takes every `num_replicas`-th index from `rank` on, padded to equal shares as
    `DistributedSampler` pads; being one already, Lightning keeps it rather than putting its own in its place
    (whose order would differ from the one-process run's)."""

    def __init__(self, size: int, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]

    def permutation(self) -> Tensor:
        """This epoch's order of all samples (every process draws the same one)."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(len(self.dataset), generator=generator)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        order = self.permutation().tolist()
        padding = self.total_size - len(order)
        order += (order * ceil(padding / len(order)))[:padding] if padding else []
        return iter(order[self.rank : self.total_size : self.num_replicas])


class TensorPairs(Dataset):
    """(x, y) pairs from two tensors; `transform` runs on each input batch (on its device)."""

    def __init__(self, x: Tensor, y: Tensor, transform: Transform | None = None) -> None:
        self.x, self.y = x, y
        self.transform = transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> Batch:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: list[int]) -> Batch:
        """A whole mini-batch in one indexing operation (DataLoader asks for a batch's indices at once)."""
        index = torch.as_tensor(indices, device=self.x.device)
        x = self.x[index]
        return (self.transform(x) if self.transform else x), self.y[index]


def keep_batch(batch: Batch) -> Batch:
    """The DataLoader's `collate_fn`: `TensorPairs` already returns the batch as tensors."""
    return batch


def batch_loader(
    x: Tensor, y: Tensor, batch_size: int, sampler: EpochSampler | None = None, transform: Transform | None = None
) -> DataLoader:
    """A standard DataLoader of (x, y) mini-batches; in order unless a sampler shuffles. It has a generator of its
    own: a DataLoader draws a seed for its workers from the global random stream each epoch otherwise, which would
    change the dropout and augmentation draws that follow (the fast loop draws none)."""
    loader = TensorPairs(x, y, transform)
    generator = torch.Generator().manual_seed(0)  # (no workers: the seed it gives them is never used)
    return DataLoader(loader, batch_size=batch_size, sampler=sampler, collate_fn=keep_batch, generator=generator)


class TensorBatches:
    """The fast loop's mini-batches of (x, y), sliced from two tensors in the sampler's order (or in order)."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        sampler: EpochSampler | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.sampler = sampler
        self.transform = transform

    def __len__(self) -> int:
        return ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.x)
        order = self.sampler.permutation().to(self.x.device) if self.sampler else None
        for start in range(0, n, self.batch_size):
            if order is None:
                x, y = self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                x, y = self.x[index], self.y[index]
            yield (self.transform(x) if self.transform else x), y


class Chunk(list):
    """The mini-batches the fast loop hands to one `training_step` (a list, which Lightning passes on as is)."""


class Chunked:
    """Groups the fast loop's mini-batches into chunks of up to `size` mini-batches."""

    def __init__(self, batches: TensorBatches, size: int) -> None:
        self.batches = batches
        self.size = size
        # DataLoader's interface, which Lightning inspects: it calls `sampler.set_epoch` before each epoch.
        self.sampler = batches.sampler
        self.batch_sampler = None

    def __len__(self) -> int:
        return ceil(len(self.batches) / self.size)

    def __iter__(self) -> Iterator[Chunk]:
        chunk = Chunk()
        for batch in self.batches:
            chunk.append(batch)
            if len(chunk) == self.size:
                yield chunk
                chunk = Chunk()
        if chunk:
            yield chunk


def batches_in(item: Any) -> list[Batch]:
    """The (x, y) mini-batches in what a loader yielded: a chunk's, or the one batch of any standard DataLoader."""
    return item if isinstance(item, Chunk) else [pair_in(item)]


def pair_in(item: Any) -> Batch:
    """The (x, y) of what a standard DataLoader yielded (a tuple, or the list a `TensorDataset`'s collation gives)."""
    if isinstance(item, (tuple, list)) and len(item) == 2 and not isinstance(item, Chunk):
        return item[0], item[1]
    raise TypeError(f"a hyperlab task takes (inputs, targets) batches; this loader gave {describe(item)}")


def inputs_in(item: Any) -> Tensor:
    """The inputs in what a predict loader yielded: a batch of inputs alone, (inputs,), or (inputs, targets)."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, (tuple, list)) and len(item) in (1, 2) and isinstance(item[0], Tensor):
        return item[0]
    raise TypeError(f"a hyperlab task predicts from batches of inputs or (inputs, targets); got {describe(item)}")


def describe(item: Any) -> str:
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)}"
    return f"a {type(item).__name__}"
