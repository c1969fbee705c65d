"""Every file a run and a task produce, named in one place (submitit's ``JobPaths``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_ENV = "ORCHESTRATE_STATE_DIR"


def usable_dir(path: Path, what: str, *, private: bool = False) -> Path:
    """``path`` as a directory we can write, made (with parents) if missing.

    Why: a runs dir that is a file, a read-only state dir or an over-long name should be one
    clear line before anything starts, not a traceback half way. ``private`` makes a new
    directory 0700 (the journal's).

    Raises:
        UnusableDir: naming the directory, what it is for and what is wrong.
    """
    from orchestrator.errors import UnusableDir

    def bad(why: str) -> UnusableDir:
        return UnusableDir(f"cannot use {path} as the {what}: {why}")

    try:
        existed = path.is_dir()
        path.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
    except FileExistsError as exc:
        raise bad("a file is in the way") from exc
    except NotADirectoryError as exc:
        raise bad("a part of the path is a file") from exc
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise bad("it is not writable")
    if private and not existed:
        path.chmod(0o700)  # mkdir's mode is masked by the umask; make sure
    return path


def default_state_dir() -> Path:
    """``$ORCHESTRATE_STATE_DIR``, else ``$XDG_STATE_HOME/orchestrate``, else ~/.local/state."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "orchestrate"


@dataclass(frozen=True)
class RunPaths:
    """``runs/<run-id>/``: the results of one run, as pulled back from its machines."""

    root: Path

    def task_dir(self, task_id: str) -> Path:
        """Everything one task left here: its log, timing, metrics, manifest and outputs."""
        return self.root / task_id

    def task_log(self, task_id: str) -> Path:
        """The task's streamed output, raw bytes as the trainer wrote them."""
        return self.root / task_id / "task.log"

    def timing(self, task_id: str) -> Path:
        """The trainer's ``timing.jsonl``, one row per event, fetched back."""
        return self.root / task_id / "timing.jsonl"

    def checkpoints(self, task_id: str) -> Path:
        """The task's checkpoints as last pulled back: what a retry on a new machine resumes."""
        return self.root / task_id / "checkpoints"

    def metrics(self, task_id: str) -> Path:
        """The trainer's final numbers (``metrics.json``)."""
        return self.root / task_id / "metrics.json"

    def manifest(self, task_id: str) -> Path:
        """What the task ran on (``manifest.json``): host, devices, versions, command."""
        return self.root / task_id / "manifest.json"

    @property
    def run_log(self) -> Path:
        """The run's events as lines (the engine's reporter writes them)."""
        return self.root / "run.log"

    @property
    def summary_json(self) -> Path:
        """The run's summary as ``run --json`` prints it."""
        return self.root / "summary.json"

    @property
    def experiment_copy(self) -> Path:
        """The experiment file as it was when the run started (the original may change)."""
        return self.root / "experiment.yaml"


@dataclass(frozen=True)
class Workspace:
    """The layout of a run on a machine: code shipped in, outputs and logs per task."""

    root: str

    @property
    def code(self) -> str:
        """Where the trainers (and a ``run:`` job's workdir copy) are shipped."""
        return f"{self.root}/code"

    @property
    def work(self) -> str:
        """The user's ``workdir``, synced for ``run:`` jobs; their commands start here."""
        return f"{self.root}/work"

    def out(self, task_id: str) -> str:
        """The task's ``--out`` directory on the machine, fetched back when it ends."""
        return f"{self.root}/out/{task_id}"

    def log(self, task_id: str) -> str:
        """The detached task's log on the machine, polled for new bytes."""
        return f"{self.root}/logs/{task_id}.log"

    def checkpoints(self, task_id: str) -> str:
        """Where an MNIST trainer checkpoints, so ``--resume`` continues from its last epoch."""
        return f"{self.root}/ckpt/{task_id}"
