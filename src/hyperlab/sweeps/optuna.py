"""hyperlab's Optuna sweeper (`hparams_search=optuna`, conf/hparams_search/optuna.yaml): a Hydra sweeper on Optuna's
ask-and-tell interface. Hydra builds sweepers from the `hydra_plugins` package only: src/hydra_plugins/hyperlab_optuna
names this class there.

- The search space is Hydra's sweep syntax, in `hydra.sweeper.params` or on the command line: `choice(a, b)`,
  `a,b`, `range(1, 4)` (1, 2, 3), `interval(0.0, 0.5)`, `tag(log, interval(1e-4, 0.1))`, `tag(int, interval(1, 8))`
  (hyperlab.sweeps.search_space).
- The study lives in an Optuna storage: `storage: null` is an SQLite file in the sweep folder (`optuna.db`); any
  URL Optuna takes (`sqlite:///<file>`, `postgresql://...`, `mysql://...`) shares one study between processes and
  machines: each asks the study for its next trial, so no trial runs twice, and each runs `n_trials` of its own.
- `n_jobs` trials run at once (with a launcher that runs jobs side by side: hydra/launcher=joblib or slurm); as
  soon as one ends, the next is asked for: no worker waits for the slowest trial of a batch (`wait_for_batch: true`
  waits, so that the same seed draws the same trials whatever their lengths; hyperlab.sweeps.trials).
- Each run is told its trial's number (`callbacks.optuna_pruning.trial`), reports the monitored metric after every
  validation to it, and stops when the pruner says the trial is hopeless: `pruned` (hyperlab.callbacks.pruning).
- `resume=true` on the folder of a search that was stopped: its finished trials count towards `n_trials`, and a trial
  it left running is run again (the same values, as a new trial).
- At the end: `optimization_results.yaml` in the sweep folder, the study's best trial (every process's trials).
"""

import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hyperlab.errors import ConfigError, exit_for, first_line
from hyperlab.sweeps.search_space import ends, search_space, split_replicates
from hyperlab.sweeps.trials import SWEEP_ATTRIBUTE, TOLD, Trials, run_results, tell

log = logging.getLogger(__name__)

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")
ABANDONED = "hyperlab:abandoned"  # the study's list of trials a killed search left running (run again: not counted)


def default_storage(sweep_dir: str | Path) -> str:
    """`storage: null`: the study in an SQLite file in the sweep folder (so that runs in other processes, which
    report to their trial, and a resumed search find it)."""
    return f"sqlite:///{Path(sweep_dir).resolve() / 'optuna.db'}"


def shown(url: str) -> str:
    """`url` as it may be printed and written: without its password."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_storage(url: str) -> Any:
    """Optuna's storage for `url`; SQLite waits up to a minute for another process's write (the default, 5 s, is
    less than a busy study's writes may take on a slow disk)."""
    import optuna

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine)


