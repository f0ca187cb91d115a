"""What a sweep costs beyond training, and what running two jobs at once buys, on MNIST:

  - the homework sweep (64 runs, `sweep=homework`) run sequentially: per-run overhead (Hydra composing the
    job, building data / model / Trainer / logger, testing, writing results) = (time from the first job's start
    to the last job's end - the runs' training time) / runs, and the sweep's wall time / the training time;
  - the same sweep with `hydra/launcher=joblib` (2 jobs at once, threads split between them): throughput =
    the sequential sweep's wall time / the parallel one's.

The figures are written into docs/benchmarks.md (its "Sweeps" section).

    python scripts/benchmark_sweep.py --data-root ../shared/data --epochs 1
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark import write_section

ROOT = Path(__file__).resolve().parents[1]


def run_sweep(folder: Path, *overrides: str) -> dict:
    """Run `hyperlab-train -m ...` into `folder`; its wall time, runs and training times."""
    command = [sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={folder}"]
    started = time.perf_counter()
    process = subprocess.run([*command, *overrides], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{process.stderr[-3000:]}")
    results = [json.loads(path.read_text()) for path in folder.glob("*/metrics.json")]
    job_starts = [path.stat().st_mtime for path in folder.glob("*/.hydra/config.yaml")]
    job_ends = [path.stat().st_mtime for path in folder.glob("*/metrics.json")]
    return {
        "runs": len(results),
        "wall_s": wall,
        "span_s": max(job_ends) - min(job_starts),  # first job's start to last job's end
        "train_s": sum(result["train_time_s"] for result in results),
        "statuses": sorted({result["status"] for result in results}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"), help="folder holding MNIST/raw/")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    parser.add_argument(
        "--homework-dir", default=str(ROOT / "logs" / "mnist_mlp" / "multirun" / f"benchmark-{stamp}"),
        help="where the homework sweep goes (kept: its summary.md is the homework table)",
    )  # fmt: skip
    args = parser.parse_args()
    common = ["experiment=mnist_mlp", f"data.root={args.data_root}", f"trainer.max_epochs={args.epochs}"]
    homework = run_sweep(Path(args.homework_dir), *common, "sweep=homework")
    print("homework, one job at a time:", homework, f"\ntable: {args.homework_dir}/summary.md", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=null"]  # threads: cores / jobs
        parallel = run_sweep(Path(folder) / "parallel", *common, "sweep=homework", *joblib)
        print("homework, two jobs at once:", parallel, flush=True)
    report(args, homework, parallel)


def report(args, homework: dict, parallel: dict) -> None:
    overhead = (homework["span_s"] - homework["train_s"]) / homework["runs"]
    lines = [
        "## Sweeps",
        "",
        f"Written by `python scripts/benchmark_sweep.py --epochs {args.epochs}` on {datetime.date.today().isoformat()} "
        f"({os.cpu_count()} cores); MNIST MLP runs of {args.epochs} epoch(s). Per-run overhead is everything but "
        "the epochs: Hydra composing the job's config (about 0.1 s here, twice per job: once to check the whole "
        "batch before it starts), building data / network / Trainer / logger, testing the best checkpoint and "
        "writing the results.",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| homework sweep (`sweep=homework`, {homework['runs']} runs): wall time | {homework['wall_s']:.1f} s | |",
        f"| its runs' training time (epochs incl. validation), summed | {homework['train_s']:.1f} s | |",
        f"| per-run overhead: (first job start to last job end - training) / runs | {overhead:.3f} s | <= 0.3 s |",
        f"| sweep wall time / training time | {homework['wall_s'] / homework['train_s']:.2f} | <= 1.1 |",
        f"| (the same without the process start, once per sweep) | {homework['span_s'] / homework['train_s']:.2f} | |",
        f"| the same sweep, 2 jobs at once (`hydra/launcher=joblib`, 1 thread each): wall time | "
        f"{parallel['wall_s']:.1f} s | |",
        f"| throughput, 2 at once / one after another | {homework['wall_s'] / parallel['wall_s']:.2f}x | >= 1.4x |",
        f"| (the same, first job's start to last job's end) | {homework['span_s'] / parallel['span_s']:.2f}x | |",
    ]
    write_section(Path(args.output), "sweeps", lines)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
