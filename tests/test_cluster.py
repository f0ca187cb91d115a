"""The README's "On a cluster" commands against real servers: the one-node SLURM cluster and the PostgreSQL server
that `scripts/services.sh up` starts (tests/test_slurm.py runs the same launches against fake commands). Each test
runs hyperlab's own command as the README writes it; without the services the tests skip, naming the script."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hyperlab.sweeps.trials import SWEEP_ATTRIBUTE

pytestmark = pytest.mark.cluster

POSTGRES = os.environ.get("HYPERLAB_POSTGRES", "postgresql://hyperlab:hyperlab@127.0.0.1:55432/hyperlab")
TRAIN = str(Path(sys.executable).with_name("hyperlab-train"))  # the console script, beside this Python
# small jobs for a 2-core machine: one core each, little memory, no GPU, a limit that ends a stuck job
SLURM = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10")  # fmt: skip
SEARCH = ("hparams_search=optuna", "experiment=blobs", "threads=1", "optimizer.lr=tag(log, interval(0.0003, 0.01))")


def missing_services() -> str | None:
    """Why the cluster tests cannot run here (None: they can): SLURM's node takes jobs, PostgreSQL answers."""
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no SLURM cluster ({type(error).__name__})"
    if not re.search(r"^(idle|mixed|allocated|completing)", states, re.M):
        return f"no SLURM node takes jobs (sinfo: {states.strip() or 'no answer'})"
    address = urlsplit(POSTGRES)
    try:
        socket.create_connection((address.hostname, address.port or 5432), timeout=2).close()
    except OSError:
        return f"no PostgreSQL server on {address.hostname}:{address.port}"
    return None


@pytest.fixture(scope="module", autouse=True)
def services() -> None:
    reason = missing_services()
    if reason and os.environ.get("HYPERLAB_CLUSTER") == "required":  # (.ci/run: the services must be there)
        pytest.fail(f"{reason}, and HYPERLAB_CLUSTER=required: scripts/services.sh up did not start them")
    if reason:
        pytest.skip(f"{reason}: start the services with `sudo scripts/services.sh up`")