class OptunaSweeper(Sweeper):
    """The keys of conf/hydra/sweeper/optuna.yaml (`_target_`: the class in hydra_plugins); Hydra builds the sampler
    and the pruner from theirs."""

    def __init__(self, sampler: Any, pruner: Any, direction: str, storage: str | None, study_name: str,
                 n_trials: int, n_jobs: int, wait_for_batch: bool = False,
                 params: DictConfig | None = None) -> None:  # fmt: skip
        self.sampler, self.pruner, self.direction = sampler, pruner, direction
        self.storage, self.study_name, self.n_trials, self.n_jobs = storage, study_name, n_trials, n_jobs
        self.wait_for_batch = wait_for_batch
        self.params = params
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self.search(arguments)
        except ConfigError as error:  # (Hydra would print its own report of a sweeper's error, and exit 1)
            exit_for(error)

    def search(self, arguments: list[str]) -> Any:
        import optuna

        assert self.config is not None
        for key in ("n_trials", "n_jobs"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"hydra.sweeper.{key}={getattr(self, key)}: must be a whole number, 1 or more")
        if not isinstance(self.wait_for_batch, bool):
            raise ConfigError(f"hydra.sweeper.wait_for_batch={self.wait_for_batch}: must be true or false")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        searched, replicates = split_replicates(arguments)
        space, fixed = search_space(self.params, searched)
        if not space:
            raise ConfigError("hydra.sweeper.params: nothing to search (give a key a choice, range or interval)")
        self.check_composes(space, fixed)
        study = self.open_study(sweep_dir)
        self.write_multirun_record(sweep_dir, arguments)
        if self.storage or study.trials:  # a study other processes may share, or one that has trials already
            self.sampler.reseed_rng()  # draw trials of our own (a new study in the sweep folder: as `seed` says)
        done = self.resume(study, sweep_dir, space) if self.config.get("resume") else 0
        log.info(f"Optuna {optuna.__version__}: study {study.study_name} in {shown(self.storage_url(sweep_dir))}, "
                 f"{self.n_trials - done} trials to run ({done} done)")  # fmt: skip
        trials = Trials(self.launcher, study, sweep_dir, fixed, replicates)
        trials.run(space, self.n_trials - done, self.parallel_jobs(), wait_for_batch=self.wait_for_batch)
        return self.report(study, sweep_dir)

    def parallel_jobs(self) -> int:
        """Trials in flight at once: `n_jobs`, for a launcher that runs jobs beside each other (joblib, SLURM); one
        for Hydra's basic launcher, which runs a job in this process (two at once would share its Hydra state)."""
        if type(self.launcher).__name__ == "BasicLauncher" and self.n_jobs > 1:
            log.info(f"hydra.sweeper.n_jobs={self.n_jobs}: Hydra's basic launcher runs one job at a time (for "
                     "trials side by side: hydra/launcher=joblib or slurm)")  # fmt: skip
            return 1
        return self.n_jobs

    def check_composes(self, space: dict[str, Any], fixed: list[str]) -> None:
        """Every searched key at its lowest and highest value, and every choice of a choice, makes a config that
        hyperlab's checks accept (a key that is not an option, as `model.depth` of the CNN, or a value out of range
        is refused before any trial)."""
        from hyperlab.config import validate  # (here: Hydra imports this module whenever it starts)

        assert self.config is not None
        probes = [
            {key: ends(found)[0] for key, found in space.items()},
            {key: ends(found)[1] for key, found in space.items()},
        ]
        probes += [
            {**probes[0], key: choice} for key, found in space.items() for choice in getattr(found, "choices", [])
        ]
        for probe in probes:
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(
                    self.config, [*fixed, *(f"{key}={value}" for key, value in probe.items())]
                )
                with open_dict(cfg):
                    cfg.paths.output_dir = "(a run's folder)"  # (Hydra's, which no run has here)
                validate(cfg)
            except ConfigError as error:
                raise ConfigError(f"hydra.sweeper.params: {error}") from None
            except Exception as error:  # (Hydra's: a key that does not exist)
                raise ConfigError(f"hydra.sweeper.params: {first_line(error)}") from None

    def storage_url(self, sweep_dir: Path) -> str:
        return self.storage or default_storage(sweep_dir)

    def open_study(self, sweep_dir: Path) -> Any:
        """The study, made or (a shared or resumed one) loaded; a loaded study must optimise the same way."""
        import optuna

        url = self.storage_url(sweep_dir)
        for attempt in range(5):
            try:
                storage = open_storage(url)
                break
            except Exception as error:  # a URL Optuna (SQLAlchemy) can't open: the driver missing, the server down
                if "already exists" in str(error) or "UNIQUE constraint" in str(error):
                    time.sleep(0.5 * (attempt + 1))  # another process made the same new study file just now
                    continue
                why = f"{type(error).__name__}: {first_line(error)}"
                raise ConfigError(f"hydra.sweeper.storage: {shown(url)}: {why}") from None
        else:
            raise ConfigError(f"hydra.sweeper.storage: {shown(url)}: could not be set up (other processes at once)")
        # a pruner of None would be Optuna's median pruner: `pruner: null` means none
        pruner = self.pruner if self.pruner is not None else optuna.pruners.NopPruner()
        study = optuna.create_study(storage=storage, study_name=self.study_name, sampler=self.sampler, pruner=pruner,
                                    direction=self.direction, load_if_exists=True)  # fmt: skip
        if study.direction.name.lower() != self.direction:
            raise ConfigError(
                f"hydra.sweeper.direction: the study {self.study_name} in {shown(url)} was made to "
                f"{study.direction.name.lower()} its metric, not to {self.direction}: give the search its own "
                "hydra.sweeper.study_name"
            )
        return study

    def resume(self, study: Any, sweep_dir: Path, space: dict[str, Any]) -> int:
        """`resume=true`: the trials this folder finished count; one it left running is told what its run recorded
        (a kill between the record and the study), else it is abandoned and runs again (the same values, as a new
        trial)."""
        from optuna.trial import TrialState

        folder, recorded = str(sweep_dir.resolve()), run_results(sweep_dir)
        ours = [trial for trial in study.get_trials(deepcopy=False) if self.ran(trial, folder)]
        for trial in ours:
            if trial.state != TrialState.RUNNING:
                continue
            results = recorded.get(trial.number, [])
            if results and all(result.get("status") in TOLD for result in results):  # (a kill before the telling)
                tell(study, trial.number, results)
                continue
            study.set_user_attr(ABANDONED, sorted({*study.user_attrs.get(ABANDONED, []), trial.number}))
            study.tell(trial.number, state=TrialState.FAIL)
            if set(trial.params) == set(space):  # (a kill while its values were drawn: it never ran)
                study.enqueue_trial(trial.params)
                log.info(f"trial {trial.number} was left running: it runs again, as a new trial")
        ours = [trial for trial in study.get_trials(deepcopy=False) if self.ran(trial, folder)]
        abandoned = set(study.user_attrs.get(ABANDONED, []))
        return sum(trial.state.name in FINISHED_STATES and trial.number not in abandoned for trial in ours)

    def ran(self, trial: Any, folder: str) -> bool:
        """Whether this sweep folder ran `trial`: every trial of the folder's own study (a kill between asking for a
        trial and marking it leaves it unmarked), the trials it marked in a storage shared with others."""
        return self.storage is None or trial.user_attrs.get(SWEEP_ATTRIBUTE) == folder

    def write_multirun_record(self, sweep_dir: Path, arguments: list[str]) -> None:
        """multirun.yaml, as Hydra's own sweeper writes it: the config, with the keys the search varies as its params
        (which name the runs, hyperlab.run_folder.run_name)."""
        assert self.config is not None
        record = OmegaConf.create(OmegaConf.to_container(self.config, resolve=False))
        lines = [f"{key}={value}" for key, value in (self.params or {}).items()] + list(arguments)
        swept = [o for o in OverridesParser.create().parse_overrides(lines) if o.is_sweep_override()]
        with open_dict(record):
            record.hydra.sweeper.params = {o.get_key_element(): o.input_line.split("=", 1)[1] for o in swept}
            if isinstance(self.storage, str):  # (no password in the file; `${oc.env:...}` keeps it out of every file)
                record.hydra.sweeper.storage = shown(OmegaConf.to_container(record.hydra.sweeper)["storage"])
                record.hydra.overrides.hydra = [shown(line) for line in record.hydra.overrides.hydra]
        OmegaConf.save(record, sweep_dir / "multirun.yaml")

    def report(self, study: Any, sweep_dir: Path) -> dict[str, Any]:
        """optimization_results.yaml: the study's best trial (of every process that ran trials of it)."""
        import optuna

        finished = [trial for trial in study.trials if trial.state.name == "COMPLETE"]
        result: dict[str, Any] = {"name": "optuna", "optuna": optuna.__version__, "study_name": study.study_name,
                                  "storage": shown(self.storage_url(sweep_dir)),
                                  "trials_in_study": len(study.trials)}  # fmt: skip
        if finished:
            best = study.best_trial
            result.update(best_trial=best.number, best_value=best.value, best_params=best.params)
            log.info(f"best trial: {best.number}, {best.value:.6g} with {best.params}")
        OmegaConf.save(OmegaConf.create(result), sweep_dir / "optimization_results.yaml")
        if not finished and not any(trial.state.name == "PRUNED" for trial in study.trials):  # (nothing judged)
            states = ", ".join(
                f"{n} {state.lower()}" for state, n in Counter(t.state.name for t in study.trials).items()
            )
            print(f"error: no trial of the study {study.study_name} finished with a value ({states or 'no trials'}): "
                  f"see {sweep_dir / 'summary.md'}", file=sys.stderr)  # fmt: skip
            raise SystemExit(1)
        return result
