"""`hydra/launcher=slurm` without a cluster: the tests put fake `sbatch`, `srun`, `sacct`, `squeue` and `scancel` on
PATH. `sbatch` keeps the batch script submitit wrote, answers with a job id and runs the script in the background,
one array task after the other, with the
environment SLURM gives a job (SLURM_JOB_ID, SLURM_ARRAY_TASK_ID, SLURM_NTASKS, ...); `srun` starts the job's tasks
(SLURM_PROCID, SLURM_LOCALID) and expands the %A/%a/%t of their log files' names; `sacct` reports each array task's
state as sbatch recorded it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SBATCH = r"""
import json, os, re, subprocess, sys
from pathlib import Path
home = Path(__file__).parent
if sys.argv[1] != "--run":  # sbatch <script>: keep it, answer with the job's id, run it in the background
    job = len(list((home / "submitted").glob("*.sh"))) + 100
    script = home / "submitted" / f"{job}.sh"
    script.write_text(Path(sys.argv[-1]).read_text())
    log = open(home / f"{job}.log", "w")  # (not sbatch's own output, which its caller reads to the end)
    subprocess.Popen([sys.executable, __file__, "--run", str(job), str(script)], stdout=log, stderr=log,
                     start_new_session=True)
    print(f"Submitted batch job {job}")
    sys.exit(0)
job, script = sys.argv[2], Path(sys.argv[3])
flags = dict(re.findall(r"^#SBATCH --([\w-]+)=?(\S*)", script.read_text(), re.M))
first, last = (int(x) for x in flags.get("array", "0-0").split("%")[0].split("-"))
tasks = int(flags.get("nodes", 1)) * int(flags.get("ntasks-per-node", 1))
states = {f"{job}_{index}": "PENDING" for index in range(first, last + 1)}
for index in range(first, last + 1):
    states[f"{job}_{index}"] = "RUNNING"
    (home / "states" / f"{job}.json").write_text(json.dumps(states))
    env = dict(os.environ, SLURM_JOB_ID=str(int(job) * 1000 + index), SLURM_ARRAY_JOB_ID=job,
               SLURM_ARRAY_TASK_ID=str(index), SLURM_NTASKS=str(tasks), SLURM_NTASKS_PER_NODE=str(tasks),
               SLURM_JOB_NUM_NODES="1", SLURM_NNODES="1", SLURM_NODEID="0", SLURM_JOB_NODELIST="localhost",
               SLURM_NODELIST="localhost", SLURM_JOB_NAME=flags.get("job-name", "job"))
    code = subprocess.run(["bash", str(script)], env=env).returncode
    states[f"{job}_{index}"] = "COMPLETED" if code == 0 else "FAILED"
