"""Datamodules split as promised and the fast data path serves every sample once per epoch."""

import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate

from hyperlab.data.base import split_indices
from hyperlab.data.loaders import Chunked, EpochSampler, TensorBatches, batch_loader
from hyperlab.errors import ConfigError


def datamodule(tmp_path, experiment, *overrides):
    module = instantiate(compose_config(tmp_path / "run", f"experiment={experiment}", *overrides).data)
    module.setup("fit")
    return module


def test_splits_are_disjoint_complete_seeded_and_stratified():
    labels = torch.arange(300) % 3
    index = split_indices(300, 0.15, 0.15, seed=0, labels=labels)
    together = torch.cat(list(index.values()))
    assert sorted(together.tolist()) == list(range(300))
    assert [len(index[s]) for s in ("train", "val", "test")] == [210, 45, 45]
    assert torch.bincount(labels[index["val"]]).tolist() == [15, 15, 15]
    assert torch.equal(split_indices(300, 0.15, 0.15, seed=0)["val"], split_indices(300, 0.15, 0.15, seed=0)["val"])
    assert not torch.equal(split_indices(300, 0.15, 0.15, seed=0)["val"], split_indices(300, 0.15, 0.15, seed=1)["val"])


def test_digits_are_the_real_bundled_images(tmp_path):
    module = datamodule(tmp_path, "digits")
    sizes = {split: len(y) for split, (x, y) in module.splits.items()}
    assert sum(sizes.values()) == 1797
    x, y = module.splits["train"]
    assert module.input_shape == [1, 8, 8] and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert module.num_classes == 10 and set(y.tolist()) == set(range(10))


def test_line_points_follow_the_configured_line(tmp_path):
    module = datamodule(tmp_path, "line", "data.noise=0", "data.gradient=3", "data.intercept=-1")
    x, y = module.splits["train"]
    assert torch.allclose(y, 3 * x - 1, atol=1e-5)
    assert x.min() >= 0 and x.max() <= 10
    assert sum(len(y) for _, y in module.splits.values()) == 100
    reference = module.reference_parameters()
    assert abs(reference["gradient"] - 3) < 1e-4 and abs(reference["intercept"] + 1) < 1e-3


def test_blobs_are_the_course_challenge(tmp_path):
    module = datamodule(tmp_path, "blobs")
    assert sum(len(y) for _, y in module.splits.values()) == 300
    assert module.input_shape == [2] and module.num_classes == 3


def test_tensor_batches_cover_every_sample_once_and_reshuffle_per_epoch():
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    batches = TensorBatches(x, y, batch_size=4, sampler=EpochSampler(10, seed=0), transform=lambda b: b * 2)
    assert len(batches) == 3

    def epoch(number):
        batches.sampler.set_epoch(number)
        seen = [(bx, by) for bx, by in batches]
        assert [len(by) for _, by in seen] == [4, 4, 2]
        assert all(torch.equal(bx.squeeze(1), by * 2.0) for bx, by in seen)  # transform applied, pairs intact
        return torch.cat([by for _, by in seen])

    first = epoch(0)
    assert sorted(first.tolist()) == list(range(10))
    assert not torch.equal(first, epoch(1))
    assert torch.equal(first, epoch(0))  # the order depends on (seed, epoch) alone


def test_unshuffled_batches_keep_the_order():
    x = torch.arange(5)
    assert [b.tolist() for b, _ in TensorBatches(x, x, batch_size=2)] == [[0, 1], [2, 3], [4]]


def test_chunked_groups_batches_and_exposes_the_sampler():
    batches = TensorBatches(torch.arange(10), torch.arange(10), batch_size=1, sampler=EpochSampler(10, seed=0))
    chunks = Chunked(batches, size=4)
    assert len(chunks) == 3
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    assert chunks.sampler is batches.sampler


def test_the_dataloader_serves_the_fast_loops_batches_in_its_order_and_shards_it():
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    fast = TensorBatches(x, y, batch_size=4, sampler=EpochSampler(10, seed=3), transform=lambda b: b * 2)
    loader = batch_loader(x, y, batch_size=4, sampler=EpochSampler(10, seed=3), transform=lambda b: b * 2)
    for epoch in (0, 1):
        fast.sampler.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        pairs = list(zip(fast, loader, strict=True))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    # two processes: disjoint halves of the same permutation, padded to equal length as DistributedSampler pads
    shards = [list(EpochSampler(9, seed=3, num_replicas=2, rank=rank)) for rank in (0, 1)]
    assert [len(shard) for shard in shards] == [5, 5]
    order = EpochSampler(9, seed=3).permutation().tolist()
    assert shards[0] + shards[1] != order and sorted(set(shards[0] + shards[1])) == list(range(9))
    assert [shards[rank][i] for i in range(5) for rank in (0, 1)] == order + order[:1]


def test_a_held_out_split_too_small_for_every_class_is_drawn_unstratified_and_one_of_every_sample_is_refused():
    labels = torch.arange(1000) % 10
    splits = split_indices(1000, 0.0001, 0.2, seed=0, labels=labels)  # 1 validation sample (rounded up), 10 classes
    assert len(splits["val"]) == 1 and len(splits["train"]) == 799
    splits = split_indices(1000, 0.005, 0.2, seed=0, labels=labels)
    assert len(splits["val"]) == 5 and len(splits["train"]) == 795
    with pytest.raises(ConfigError, match=r"^data.val_fraction=0.5 is not allowed: it holds out 2 of 2 samples"):
        split_indices(3, 0.5, 0.1, seed=0, labels=torch.tensor([0, 1, 0]))
