"""Epoch time and test accuracy on MNIST, side by side in one process, alternating so that machine noise hits
every variant alike:

  (a) course  - session 2's own loop: torchvision MNIST + ToTensor + DataLoader(batch 64, shuffle), with the
                course's per-step statistics (loss.item(), torch.max, correct count)
  (b) plain   - the same five steps over a preloaded float tensor, batches cut by indexing
  (c) hyperlab- `hyperlab-train experiment=mnist_mlp|mnist_cnn` (its datamodule, task and Lightning Trainer)

All three train the same network (hyperlab's, same init), on the same 54,000 training images, with Adam 1e-3
and batch 64, for one epoch per repeat; test accuracy is measured after the epoch, outside the timing. The CNN
is also run with channels-last and with bf16 autocast. Results go to docs/benchmarks.md.

    python scripts/benchmark.py --data-root ../shared/data --repeats 5

`--search` measures something else: the MNIST MLP Optuna search (`hparams_search=optuna`, validation accuracy) with
its pruner and without (`hydra.sweeper.pruner=null`), the same seeded sampler, one after the other: the wall time
each took to reach the best validation accuracy both reached.

    python scripts/benchmark.py --data-root ../shared/data --search --trials 20 --epochs 8

`--tables` measures loading a big table: a 1 M-row, 20-column file (14 float columns, some cells missing, an integer
column, 4 text columns of 4 to 20 categories, a 3-class target) written by the script, through `data=csv`'s
datamodule (`setup()`: read, split, fit, transform), each time in a fresh process: this tree's code on the CSV
file and on the same table as Parquet, and the code of an earlier commit (`--before`, extracted with `git archive`)
on the CSV file. Wall time and peak memory (the process's peak RSS over its RSS just before `setup()`).

    python scripts/benchmark.py --tables --before c841a95 --rows 1000000 --repeats 2

`--beside` measures what a run costs next to earlier runs in its experiment's folder (`logs/<name>/`, whose
TensorBoard record each run updates): the default digits run (1 epoch), `train()` timed whole, in a folder with 0
earlier runs and in one with `--earlier` (copies of a real run's folder), alternated; and, for comparison, reading
every run of the full folder as each run did before (the record rebuilt from every sibling).

    python scripts/benchmark.py --beside --earlier 1000 --repeats 7

`--refusal` measures how long a wrong command line takes to be refused (`hyperlab-train lr=0.01`, a misspelt key,
and `model.depth=abc`, a value of the wrong type), each time in a fresh process: this tree's code, which refuses
before torch and Lightning are imported, and the code of an earlier commit (`--before`, extracted with
`git archive`), which imported them first.

    python scripts/benchmark.py --refusal --before 905dcea --repeats 5

`--statistics` measures a sweep's table with its statistics (issue 26) on a folder of `--runs` runs the script writes
(200 configurations of lr x width, each repeated, every run with its record and a 5-epoch history, as a sweep with
`repeats` leaves them): reading the folder, grouping and testing the configurations, and the whole table
(`hyperlab-sweep-table`: summary.md/csv, configurations.csv, the heatmap and the curves).

    python scripts/benchmark.py --statistics --runs 1000 --repeats 5
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchvision
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Subset

from hyperlab.classes import build_trusted
from hyperlab.config import compose_config
from hyperlab.data.base import split_indices
from hyperlab.experiment import build, plain
from hyperlab.tasks.fast_loop import use_lightning_loop

ROOT = Path(__file__).resolve().parents[1]


def compose(experiment: str, data_root: str, run_dir: Path, *overrides: str) -> DictConfig:
    return compose_config(
        "train",
        [
            f"experiment={experiment}",
            f"data.root={data_root}",
            "data.download=false",
            "trainer.max_epochs=1",
            "trainer.check_val_every_n_epoch=1000",  # time the training epoch alone
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "logger=none",
            "callbacks=default",
            f"paths.output_dir={run_dir}",
            *overrides,
        ],
    )


class EpochTimer(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.started


@torch.no_grad()
def test_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(images[i : i + 1000]).argmax(1) for i in range(0, len(labels), 1000)])
    return (predictions == labels).float().mean().item()


def run_course(network: nn.Module, data_root: str, train_index: torch.Tensor) -> float:
    """Session 2's loop, as printed in the course (minus its print every 100 batches)."""
    transform = torchvision.transforms.Compose([torchvision.transforms.ToTensor()])
    dataset = torchvision.datasets.MNIST(root=data_root, train=True, download=False, transform=transform)
    loader = DataLoader(Subset(dataset, train_index.tolist()), batch_size=64, shuffle=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(network.parameters(), lr=0.001)
    network.train()
    started = time.perf_counter()
    total_loss, correct, total = 0.0, 0, 0
    for data, targets in loader:
        outputs = network(data)
        loss = criterion(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        _, predicted = torch.max(outputs.data, 1)
        total += targets.size(0)
        correct += (predicted == targets).sum().item()
    return time.perf_counter() - started


def run_plain(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, fused: bool = False) -> float:
    """The five steps over a preloaded tensor."""
    optimizer = torch.optim.Adam(network.parameters(), lr=0.001, fused=fused)
    network.train()
    started = time.perf_counter()
    order = torch.randperm(len(labels))
    for start in range(0, len(labels), 64):
        index = order[start : start + 64]
        loss = F.cross_entropy(network(images[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def run_hyperlab(
    experiment: str, data_root: str, *overrides: str, lightning_loop: bool = False
) -> tuple[float, nn.Module]:
    """One epoch through `build()` and `Trainer.fit`; `lightning_loop`: in Lightning's loop (one mini-batch per
    `training_step`, automatic optimization), which a run takes when a flag needs it (tasks/loop.py)."""
    with tempfile.TemporaryDirectory() as folder:
        built = build(compose(experiment, data_root, Path(folder) / "run", *overrides))
        if lightning_loop:
            use_lightning_loop(built.task, built.datamodule)  # (as tune=lr_find does: tasks/loop.py)
        timer = EpochTimer()
        built.trainer.callbacks.append(timer)
        built.trainer.fit(built.task, datamodule=built.datamodule)
    return timer.seconds, built.task.net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"), help="folder holding MNIST/raw/")
    parser.add_argument("--repeats", type=int, default=5, help="epochs per variant (median reported)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--search", action="store_true", help="the Optuna search with and without pruning instead")
    parser.add_argument("--in-flight", action="store_true", help="an Optuna search in batches and without instead")
    parser.add_argument("--trials", type=int, default=20, help="--search, --in-flight: trials per search")
    parser.add_argument("--epochs", type=int, default=8, help="--search: epochs per trial")
    parser.add_argument("--tables", action="store_true", help="loading a big table, now and at --before, instead")
    parser.add_argument("--before", help="--tables, --refusal: the commit to compare with (c841a95, 905dcea)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="--tables: rows of the table")
    parser.add_argument("--beside", action="store_true", help="a run next to 0 and --earlier runs, instead")
    parser.add_argument("--earlier", type=int, default=1000, help="--beside: runs already in the folder")
    parser.add_argument("--refusal", action="store_true", help="how long a wrong command line takes, instead")
    parser.add_argument("--statistics", action="store_true", help="a sweep's table and statistics, instead")
    parser.add_argument("--runs", type=int, default=1000, help="--statistics: runs in the sweep folder")
    args = parser.parse_args()
    if args.statistics:
        return statistics_benchmark(args)
    if args.refusal:
        return refusal_benchmark(args)
    if args.beside:
        return beside_benchmark(args)
    if args.search:
        return search_benchmark(args)
    if args.in_flight:
        return in_flight_benchmark(args)
    if args.tables:
        return tables_benchmark(args)
    default_threads = torch.get_num_threads()  # what a plain script gets; hyperlab's presets may set their own

    # the data every variant sees: hyperlab's training split, the official test set
    with tempfile.TemporaryDirectory() as folder:
        probe = build(compose("mnist_mlp", args.data_root, Path(folder) / "run"))
    datamodule = probe.datamodule
    train_x, train_y = datamodule.splits["train"]
    train_images = datamodule.transform(train_x, train=False)
    test_x, test_y = datamodule.splits["test"]
    test_images = datamodule.transform(test_x, train=False)
    targets = torchvision.datasets.MNIST(args.data_root, train=True, download=False).targets
    train_index = split_indices(len(targets), datamodule.val_fraction, 0, datamodule.seed, labels=targets)["train"]

    variants: dict[str, dict[str, Callable[[], tuple[float, nn.Module]]]] = {}
    for model in args.models:
        experiment = f"mnist_{model}"

        preset = compose(experiment, args.data_root, Path("unused"))
        model_config = plain(preset.model)
        tuned_threads = preset.threads or default_threads

        def network(model_config=model_config) -> nn.Module:
            torch.manual_seed(0)  # as build() seeds before it makes the network: the same initial weights
            return build_trusted({**model_config, "input_shape": [1, 28, 28]}, "model", num_outputs=10)

        def course_loop(network=network):
            torch.set_num_threads(default_threads)
            net = network()
            return run_course(net, args.data_root, train_index), net

        def plain_loop(network=network):
            torch.set_num_threads(default_threads)
            net = network()
            return run_plain(net, train_images, train_y), net

        def tuned_plain_loop(network=network, threads=tuned_threads):
            torch.set_num_threads(threads)
            net = network()
            return run_plain(net, train_images, train_y, fused=True), net

        variants[model] = {
            "(a) course loop": course_loop,
            "(b) plain loop, preloaded tensor": plain_loop,
            f"(b') plain loop, tuned as hyperlab ({tuned_threads} thread(s), fused Adam)": tuned_plain_loop,
            "(c) hyperlab": lambda experiment=experiment: run_hyperlab(experiment, args.data_root),
        }
        if model == "mlp":  # what Lightning's loop costs, with and without clipping, and per-step logging
            variants[model]["(c) hyperlab, Lightning's loop"] = lambda experiment=experiment: run_hyperlab(
                experiment, args.data_root, lightning_loop=True
            )
            variants[model]["(c) hyperlab, Lightning's loop + gradient_clip_val=1"] = lambda experiment=experiment: (
                run_hyperlab(experiment, args.data_root, "trainer.gradient_clip_val=1")
            )
            variants[model]["(c) hyperlab, + TensorBoard, log_every_n_steps=1"] = lambda experiment=experiment: (
                run_hyperlab(experiment, args.data_root, "logger=tensorboard", "trainer.log_every_n_steps=1")
            )
        if model == "cnn":  # the preset is channels-last: what the CNN runs like without it, and with bf16
            variants[model]["(c) hyperlab, channels-first (NCHW)"] = lambda experiment=experiment: run_hyperlab(
                experiment, args.data_root, "model.channels_last=false"
            )
            variants[model]["(c) hyperlab, + bf16 autocast"] = lambda experiment=experiment: run_hyperlab(
                experiment, args.data_root, "trainer.precision=bf16-mixed"
            )

    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for model, runs in variants.items():
        results[model] = {name: {"seconds": [], "accuracy": []} for name in runs}
        for repeat in range(args.repeats):
            for name, run in runs.items():
                seconds, net = run()
                accuracy = test_accuracy(net.float(), test_images, test_y)
                results[model][name]["seconds"].append(seconds)
                results[model][name]["accuracy"].append(accuracy)
                progress = f"{model} repeat {repeat + 1}/{args.repeats} {name}"
                print(f"{progress}: {seconds:.2f} s, test acc {accuracy:.4f}", flush=True)

    write_report(results, args)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_section(path: Path, name: str, lines: list[str]) -> None:
    """Replace the section `name` of the report at `path` (between its markers), keeping the other sections."""
    start, end = f"<!-- {name}: written by a script in scripts/, do not edit -->", f"<!-- /{name} -->"
    section = "\n".join([start, *lines, end])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_report(results, args) -> None:
    """One section of docs/benchmarks.md per model (so that `--models mlp` leaves the CNN's section alone)."""
    for model, variants in results.items():
        seconds = {name: values["seconds"] for name, values in variants.items()}
        course, plain = seconds["(a) course loop"], seconds["(b) plain loop, preloaded tensor"]
        tuned = next(values for name, values in seconds.items() if name.startswith("(b')"))
        hyperlab = seconds["(c) hyperlab"]
        lines = [
            f"## {model.upper()} epochs (`experiment=mnist_{model}`)",
            "",
            f"Written by `python scripts/benchmark.py --models {model} --repeats {args.repeats}` on "
            f"{datetime.date.today().isoformat()}: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"lightning {L.__version__}, Python {platform.python_version()}. One training epoch (54,000 images, "
            "batch 64, Adam 1e-3, the preset's network with the same initial weights) per variant and repeat, the "
            "variants alternated within each repeat; test accuracy on the 10,000 test images after that epoch.",
            "",
            "| variant | median epoch (s) | every repeat (s) | median test acc |",
            "|---|---:|---|---:|",
        ]
        for name, values in variants.items():
            every = ", ".join(f"{s:.2f}" for s in values["seconds"])
            lines.append(
                f"| {name} | {statistics.median(values['seconds']):.2f} | {every} | "
                f"{statistics.median(values['accuracy']):.4f} |"
            )
        speed_target, overhead_target = (" (target >= 5)", " (target <= 1.2)") if model == "mlp" else ("", "")
        lines += [
            "",
            "Ratios of the medians, and in brackets the median of the ratios within each repeat (which cancels "
            "slow drifts of a shared machine):",
            "",
            f"- (c) / (b) = {ratio(hyperlab, plain)}{overhead_target}",
            f"- (c) / (b') = {ratio(hyperlab, tuned)}: what Lightning and hyperlab add to an equally tuned plain loop",
            f"- (a) / (c) = {ratio(course, hyperlab)}: times faster than the course's loop{speed_target}",
        ]
        for name, values in seconds.items():
            if name.startswith("(c) hyperlab,"):
                lines.append(
                    f"- {name.removeprefix('(c) ')} / (c) = {ratio(values, hyperlab)}; (a) / it = "
                    f"{ratio(course, values)}"
                )
        write_section(Path(args.output), f"epochs-{model}", lines)
    print(f"wrote {args.output}")


def run_search(args, sweep_dir: Path, *overrides: str) -> tuple[float, list[tuple[float, float, str]]]:
    """One search, in a process of its own: its wall time and, per trial in the order they ended, (seconds from
    the search's start, the trial's best validation accuracy, its status)."""
    command = [sys.executable, "-m", "hyperlab", "train", "-m", "experiment=mnist_mlp", "hparams_search=optuna",
               f"data.root={args.data_root}", "data.download=false", "monitor.metric=val/acc",
               f"hydra.sweeper.n_trials={args.trials}", f"trainer.max_epochs={args.epochs}",
               f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={sweep_dir.parent}", *overrides]  # fmt: skip
    started = time.time()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.time() - started
    trials = []
    for path in sweep_dir.glob("*/metrics.json"):
        result = json.loads(path.read_text())
        trials.append((path.stat().st_mtime - started, result.get("best_score") or 0.0, result["status"]))
    return wall, sorted(trials)


def reached(trials: list[tuple[float, float, str]], target: float) -> float:
    """When the best validation accuracy so far first reached `target` (seconds from the search's start)."""
    return next(seconds for seconds, score, _ in trials if score >= target - 1e-12)


def search_benchmark(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        pruned_wall, pruned = run_search(args, Path(folder) / "pruned")
        print(f"with pruning: {pruned_wall:.0f} s", flush=True)
        full_wall, full = run_search(args, Path(folder) / "full", "hydra.sweeper.pruner=null")
        print(f"without pruning: {full_wall:.0f} s", flush=True)
    best_pruned, best_full = max(score for _, score, _ in pruned), max(score for _, score, _ in full)
    target = min(best_pruned, best_full)
    statuses = [status for _, _, status in pruned]
    lines = [
        "## Optuna search: pruning (`hparams_search=optuna`, issue 15)",
        "",
        f"Written by `python scripts/benchmark.py --search --trials {args.trials} --epochs {args.epochs}` on "
        f"{datetime.date.today().isoformat()}: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"optuna {version('optuna')}. The MNIST MLP search of conf/hparams_search/optuna.yaml on validation "
        f"accuracy, {args.trials} trials of up to {args.epochs} epochs, TPE seeded alike, with its median pruner "
        "and without (`hydra.sweeper.pruner=null`), one search after the other in a process of its own (one search "
        "each: a few minutes long, so a shared machine's noise is in these figures, not medians).",
        "",
        "| search | wall time (s) | best val/acc | time to reach the best both reached (s) | trials pruned |",
        "|---|---:|---:|---:|---:|",
        f"| with pruning | {pruned_wall:.0f} | {best_pruned:.4f} | {reached(pruned, target):.0f} | "
        f"{statuses.count('pruned')} of {len(statuses)} |",
        f"| without | {full_wall:.0f} | {best_full:.4f} | {reached(full, target):.0f} | 0 of {len(full)} |",
        "",
        f"The best both reached: val/acc {target:.4f}; the search with pruning got there in "
        f"{reached(pruned, target) / reached(full, target):.2f}x the time, and ran its {args.trials} trials in "
        f"{pruned_wall / full_wall:.2f}x the time.",
    ]
    write_section(Path(args.output), "optuna-pruning", lines)
    print(f"wrote {args.output}")


def in_flight_benchmark(args) -> None:
    """The same search twice on two workers (hydra/launcher=joblib): its trials' lengths uneven on purpose (1 to 8
    epochs), drawn alike (a seeded random sampler draws the same values whatever ended first); once waiting for each
    batch of two (`hydra.sweeper.wait_for_batch=true`), once starting a trial as soon as one ends."""
    settings = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", "threads=1",
                "hydra.sweeper.pruner=null", "trainer.max_epochs=range(1, 9)", "~hydra.sweeper.sampler",
                "+hydra.sweeper.sampler={_target_:optuna.samplers.RandomSampler,seed:0}")  # fmt: skip
    walls, drawn, busy = {}, {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name, wait in (("in batches of 2", "true"), ("as soon as one ends", "false")):
            sweep_dir = Path(folder) / wait
            walls[name], _ = run_search(args, sweep_dir, *settings, f"hydra.sweeper.wait_for_batch={wait}")
            runs = [json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")]
            drawn[name] = sorted(json.dumps(run["hparams"], sort_keys=True) for run in runs)
            busy[name] = sum(run["wall_time_s"] for run in runs)
            print(f"{name}: {walls[name]:.0f} s", flush=True)
    batched, eager = walls["in batches of 2"], walls["as soon as one ends"]
    assert drawn["in batches of 2"] == drawn["as soon as one ends"], "the two searches drew different trials"
    lines = [
        "## Optuna search: trials in flight (`hydra.sweeper.n_jobs`, issue 28)",
        "",
        f"Written by `python scripts/benchmark.py --in-flight --trials {args.trials}` on "
        f"{datetime.date.today().isoformat()}: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"optuna {version('optuna')}. The MNIST MLP search of conf/hparams_search/optuna.yaml, {args.trials} trials "
        "on two workers (`hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 threads=1`), each "
        "trial's length uneven on purpose (`trainer.max_epochs=range(1, 9)`), no pruner, a seeded random sampler "
        "(both searches drew the same trials: checked), one search after the other in a process of its own.",
        "",
        "| search | wall time (s) | runs' time, summed (s) | workers busy |",
        "|---|---:|---:|---:|",
    ]
    for name, wall in walls.items():
        lines.append(f"| {name} | {wall:.0f} | {busy[name]:.0f} | {busy[name] / (2 * wall):.0%} |")
    lines += [
        "",
        f"Starting a trial as soon as one ends ran the same trials in {batched / eager:.2f}x less time than waiting "
        "for each batch (goal: >= 1.3x). The runs' own time is about the same; what is gone is some of the workers' "
        "idle time while a batch waits for its slowest trial. `wait_for_batch: true` keeps the batches: with a "
        "sampler that learns (TPE), only then does the same seed draw the same trials whichever trial ends first.",
    ]
    write_section(Path(args.output), "optuna-in-flight", lines)
    print(f"wrote {args.output}")


def write_big_table(folder: Path, rows: int) -> tuple[Path, Path]:
    """The benchmark's table as `big.csv` and `big.parquet`: 19 feature columns (numbers and categories), a target."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    columns = {}
    for i in range(14):
        values = rng.normal(i, 1 + i, rows).round(3)
        if i % 3 == 0:
            values[rng.random(rows) < 0.01] = np.nan  # 1% missing in every third column
        columns[f"x{i}"] = values
    columns["count"] = rng.integers(0, 100, rows)
    for i, size in enumerate([4, 7, 12, 20]):
        names = np.array([f"cat{i}_{j}" for j in range(size)], dtype=object)
        columns[f"c{i}"] = names[rng.integers(0, size, rows)]
    score = columns["x1"] - columns["x2"] + (columns["c0"] == "cat0_1")
    columns["label"] = np.where(score > 0.5, "high", np.where(score < -0.5, "low", "mid"))
    table = pd.DataFrame(columns)
    table.to_csv(folder / "big.csv", index=False)
    table.to_parquet(folder / "big.parquet")
    return folder / "big.csv", folder / "big.parquet"


LOAD_TABLE = """
import json, sys, time
from hyperlab.data.tables import CSVDataModule
module = CSVDataModule(path=sys.argv[1], target="label", drop=[], task="auto", encoding="onehot", max_categories=50,
                       val_fraction=0.15, test_fraction=0.15, batch_size=32, eval_batch_size=1024, batches_per_step=16,
                       seed=0, shuffle_seed=0)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
# the peak since this process started (not ru_maxrss: Linux carries the parent's peak over a fork and exec)
hwm = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
before = rss()
started = time.perf_counter()
module.setup("fit")
seconds = time.perf_counter() - started
peak = hwm() - before
tensors = [t for split in module.splits.values() for t in split]
storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}  # a slice counts once
print(json.dumps({"seconds": seconds, "peak": peak, "tensors": sum(storages.values()),
                  "inputs": module.splits["train"][0].shape[1]}))
"""

READ_CSV = """
import json, sys, time
import pandas as pd
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
# the peak since this process started (not ru_maxrss: Linux carries the parent's peak over a fork and exec)
hwm = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
before = rss()
started = time.perf_counter()
table = pd.read_csv(sys.argv[1], engine=sys.argv[2])
seconds = time.perf_counter() - started
peak = hwm() - before
print(json.dumps({"seconds": seconds, "peak": peak, "tensors": float("nan"), "inputs": float("nan")}))
"""


def load_table(source: Path, table: Path, engine: str | None = None) -> dict[str, float]:
    """`setup()` of the table's datamodule in a fresh process importing hyperlab from `source` (a `src` folder); or,
    with an `engine`, `pandas.read_csv` alone with that engine."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-c", READ_CSV, str(table), engine] if engine else [sys.executable, "-c", LOAD_TABLE,
                                                                                    str(table)]  # fmt: skip
    done = subprocess.run(command, env=environment, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def tables_benchmark(args) -> None:
    args.before = args.before or "c841a95"
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        csv_file, parquet_file = write_big_table(folder, args.rows)
        before = folder / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "src"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        variants = {
            f"before ({args.before}), CSV": (before / "src", csv_file, None),
            "now, CSV": (ROOT / "src", csv_file, None),
            "now, Parquet": (ROOT / "src", parquet_file, None),
            "`pandas.read_csv` alone, C parser": (ROOT / "src", csv_file, "c"),
            "`pandas.read_csv` alone, pyarrow engine": (ROOT / "src", csv_file, "pyarrow"),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for repeat in range(args.repeats):  # alternating: the machine's noise hits every variant alike
            for name, (source, table, engine) in variants.items():
                results[name].append(load_table(source, table, engine))
                last = results[name][-1]
                print(f"repeat {repeat + 1} {name}: {last['seconds']:.2f} s, peak {last['peak'] / 2**20:.0f} MB")
        size_mb = csv_file.stat().st_size / 2**20
        parquet_mb = parquet_file.stat().st_size / 2**20
    median = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
              for name, runs in results.items()}  # fmt: skip
    first = median[f"before ({args.before}), CSV"]
    lines = [
        "## Big tables (`data=csv`, issue 14)",
        "",
        f"Written by `python scripts/benchmark.py --tables --before {args.before} --rows {args.rows} --repeats "
        f"{args.repeats}` on {datetime.date.today().isoformat()}: {cpu_name()}, {os.cpu_count()} cores, pandas "
        f"{version('pandas')}, scikit-learn {version('scikit-learn')}, torch {torch.__version__}. A {args.rows:,}-row "
        f"table of 20 columns (14 floats with 1% of the cells of every third one missing, an integer, 4 text columns "
        f"of 4 to 20 categories, a 3-class text target): {size_mb:.0f} MB as CSV, {parquet_mb:.0f} MB as Parquet. "
        "Each figure is the datamodule's `setup()` (read, split, fit the preprocessing on the training rows, "
        "transform every row) in a fresh process, variants alternated, medians of "
        f"{args.repeats}; peak memory is the process's peak RSS over its RSS just before `setup()`, and the tensors "
        "are what the splits hold afterwards (inputs float32, targets int64).",
        "",
        "| code, file | load + preprocess (s) | vs before | peak memory (MB) | tensors (MB) | peak / tensors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in median.items():
        tensors = "" if math.isnan(m["tensors"]) else f"{m['tensors'] / 2**20:.0f} | {m['peak'] / m['tensors']:.2f}"
        lines.append(
            f"| {name} | {m['seconds']:.2f} | {m['seconds'] / first['seconds']:.3f} | {m['peak'] / 2**20:.0f} | "
            f"{tensors or '- | -'} |"
        )
    c_parser, arrow = median["`pandas.read_csv` alone, C parser"], median["`pandas.read_csv` alone, pyarrow engine"]
    lines += [
        "",
        f"Both give {int(first['inputs'])} inputs per row. Before: the `csv` module and per-value Python loops, and "
        "each split a copy of the table's tensor. Now: pandas' C parser (the text columns, found in the first 1,000 "
        "rows, read as categoricals; Parquet's as dictionaries), scikit-learn's pipelines fitted a column at a time "
        "on the training rows, the number columns transformed 32,768 rows at a time and each category value once, "
        "into one float32 tensor ordered by split (each split a slice), with freed memory handed back to the system "
        "before it is filled. The peak is measured against the tensors because they are the table afterwards (the "
        "DataFrame pandas reads is freed once they are filled). pandas' pyarrow engine does not help on this machine "
        f"({arrow['seconds']:.2f} s against the C parser's {c_parser['seconds']:.2f} s to read the file, "
        f"{arrow['peak'] / 2**20:.0f} MB against {c_parser['peak'] / 2**20:.0f} MB at the peak), so hyperlab reads "
        "with the C parser.",
    ]
    write_section(Path(args.output), "big-tables", lines)
    print(f"wrote {args.output}")


# what an earlier run's .hydra/hydra.yaml says that its folder's record reads (the keys run names leave out)
HYDRA_RECORD = "hydra:\n  job:\n    config:\n      override_dirname:\n        exclude_keys: [experiment, threads]\n"


def beside_benchmark(args) -> None:
    """A run's wall time next to 0 and `args.earlier` earlier runs in its experiment's folder (see the docstring)."""
    import shutil

    from hyperlab.cli import record_in_experiment
    from hyperlab.invocation import A_SCRIPT
    from hyperlab.sweeps.runs import INDEX_FILE, load_sweep
    from hyperlab.sweeps.table import folder_record
    from hyperlab.train import train

    def one_run(experiment_folder: Path, name: str) -> float:
        cfg = compose_config("train", [f"paths.log_dir={experiment_folder.parent}", "trainer.max_epochs=1",
                                       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                                       "threads=1"])  # fmt: skip
        cfg.paths.output_dir = str(experiment_folder / name)
        started = time.perf_counter()
        record_in_experiment(cfg, A_SCRIPT, train(cfg))  # (the run, then its command adds it to the folder's record)
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        empty, full = Path(folder) / "empty" / "digits", Path(folder) / "full" / "digits"
        empty.mkdir(parents=True)
        full.mkdir(parents=True)
        one_run(full, "seed")  # (and warms the imports up)
        for index in range(args.earlier - 1):  # each as a command line makes it: its .hydra/ record too
            copy = shutil.copytree(full / "seed", full / f"earlier-{index}")
            (copy / ".hydra").mkdir()
            (copy / ".hydra" / "overrides.yaml").write_text(f"- trainer.max_epochs=1\n- seed={index}\n")
            (copy / ".hydra" / "hydra.yaml").write_text(HYDRA_RECORD)
        (full / INDEX_FILE).unlink()  # the first run after: reads the folder once, then adds to its record
        one_run(full, "first")
        times: dict[str, list[float]] = {"empty": [], "full": []}
        for repeat in range(args.repeats):
            for label, experiment_folder in (("empty", empty), ("full", full)):
                times[label].append(one_run(experiment_folder, f"run-{repeat}"))
        rebuild = []
        for _ in range(3):
            started = time.perf_counter()
            folder_record(load_sweep(full))
            rebuild.append(time.perf_counter() - started)
    empty_median, full_median = statistics.median(times["empty"]), statistics.median(times["full"])
    lines = [
        "## A run beside earlier runs (the experiment folder's record, issue 24)",
        "",
        f"Written by `python scripts/benchmark.py --beside --earlier {args.earlier} --repeats {args.repeats}` on "
        f"{datetime.date.today()} ({cpu_name()}, {os.cpu_count()} cores). The default digits run (1 epoch, "
        "`train()` and the experiment folder's record timed whole: build, fit, test, figures, records), alternated "
        "between an experiment folder with no "
        f"earlier run and one with {args.earlier} (copies of a real run).",
        "",
        "| experiment folder | median (s) | every repeat (s) |",
        "|---|---:|---|",
        f"| 0 earlier runs | {empty_median:.2f} | {', '.join(f'{t:.2f}' for t in times['empty'])} |",
        f"| {args.earlier} earlier runs | {full_median:.2f} | {', '.join(f'{t:.2f}' for t in times['full'])} |",
        "",
        f"Ratio {args.earlier} / 0: **{full_median / empty_median:.2f}** (paired "
        f"{statistics.median(f / e for f, e in zip(times['full'], times['empty'], strict=True)):.2f}). Each run adds "
        "itself to the folder's `.hyperlab-runs.json` and rewrites the record from it. Before, every run rebuilt the "
        f"record from every sibling's files: that read takes {statistics.median(rebuild):.2f} s for this folder "
        f"({args.earlier} runs; median of 3), per run.",
    ]
    write_section(Path(args.output), "beside", lines)
    print("\n".join(lines))
    print(f"wrote {args.output}")


def refusal_benchmark(args) -> None:
    """The wall time of `hyperlab-train <override>`'s refusal, now and at `args.before` (see the docstring)."""
    args.before = args.before or "905dcea"  # (the commit before the refusal came before torch's import)
    overrides = {"lr=0.01": "error: lr is not a key of the config", "model.depth=abc": "error: model.depth='abc'"}
    train_main = "from hyperlab.cli import train_main; train_main()"  # hyperlab-train's entry point

    def refuse(source: Path, override: str, folder: Path) -> float:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", train_main, override], cwd=folder, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(source / "src")})  # fmt: skip
        took = time.perf_counter() - started
        line = done.stderr.strip()
        assert done.returncode == 2 and line.startswith(overrides[override]) and "\n" not in line, done.stderr[-2000:]
        return took

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        before = folder / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "src", "conf"], cwd=ROOT, check=True,
                                 capture_output=True)  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        variants = {f"before ({args.before})": before, "now": ROOT}
        times = {(name, override): [] for name in variants for override in overrides}
        for repeat in range(args.repeats):  # alternating: the machine's noise hits every variant alike
            for override in overrides:
                for name, source in variants.items():
                    times[name, override].append(refuse(source, override, folder))
                    print(f"repeat {repeat + 1} {name} {override}: {times[name, override][-1]:.2f} s")
    median = {key: statistics.median(values) for key, values in times.items()}
    lines = [
        "## A refusal (a wrong key or value on the command line, issue 23)",
        "",
        f"Written by `python scripts/benchmark.py --refusal --before {args.before} --repeats {args.repeats}` on "
        f"{datetime.date.today().isoformat()} ({cpu_name()}, {os.cpu_count()} cores, shared). The wall time of "
        "`hyperlab-train <override>` (its entry point, in a fresh process) until it exits with status 2 and its one "
        f"line; variants alternated, medians of {args.repeats}.",
        "",
        "| command line | " + " | ".join(f"{name} (s)" for name in variants) + " | every repeat, now (s) |",
        "|---|" + "---:|" * len(variants) + "---|",
    ]
    for override in overrides:
        figures = " | ".join(f"{median[name, override]:.2f}" for name in variants)
        every = ", ".join(f"{t:.2f}" for t in times["now", override])
        lines.append(f"| `hyperlab-train {override}` | {figures} | {every} |")
    lines += [
        "",
        "Before, the command imported torch, Lightning, torchvision and torchmetrics (the config's checks imported "
        "the tasks and Lightning's Trainer) before it composed the config. Now it composes and checks the command "
        "line first, reading only what hyperlab declares (`config.check_declared`: its schemas, the options of its "
        "networks and datamodules, Lightning's Trainer arguments read from its source), and imports them once the "
        "config has passed (tests/test_fast_refusal.py checks that a refusal imports none of them). What only "
        "torch's classes, the tasks or the machine can say (an optimizer's options, `task.kind`, `monitor.metric`, "
        "the precision) is still checked after the import, before anything is built.",
    ]
    write_section(Path(args.output), "refusal", lines)
    print("\n".join(lines))
    print(f"wrote {args.output}")


def write_replicated_sweep(folder: Path, runs: int) -> None:
    """`runs` run folders as a sweep over lr x hidden with `repeats` leaves them: 200 configurations (fewer for
    fewer runs), each repeated, with a `.hydra/overrides.yaml`, a metrics.json and a 5-epoch history."""
    import random

    configurations = min(200, runs)
    generator = random.Random(0)
    for index in range(runs):
        configuration, repeat = index % configurations, index // configurations
        lr, hidden = 10.0 ** -(1 + configuration % 10), 16 * (1 + configuration // 10)
        run = folder / f"hidden={hidden},lr={lr},repeat={repeat}"
        (run / ".hydra").mkdir(parents=True)
        overrides = [f"optimizer.lr={lr}", f"model.hidden={hidden}", f"repeat={repeat}"]
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
        centre = 0.9 + 0.05 * math.sin(configuration)
        history = [{"epoch": float(e), "val/acc": centre - 0.1 / e + generator.gauss(0, 0.01), "val/loss": 0.3 / e}
                   for e in range(1, 6)]  # fmt: skip
        result = {"name": "bench", "status": "completed", "best_score": max(h["val/acc"] for h in history),
                  "best_epoch": 5, "monitor": "val/acc", "monitor_mode": "max", "kind": "classification",
                  "metrics": {"test/acc": centre + generator.gauss(0, 0.01), "val/acc": history[-1]["val/acc"]},
                  "history": history, "wall_time_s": 10.0, "hparams": {"optimizer.lr": lr, "model.hidden": hidden},
                  "best_checkpoint": str(run / "checkpoints" / "best.ckpt")}  # fmt: skip
        (run / "metrics.json").write_text(json.dumps(result))


def statistics_benchmark(args) -> None:
    """A sweep's table with its statistics on `args.runs` runs (see the docstring)."""
    from hyperlab.sweeps.comparisons import markdown_section, write_configurations_csv
    from hyperlab.sweeps.runs import BEST, load_sweep
    from hyperlab.sweeps.statistics import configurations
    from hyperlab.sweeps.table import ranked, rows, write_csv, write_markdown, write_summary

    def table_files(sweep_dir: Path, sweep: Any, found: Any) -> None:  # (write_summary's files, without figures)
        runs = ranked(sweep, BEST, True)
        header, table = rows(sweep, runs)
        write_markdown(sweep, sweep_dir / "summary.md", header, table, BEST, markdown_section(sweep, found, BEST, []))
        write_configurations_csv(sweep_dir / "configurations.csv", sweep, found, BEST, ["test/acc"])
        write_csv(sweep_dir / "summary.csv", header, table, runs, None)

    steps = ("read the folder", "the statistics", "summary.md, summary.csv, configurations.csv", "the whole table")
    times: dict[str, list[float]] = {step: [] for step in steps}
    with tempfile.TemporaryDirectory() as folder:
        sweep_dir = Path(folder) / "sweep"
        write_replicated_sweep(sweep_dir, args.runs)
        write_summary(sweep_dir)  # (warms the imports and the file cache up)
        for _ in range(args.repeats):
            started = time.perf_counter()
            sweep = load_sweep(sweep_dir)
            times["read the folder"].append(time.perf_counter() - started)
            started = time.perf_counter()
            found = configurations(sweep, BEST, ["test/acc"])
            times["the statistics"].append(time.perf_counter() - started)
            started = time.perf_counter()
            table_files(sweep_dir, sweep, found)
            times[steps[2]].append(time.perf_counter() - started)
            started = time.perf_counter()
            write_summary(sweep_dir)
            times["the whole table"].append(time.perf_counter() - started)
    medians = {step: statistics.median(values) for step, values in times.items()}
    lines = [
        "## A sweep's table with its statistics (repeats and folds, issue 26)",
        "",
        f"Written by `python scripts/benchmark.py --statistics --runs {args.runs} --repeats {args.repeats}` on "
        f"{datetime.date.today()} ({cpu_name()}, {os.cpu_count()} cores). A sweep folder of {args.runs} runs written "
        f"by the script ({len(found)} configurations of lr x hidden, each repeated; a record and a 5-epoch history per "
        "run); medians of the repeats, in one process.",
        "",
        "| step | median (s) | every repeat (s) |",
        "|---|---:|---|",
        *(f"| {step} | {medians[step]:.3f} | {', '.join(f'{t:.3f}' for t in times[step])} |" for step in times),
        "",
        f"The table itself (reading the folder, the statistics, the three files) takes "
        f"{sum(medians[step] for step in steps[:3]):.2f} s; the statistics (per configuration: mean, standard "
        "deviation, Student's t interval of the monitored metric and test/acc, Welch's t-test against the best) take "
        f"{medians['the statistics'] * 1000:.0f} ms of it. `hyperlab-sweep-table`, {medians['the whole table']:.2f} "
        "s, also draws the heatmap and the curves of 200 configurations (their means and bands). The t-tests use "
        "scipy's Student's t distribution directly (`scipy.special.stdtr`): "
        "`scipy.stats.ttest_ind` costs about 2 ms a call here, a second for 500 configurations.",
    ]
    write_section(Path(args.output), "statistics", lines)
    print("\n".join(lines))
    print(f"wrote {args.output}")


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


def ratio(numerators: list[float], denominators: list[float]) -> str:
    of_medians = statistics.median(numerators) / statistics.median(denominators)
    paired = statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))
    return f"{of_medians:.2f} ({paired:.2f})"


if __name__ == "__main__":
    main()