(home / "states" / f"{job}.json").write_text(json.dumps(states))
"""

SRUN = r"""
import os, subprocess, sys, time
args, files = sys.argv[1:], {}
while args[0].startswith("-"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        files[flag] = args.pop(0)
tasks = int(os.environ["SLURM_NTASKS"])
def name(pattern, task):
    return (pattern.replace("%A", os.environ["SLURM_ARRAY_JOB_ID"]).replace("%a", os.environ["SLURM_ARRAY_TASK_ID"])
            .replace("%j", os.environ["SLURM_JOB_ID"]).replace("%t", str(task)))
deadline = time.monotonic() + 60
while not os.path.isdir(os.path.dirname(name(files["--output"], 0))) and time.monotonic() < deadline:
    time.sleep(0.1)  # (submitit makes the job's folder once sbatch has answered)
running = []
for task in range(tasks):
    env = dict(os.environ, SLURM_PROCID=str(task), SLURM_LOCALID=str(task))
    out = open(name(files["--output"], task), "a")
    err = open(name(files["--error"], task), "a") if "--error" in files else out
    running.append(subprocess.Popen(args, env=env, stdout=out, stderr=err))
sys.exit(max(process.wait() for process in running))
"""

SACCT = r"""
import json, sys
from pathlib import Path
home = Path(__file__).parent
jobs = [sys.argv[i + 1] for i, arg in enumerate(sys.argv) if arg == "-j"]
print("JobID|State|NodeList")
for job in jobs:
    file = home / "states" / f"{job}.json"
    for task, state in (json.loads(file.read_text()) if file.is_file() else {}).items():
        print(f"{task}|{state}|localhost")
"""


def fake_slurm(folder: Path) -> Path:
    """The fake commands in `folder`/bin (returned), with their records in `folder`."""
    bin_dir = folder / "bin"
    for name in ("bin", "submitted", "states"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for name, body in {"sbatch": SBATCH, "srun": SRUN, "sacct": SACCT, "squeue": "", "scancel": ""}.items():
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n" + body.replace("Path(__file__).parent", f"Path({str(folder)!r})"))
        path.chmod(0o755)
    return bin_dir


# where the real cluster is there (CI: HYPERLAB_CLUSTER=required, scripts/services.sh up), tests/test_cluster.py runs
# these launches against it: the fakes are for a machine without it
pytestmark = pytest.mark.skipif(os.environ.get("HYPERLAB_CLUSTER") == "required",
                                reason="tests/test_cluster.py runs these launches on the real cluster")  # fmt: skip


def slurm_sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{fake_slurm(tmp_path / 'slurm')}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}",
               f"paths.log_dir={tmp_path}", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
               "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
               *overrides]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def results(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")}


@pytest.mark.slow
def test_a_sweep_goes_to_slurm_as_one_job_array_with_the_configured_resources(tmp_path):
    process = slurm_sweep(tmp_path, "experiment=digits", "trainer.max_epochs=1", "optimizer.lr=0.01,0.1")
    assert process.returncode == 0, (process.stdout + process.stderr)[-3000:]
    (script,) = [path.read_text() for path in (tmp_path / "slurm" / "submitted").glob("*.sh")]  # one array
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)=?(\S*)", script, re.M))
    assert flags["array"] == "0-1%2"  # two jobs, both at once (array_parallelism 16)
    assert (flags["partition"], flags["cpus-per-task"], flags["mem"], flags["time"]) == ("debug", "1", "2GB", "60")
    assert (flags["nodes"], flags["ntasks-per-node"], flags["gpus-per-node"]) == ("1", "1", "0")
    assert re.search(r"^srun .* -u -m submitit\.core\._submit ", script, re.M)
    runs = results(tmp_path / "sweep")
    assert sorted(runs) == ["lr=0.01", "lr=0.1"] and all(run["status"] == "completed" for run in runs.values())
    job = re.search(r"(\d+)\.sh", str(next((tmp_path / "slurm" / "submitted").glob("*.sh")))).group(1)
    assert sorted(run["slurm_job"] for run in runs.values()) == [f"{job}_0", f"{job}_1"]  # (squeue's names)
    assert (
        "| lr=0.01 |" in (tmp_path / "sweep" / "summary.md").read_text()
        or "0.01" in (tmp_path / "sweep" / "summary.md").read_text()
    )


@pytest.mark.slow
def test_a_multi_process_run_is_lightnings_ddp_under_slurm(tmp_path):
    """tasks_per_node=2 with trainer.devices=2: SLURM (here: the fake srun) starts both processes, and Lightning
    takes each one's rank from SLURM's variables instead of starting processes itself."""
    process = slurm_sweep(tmp_path, "experiment=digits", "trainer.max_epochs=2", "trainer=ddp", "trainer.devices=2",
                          "trainer.accelerator=cpu", "hydra.launcher.tasks_per_node=2", "seed=0,1")  # fmt: skip
    assert process.returncode == 0, (process.stdout + process.stderr)[-3000:]
    (script,) = [path.read_text() for path in (tmp_path / "slurm" / "submitted").glob("*.sh")]
    assert "#SBATCH --ntasks-per-node=2" in script and "#SBATCH --array=0-1%2" in script
    runs = results(tmp_path / "sweep")
    assert sorted(runs) == ["seed=0", "seed=1"]
    for run in runs.values():
        assert run["status"] == "completed" and "DDPStrategy" in run["loop"]
        last = torch.load(Path(run["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["global_step"] == 2 * 20  # each process took half of an epoch's 40 steps: two processes