def train(*arguments: str, wait: bool = True, timeout: float = 300) -> subprocess.Popen:
    """hyperlab-train with `arguments` (waited for, and it must succeed, unless `wait` is false)."""
    process = subprocess.Popen([TRAIN, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, (out + err)[-3000:]
    return process


def results(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")}


def array_jobs(sweep_dir: Path) -> list[str]:
    """The SLURM jobs of a sweep, as submitit names their folders: `<array job>_<task>`, or `<job>` for a sweep of one
    run (submitted as a plain job)."""
    names = [path.name for path in (sweep_dir / ".submitit").iterdir() if re.fullmatch(r"\d+(_\d+)?", path.name)]
    tasks = [name for name in names if "_" in name]  # (an array's own folder, `<array job>`, beside its tasks')
    return sorted(tasks or names, key=lambda name: [int(number) for number in name.split("_")])  # submission order


def wait_until(condition, process: subprocess.Popen, seconds: float = 120) -> None:
    """Poll `condition` while `process` (which should still be running) works towards it."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------------- SLURM
def test_a_grid_sweep_is_one_job_array_on_the_real_cluster(tmp_path):
    sweep_dir = tmp_path / "sweep"
    train("-m", *SLURM, "experiment=blobs", "trainer.max_epochs=1", "threads=1", "optimizer.lr=0.001,0.003,0.01,0.03",
          f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={tmp_path}")  # fmt: skip
    jobs = array_jobs(sweep_dir)
    assert len({job.split("_")[0] for job in jobs}) == 1 and len(jobs) == 4, jobs  # one array, four tasks
    runs = results(sweep_dir)
    assert len(runs) == 4 and all(run["status"] == "completed" for run in runs.values()), runs
    assert all(f"| {name.split('=')[1]} |" in (sweep_dir / "summary.md").read_text() for name in runs)  # (lr=0.01)
    assert sorted(run["slurm_job"] for run in runs.values()) == jobs  # each run says which job ran it


def test_ddp_under_srun_takes_each_process_rank_from_slurm(tmp_path):
    """srun starts both processes; Lightning reads their ranks from SLURM's variables, each trains on its half of
    every epoch, and rank 0 alone records the run."""
    run_dir = tmp_path / "run"
    command = ["srun", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--label", TRAIN, "trainer=ddp",
               "trainer.accelerator=cpu", "experiment=digits", "trainer.max_epochs=1", "threads=1",
               f"hydra.run.dir={run_dir}", f"paths.log_dir={tmp_path}"]  # fmt: skip
    process = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, (process.stdout + process.stderr)[-3000:]
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["status"] == "completed" and "DDPStrategy" in result["loop"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 20  # each process took half of an epoch's 40 steps
    assert re.search(r"^0: ", process.stdout + process.stderr, re.M)  # (srun --label: both tasks spoke)
    assert re.search(r"^1: ", process.stdout + process.stderr, re.M)


def test_a_job_cancelled_with_scancel_is_recorded_interrupted_and_resumes(tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = ["-m", *SLURM, "experiment=digits", "trainer.max_epochs=30", "threads=1", "data.batch_size=16",
               f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={tmp_path}"]  # fmt: skip
    process = train(*command, wait=False)
    wait_until(lambda: list(sweep_dir.glob("*/checkpoints/last.ckpt")), process)  # an epoch done: training
    (job,) = array_jobs(sweep_dir)
    subprocess.run(["scancel", job], check=True)
    out, err = process.communicate(timeout=120)
    assert process.returncode != 0
    ((name, run),) = results(sweep_dir).items()
    assert run["status"] == "interrupted" and "SIGTERM" in run["error"], run
    train(*command, "resume=true")
    resumed = results(sweep_dir)[name]
    assert resumed["status"] == "completed" and resumed["epochs"] == 30
    assert list((sweep_dir / name / "attempts").iterdir())  # the cancelled attempt's record kept
    assert len(array_jobs(sweep_dir)) == 2 and resumed["slurm_job"] == array_jobs(sweep_dir)[-1]  # a job of its own


# ------------------------------------------------------------------------------------------------- PostgreSQL
def study_name() -> str:
    """A study of the test's own in the shared database (tests before it, or another CI job, leave theirs)."""
    return f"cluster-test-{uuid.uuid4().hex[:8]}"


def test_two_searches_share_one_study_on_postgresql(tmp_path):
    name = study_name()
    shared = (f"hydra.sweeper.storage={POSTGRES}", f"hydra.sweeper.study_name={name}", "hydra.sweeper.n_trials=3",
              "trainer.max_epochs=1")  # fmt: skip
    try:
        on_slurm = (*SLURM, "hydra.sweeper.n_jobs=2")  # the first: two trials at a time as SLURM jobs
        searches = [train("-m", *SEARCH, *shared, *(on_slurm if i == 1 else ()),
                          f"hydra.sweep.dir={tmp_path / f'sweep{i}'}", f"paths.log_dir={tmp_path}", wait=False)
                    for i in (1, 2)]  # fmt: skip
        for process in searches:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, (out + err)[-3000:]
        trials = optuna.load_study(study_name=name, storage=POSTGRES).trials  # readable afterwards
        assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 6
        numbers = {i: sorted(run["hparams"]["callbacks.optuna_pruning.trial"]
                             for run in results(tmp_path / f"sweep{i}").values()) for i in (1, 2)}  # fmt: skip
        print(f"trial numbers of the two searches: {numbers}")
        assert sorted(numbers[1] + numbers[2]) == list(range(6))  # each trial ran once, in one of them
        assert len(numbers[1]) == len(numbers[2]) == 3
        jobs = [run["slurm_job"] for run in results(tmp_path / "sweep1").values()]
        assert len(set(jobs)) == 3  # each trial of the first search a SLURM job of its own
    finally:
        optuna.delete_study(study_name=name, storage=POSTGRES)


def test_a_search_on_postgresql_killed_halfway_resumes_without_losing_finished_trials(tmp_path):
    name, sweep_dir = study_name(), tmp_path / "sweep"
    command = ("-m", *SEARCH, f"hydra.sweeper.storage={POSTGRES}", f"hydra.sweeper.study_name={name}",
               "hydra.sweeper.n_trials=4", "trainer.max_epochs=4", f"hydra.sweep.dir={sweep_dir}",
               f"paths.log_dir={tmp_path}")  # fmt: skip
    try:
        process = train(*command, wait=False)
        wait_until(lambda: len(results(sweep_dir)) >= 2, process)  # two trials recorded, the third training
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        recorded = {run["hparams"]["callbacks.optuna_pruning.trial"]: run["best_score"]
                    for run in results(sweep_dir).values()}  # fmt: skip
        study = optuna.load_study(study_name=name, storage=POSTGRES)
        # the trials this folder marked and left running (a kill between the study's asking and the marking, a few
        # milliseconds, leaves a trial unmarked: in a shared study no search can tell it is its own, and it stays
        # RUNNING, counted by nobody; it landed there once in CI)
        ours = str(sweep_dir.resolve())
        unrecorded = [t.number for t in study.trials if t.state == TrialState.RUNNING and t.number not in recorded
                      and t.user_attrs.get(SWEEP_ATTRIBUTE) == ours]  # fmt: skip
        train(*command, "resume=true")
        trials = optuna.load_study(study_name=name, storage=POSTGRES).trials
        assert {number: trials[number].value for number in recorded} == pytest.approx(recorded)  # kept
        assert [trial.state for trial in trials].count(TrialState.COMPLETE) == 4
        for number in unrecorded:  # killed while it trained: abandoned, and run again with the same values
            assert trials[number].state == TrialState.FAIL
        assert len(results(sweep_dir)) == 4
    finally:
        optuna.delete_study(study_name=name, storage=POSTGRES)
