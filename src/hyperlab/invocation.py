"""What a run knows of the command that started it beyond its config, as plain values. The entry point
(hyperlab.cli) alone reads Hydra's runtime config and hands this down; the defaults describe a run started from a
script of one's own (`train(cfg)`), outside any Hydra command."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Invocation:
    program: str = "hyperlab-train"  # the command (hyperlab-finetune for a fine-tune): what the LR finder prints
    typed: tuple[str, ...] = ()  # the command line's overrides as typed (`optimizer.lr=0.1`, `+x=1`, `~y`)
    # those of them that say what the run is (not where it goes or runs: conf/hydra/default.yaml's exclude_keys)
    described_by: dict[str, str] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)  # the option each config group got (`optimizer: sgd`)
    folder_named: bool = True  # the user chose the run folder (hydra.run.dir=...) rather than getting a new one
    sweep_dir: Path | None = None  # the sweep's folder, when the run is one of a sweep's (hyperlab-train -m)
    job_number: int = 0  # its place in the sweep (0: the first)
    threads: int | None = None  # CPU threads per run when a launcher runs several at once (else cfg.threads)
    submitted: bool = False  # submitit's launcher started it (a SLURM job, which may start a DDP run's processes)
    # an Optuna search's study (storage, study_name, pruner), for its trial's pruning callback: kept out of the config
    search_study: dict[str, Any] | None = None

    @property
    def sweeping(self) -> bool:
        return self.sweep_dir is not None


A_SCRIPT = Invocation()  # a run started from a script of one's own: `train(cfg)`
