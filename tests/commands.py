"""hyperlab's commands, run by the tests each in a process of its own, forked from a server that has imported torch,
Lightning and hyperlab once (multiprocessing's forkserver, one per test worker).

A command started this way is its own process: its pid, its signals, its exit status, its stdout and stderr, its
locks, its environment and working folder, everything it writes. What it does not pay is the interpreter's start:
importing torch and Lightning takes ~11 s of CPU on this 2-core machine, more than most of the commands the tests run
take to train, and the suite ran ~200 of them (CI took 45 minutes with `sys.executable` for every command, with its
two workers mostly importing). `run` and `start` take the argument lists the tests wrote for `subprocess`
(`[sys.executable, "-m", "hyperlab", "train", ...]`, `hyperlab-eval ...`) and behave as `subprocess.run` and
`subprocess.Popen` do for them.

A joblib sweep (`hydra/launcher=joblib`) runs in a fresh interpreter here too: its loky workers, started from a
forked command, sat waiting (324 s for a sweep that takes 40 s).

What is about a fresh interpreter keeps `subprocess` and `sys.executable`: a refusal before torch is imported
(tests/test_fast_refusal.py), Ctrl-C while modules load (tests/test_hostile_records.py), memory peaks, DDP's processes
(Lightning starts them from the command line it was given), SLURM's jobs, and the README's commands as printed.
"""

import atexit
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ENTRY_POINTS = {  # what the console scripts and `python -m hyperlab <command>` run: hyperlab.cli's functions
    "hyperlab-train": "train_main",
    "hyperlab-finetune": "finetune_main",
    "hyperlab-eval": "evaluate_main",
    "hyperlab-predict": "predict_main",
    "hyperlab-sweep-table": "sweep_table_main",
}
PRELOADED = ["torch", "lightning", "hyperlab.cli", "hyperlab.train", "hyperlab.evaluate", "hyperlab.predict",
             "hyperlab.sweeps.table", "commands"]  # fmt: skip
_context: Any = None


def forkserver() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOADED)
    return _context


def entry_point(args: list[str]) -> tuple[str, list[str], bool]:
    """`[python, -m, hyperlab, train, *rest]` -> ("train_main", rest, True); `[.../hyperlab-train, *rest]` ->
    ("train_main", rest, False)."""
    if len(args) >= 4 and args[1:3] == ["-m", "hyperlab"] and f"hyperlab-{args[3]}" in ENTRY_POINTS:
        return ENTRY_POINTS[f"hyperlab-{args[3]}"], list(args[4:]), True
    name = Path(args[0]).name
    if name in ENTRY_POINTS:
        return ENTRY_POINTS[name], list(args[1:]), False
    raise ValueError(f"not one of hyperlab's commands: {args[:4]}")


def child(main: str, arguments: list[str], as_module: bool, env: dict[str, str], cwd: str | None, out: str,
          err: str) -> None:  # fmt: skip
    """The command's process, forked from the server: its own streams, environment and folder, then its entry point
    (whose SystemExit is the process's exit status, as in a fresh interpreter; `python -m` puts its working folder
    first on the module path)."""
    for path, fd in ((out, 1), (err, 2)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(opened, fd)
        os.close(opened)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]  # (as at a start)
    if cwd is not None:
        os.chdir(cwd)
    if as_module:
        sys.path.insert(0, os.getcwd())
    sys.argv = [main, *arguments]
    import hyperlab.cli

    getattr(hyperlab.cli, main)()


class Output:
    """A stream of a started command, read from its file: `process.stderr.read()` as with a pipe."""

    def __init__(self, path: Path, text: bool) -> None:
        self.path, self.text = path, text

    def read(self) -> str | bytes:
        data = self.path.read_bytes() if self.path.exists() else b""  # (a process that never got to its command)
        return data.decode(errors="replace") if self.text else data


class Command:
    """A started command, as much of `subprocess.Popen` as the tests use."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 text: bool = True) -> None:  # fmt: skip
        main, arguments, as_module = entry_point([str(arg) for arg in args])
        self.args = args
        self.folder = Path(tempfile.mkdtemp(prefix="command-"))
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)  # (its streams: read until the tests end)
        self.stdout, self.stderr = Output(self.folder / "stdout", text), Output(self.folder / "stderr", text)
        given = dict(os.environ if env is None else env)
        streams = (str(self.stdout.path), str(self.stderr.path))
        folder = None if cwd is None else str(cwd)
        self.process = forkserver().Process(target=child, args=(main, arguments, as_module, given, folder, *streams))
        self.process.start()
        self.pid = self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        self.wait(timeout)
        return self.stdout.read(), self.stderr.read()


def start(args: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None, text: bool = True,
          **ignored: Any) -> Command:  # fmt: skip
    """As `subprocess.Popen(args, env=..., cwd=..., text=...)`; stdout and stderr are always kept (`stdout=`,
    `stderr=` are ignored: read them with `.stdout.read()`, `.stderr.read()`)."""
    return Command(args, env=env, cwd=cwd, text=text)


FRESH_INTERPRETER = "hydra/launcher=joblib"  # (see the module's docstring)


def run(args: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None, timeout: float = 600,
        check: bool = False, text: bool = True, **ignored: Any) -> subprocess.CompletedProcess:  # fmt: skip
    """As `subprocess.run(args, capture_output=True, ...)`: the command's exit status, stdout and stderr."""
    if FRESH_INTERPRETER in args:
        return subprocess.run(args, env=env, cwd=cwd, timeout=timeout, check=check, text=text, capture_output=True)
    command = Command(args, env=env, cwd=cwd, text=text)
    try:
        command.wait(timeout)
    except subprocess.TimeoutExpired:
        command.kill()
        command.wait()
        raise
    done = subprocess.CompletedProcess(args, command.returncode, *command.communicate())
    if check:
        done.check_returncode()
    return done
